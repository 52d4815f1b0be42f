"""visiondl_keras: the whole computer-vision workflow on CIFAR-10 with Keras 3.

The top-level package is light: it imports only the data layer and the reproducibility
helpers. Import submodules (``visiondl_keras.training.engine``, ``visiondl_keras.evaluation.calibration``, ...)
for the rest.
"""

from visiondl_keras.data.cifar10 import CLASS_NAMES, Dataset, load_cifar10
from visiondl_keras.data.splits import Splits, channel_stats, stratified_subset, train_val_split
from visiondl_keras.errors import ConfigError, DataError, ModelError, VisionDLError
from visiondl_keras.reproducibility import environment_info, set_seed

__version__ = "0.1.0"

__all__ = [
    "CLASS_NAMES",
    "ConfigError",
    "DataError",
    "Dataset",
    "ModelError",
    "Splits",
    "VisionDLError",
    "channel_stats",
    "environment_info",
    "load_cifar10",
    "set_seed",
    "stratified_subset",
    "train_val_split",
]
