"""``python -m visiondl_keras``: see :mod:`visiondl_keras.cli`."""

import sys

from .cli import main

if __name__ == "__main__":
    sys.exit(main())
