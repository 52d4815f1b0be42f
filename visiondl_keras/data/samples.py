"""Example images for the inference command, written from the user's own copy of CIFAR-10.

The repository ships no dataset images (CIFAR-10's terms are its authors'; the project only points
to where it comes from). ``python -m visiondl_keras samples`` writes, for each class, the first test
image of that class, enlarged ``scale`` times with nearest-neighbour sampling (so the inference
command's area-averaging resize maps it back to the exact 32x32 test image) as ``<class>.png``.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from visiondl_keras.data.cifar10 import load_cifar10
from visiondl_keras.errors import ConfigError


def first_test_index_per_class(y_test: np.ndarray, num_classes: int) -> list[int]:
    """The index of the first test image of each class (in label order)."""
    y_test = np.asarray(y_test)
    missing = [k for k in range(num_classes) if not np.any(y_test == k)]
    if missing:
        raise ConfigError(f"the test split has no image of classes {missing}.")
    return [int(np.argmax(y_test == k)) for k in range(num_classes)]


def write_samples(out: str | os.PathLike = "samples", data=None, scale: int = 4, progress: bool = True) -> list[Path]:
    """Write one enlarged test image per class into ``out`` (existing files are replaced).

    Args:
        out: the folder (created if needed).
        data: a CIFAR-10 source (default: the usual lookup of :func:`~visiondl_keras.data.load_cifar10`).
        scale: the nearest-neighbour enlargement factor (1 keeps 32x32).
        progress: progress bars while loading the data.

    Returns:
        The paths written, in class order.

    Raises:
        ConfigError: ``scale`` below 1.
        DataError: no CIFAR-10 data found.
    """
    from PIL import Image

    if int(scale) < 1:
        raise ConfigError(f"scale must be >= 1, got {scale}.")
    ds = load_cifar10(data, progress=progress)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    paths = []
    for k, i in enumerate(first_test_index_per_class(ds.y_test, len(ds.class_names))):
        image = np.repeat(np.repeat(ds.x_test[i], scale, axis=0), scale, axis=1)
        path = out / f"{ds.class_names[k]}.png"
        Image.fromarray(np.asarray(image, dtype=np.uint8)).save(path)
        paths.append(path)
    return paths
