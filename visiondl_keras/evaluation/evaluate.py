"""Test-set evaluation of a checkpoint: accuracy, loss, per-class accuracy, with optional TTA and the
calibrated loss when the checkpoint has a temperature sidecar. Taught in lessons 3 and 5."""

from __future__ import annotations

import os

import numpy as np

from visiondl_keras.data import load_cifar10, stratified_subset
from visiondl_keras.evaluation.calibration import load_temperature
from visiondl_keras.evaluation.metrics import evaluate_logits
from visiondl_keras.evaluation.tta import tta_logits
from visiondl_keras.models import load_checkpoint
from visiondl_keras.runs import checkpoint_file


def evaluate_checkpoint(checkpoint: str | os.PathLike, data=None, limit: int | None = None, tta: int = 0,
                        progress: bool = True) -> dict:
    """Evaluate a checkpoint on the test split.

    Args:
        checkpoint: a ``.keras`` file or a run directory (its ``best.keras``).
        data: a CIFAR-10 source (default: the usual lookup of :func:`visiondl_keras.data.load_cifar10`).
        limit: evaluate on a stratified subset of this many test images.
        tta: test-time augmentation level (0, 1 or 2; see :mod:`visiondl_keras.evaluation.tta`).
        progress: progress bars while loading data.

    Returns:
        ``{"accuracy", "loss", "per_class_accuracy", "n", "tta", "temperature", "calibrated_loss"
        (when T != 1), "data", "checkpoint"}``.

    Raises:
        ModelError: no readable checkpoint at ``checkpoint``.
        DataError: no CIFAR-10 data found.

    Example:
        >>> evaluate_checkpoint("artifacts/checkpoints/scratch_fast94.keras", tta=2)["accuracy"]  # doctest: +SKIP
        0.93...
    """
    model = load_checkpoint(checkpoint)
    ds = load_cifar10(data, progress=progress)
    x, y = ds.x_test, ds.y_test
    if limit:
        idx = stratified_subset(y, limit)
        x, y = x[idx], y[idx]
    logits = tta_logits(model, x, tta, batch_size=1000)
    result = evaluate_logits(logits, y, ds.class_names)
    temperature = load_temperature(checkpoint_file(checkpoint))
    if temperature != 1.0:
        result["calibrated_loss"] = evaluate_logits(logits.astype(np.float64) / temperature, y, ds.class_names)["loss"]
    result.update({"tta": tta, "temperature": temperature, "data": ds.describe(), "checkpoint": str(checkpoint)})
    return result
