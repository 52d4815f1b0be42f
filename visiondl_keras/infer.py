"""``python -m visiondl_keras.infer IMAGE ...``: calibrated predictions for image files.

The same as ``python -m visiondl_keras infer``; the library side is :mod:`visiondl_keras.deploy.predictor`.
"""

import sys

from visiondl_keras.cli.infer import main

if __name__ == "__main__":
    sys.exit(main())
