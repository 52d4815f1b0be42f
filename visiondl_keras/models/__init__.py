"""Models: from-scratch CNNs (:mod:`.scratch`, :mod:`.airbench`) and pretrained backbones (:mod:`.backbones`)."""

from __future__ import annotations

import os

from visiondl_keras.errors import ModelError
from visiondl_keras.models.scratch import (
    build_resnet9,
    build_scratch_model,
    build_simple_cnn,
    count_flops,
    model_summary,
)
from visiondl_keras.runs import checkpoint_file


def load_checkpoint(path: str | os.PathLike, compile: bool = False):
    """Load a ``.keras`` checkpoint written by this package.

    Args:
        path: the ``.keras`` file, or a run directory (its ``best.keras`` is used).
        compile: restore the optimizer and loss too (needed to resume training).

    Returns:
        A ``keras.Model``.

    Raises:
        ModelError: the path is missing or not a readable Keras checkpoint.
    """
    import keras

    path = checkpoint_file(path)
    if not path.is_file():
        raise ModelError(f"{path}: checkpoint not found; pass a .keras file or a run directory.")
    if path.suffix != ".keras":
        raise ModelError(f"{path}: expected a .keras checkpoint (SavedModel and .tflite files are for inference).")
    try:
        return keras.saving.load_model(path, compile=compile)
    except Exception as exc:
        raise ModelError(f"{path}: not a readable Keras checkpoint ({type(exc).__name__}: {exc}).") from exc


__all__ = ["build_resnet9", "build_scratch_model", "build_simple_cnn", "count_flops", "load_checkpoint", "model_summary"]
