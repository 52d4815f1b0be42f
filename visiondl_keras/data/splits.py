"""Seeded, stratified train / validation / test splits of a :class:`~visiondl_keras.data.cifar10.Dataset`.

Taught in lesson 1. The same seed gives the same split in every process, so calibration and
diagnostics can rebuild the validation split a model was trained without.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field

import numpy as np

from visiondl_keras.data.cifar10 import Dataset, load_cifar10
from visiondl_keras.errors import DataError

# --------------------------------------------------------------------------------------------
# Splits
# --------------------------------------------------------------------------------------------


def stratified_subset(y: np.ndarray, n: int, seed: int = 0) -> np.ndarray:
    """Indices of a class-balanced subset of ``n`` items of ``y`` (sorted, deterministic per seed).

    Each class gets ``n // k`` items (the remainder goes to the first classes, in a seeded order)
    or all its items when it has fewer.

    Args:
        y: int labels.
        n: subset size; ``n >= len(y)`` returns every index.
        seed: seed of the draw.

    Returns:
        An int64 index array.
    """
    y = np.asarray(y)
    if n <= 0:
        raise DataError(f"limit must be a positive number of images, got {n}.")
    if n >= len(y):
        return np.arange(len(y))
    rng = np.random.default_rng(seed)
    classes = np.unique(y)
    base, extra = divmod(n, len(classes))
    bonus = set(rng.permutation(classes)[:extra].tolist())
    picked = []
    for c in classes:
        idx = np.flatnonzero(y == c)
        k = min(len(idx), base + (1 if c in bonus else 0))
        picked.append(rng.permutation(idx)[:k])
    return np.sort(np.concatenate(picked))


def channel_stats(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-channel mean and std of uint8 NHWC images, on the 0-255 scale (float32, shape (3,))."""
    x = np.asarray(x)
    n = x.shape[0] * x.shape[1] * x.shape[2]
    s = np.zeros(x.shape[-1]), np.zeros(x.shape[-1])
    for i in range(0, len(x), 5000):
        chunk = x[i : i + 5000].astype(np.float64)
        s[0][:] += chunk.sum(axis=(0, 1, 2))
        s[1][:] += (chunk**2).sum(axis=(0, 1, 2))
    mean = s[0] / n
    std = np.sqrt(np.maximum(s[1] / n - mean**2, 0.0))
    return mean.astype(np.float32), std.astype(np.float32)


@dataclass
class Splits:
    """Train / validation / test arrays with the statistics of the training split.

    Attributes:
        mean, std: per-channel statistics of ``x_train`` on the 0-255 scale.
        fingerprint: the source data set's fingerprint.
    """

    x_train: np.ndarray
    y_train: np.ndarray
    x_val: np.ndarray
    y_val: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    class_names: tuple[str, ...]
    mean: np.ndarray
    std: np.ndarray
    fingerprint: str = ""
    source: str = ""
    seed: int = 0
    info: dict = field(default_factory=dict)


def train_val_split(
    ds: Dataset,
    val_size: int = 5000,
    seed: int = 0,
    limit: int | None = None,
    test_limit: int | None = None,
) -> Splits:
    """Split the training set into a stratified train and validation part.

    Args:
        ds: a :class:`Dataset`.
        val_size: validation images, taken class-balanced from the training set (0 for none).
        seed: the same seed gives the same split.
        limit: when set, keep a stratified subset of this many training images (quick modes);
            the validation split is reduced in proportion, at least one image per class.
        test_limit: when set, a stratified subset of the test set.

    Returns:
        :class:`Splits`, with the per-channel mean/std of the (possibly limited) training split.

    Example:
        >>> s = train_val_split(ds, val_size=5000, seed=0)  # doctest: +SKIP
        >>> len(s.x_train), len(s.x_val)  # doctest: +SKIP
        (45000, 5000)
    """
    n = len(ds.y_train)
    if not 0 <= val_size < n:
        raise DataError(f"val_size must lie in [0, {n}), got {val_size}.")
    if val_size:
        val_idx = stratified_subset(ds.y_train, val_size, seed=seed + 1)
    else:
        val_idx = np.array([], dtype=np.int64)
    mask = np.ones(n, dtype=bool)
    mask[val_idx] = False
    train_idx = np.flatnonzero(mask)
    train_idx = np.random.default_rng(seed).permutation(train_idx)
    if limit is not None and limit < len(train_idx):
        keep = stratified_subset(ds.y_train[train_idx], limit, seed=seed)
        train_idx = train_idx[keep]
        if val_size:
            n_classes = len(np.unique(ds.y_train))
            v = max(n_classes, int(round(val_size * limit / (n - val_size))))
            val_idx = val_idx[stratified_subset(ds.y_train[val_idx], v, seed=seed)]
    test_idx = np.arange(len(ds.y_test))
    if test_limit is not None:
        test_idx = stratified_subset(ds.y_test, test_limit, seed=seed)
    x_train = ds.x_train[train_idx]
    mean, std = channel_stats(x_train)
    return Splits(
        x_train=x_train,
        y_train=ds.y_train[train_idx],
        x_val=ds.x_train[val_idx],
        y_val=ds.y_train[val_idx],
        x_test=ds.x_test[test_idx],
        y_test=ds.y_test[test_idx],
        class_names=tuple(ds.class_names),
        mean=mean,
        std=std,
        fingerprint=ds.fingerprint,
        source=ds.source,
        seed=seed,
        info={"val_size": int(len(val_idx)), "limit": limit, "test_limit": test_limit},
    )


def load_run_splits(settings: dict, expected_fingerprint: str | None = None, progress: bool = True):
    """Load the data and reproduce a run's splits (``settings`` from :func:`visiondl_keras.runs.split_settings`);
    warn when the data differ from the run's."""
    ds = load_cifar10(settings["data"], progress=progress)
    if expected_fingerprint and ds.fingerprint != expected_fingerprint:
        warnings.warn(
            f"the data loaded from {ds.source} (fingerprint {ds.fingerprint[:12]}) differ from the run's "
            f"(fingerprint {expected_fingerprint[:12]}); the validation split may not be the one used in training.",
            stacklevel=2,
        )
    return train_val_split(ds, settings["val_size"], settings["seed"], settings["limit"], settings["test_limit"])
