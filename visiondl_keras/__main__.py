"""``python -m visiondl_keras``: see :mod:`visiondl_keras.cli.main`."""

import sys

from visiondl_keras.cli.main import main

if __name__ == "__main__":
    sys.exit(main())
