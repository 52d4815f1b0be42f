"""CIFAR-10 data: sources (:mod:`.cifar10`), seeded splits (:mod:`.splits`) and augmentation (:mod:`.augment`).

The public API, importable from here::

    from visiondl_keras.data import load_cifar10, train_val_split
"""

from visiondl_keras.data.cifar10 import CLASS_NAMES, Dataset, describe_data, is_jpeg_mirror, load_cifar10
from visiondl_keras.data.splits import (
    Splits,
    channel_stats,
    load_run_splits,
    stratified_subset,
    train_val_split,
)

__all__ = [
    "CLASS_NAMES",
    "Dataset",
    "Splits",
    "channel_stats",
    "describe_data",
    "is_jpeg_mirror",
    "load_cifar10",
    "load_run_splits",
    "stratified_subset",
    "train_val_split",
]
