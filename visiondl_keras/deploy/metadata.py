"""The metadata JSON of an exported model: where it lives and how to read it.

:mod:`visiondl_keras.deploy.export` writes it beside every export; :mod:`visiondl_keras.deploy.predictor`
reads it (class names, the folded-in temperature). This module imports neither Keras nor
TensorFlow, so reading an export's metadata stays fast.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from visiondl_keras.errors import ModelError

__all__ = ["export_metadata_path", "read_export_metadata"]


def export_metadata_path(path: str | os.PathLike) -> Path:
    """Where an export's metadata lives.

    Args:
        path: a SavedModel folder or a ``.tflite`` file.

    Returns:
        ``DIR/visiondl_export.json`` for a SavedModel folder, ``FILE.json`` beside a ``.tflite`` file.

    Example:
        >>> export_metadata_path("out/model_int8.tflite").name
        'model_int8.tflite.json'
    """
    path = Path(path)
    if path.suffix == ".tflite":
        return path.with_name(path.name + ".json")
    return path / "visiondl_export.json"


def read_export_metadata(path: str | os.PathLike) -> dict:
    """The metadata of the export at ``path``, or ``{}`` when it has none.

    Args:
        path: a SavedModel folder or a ``.tflite`` file.

    Returns:
        The metadata dict (``class_names``, ``temperature``, ``quantization``, ...).

    Raises:
        ModelError: the metadata file exists but cannot be read as JSON.
    """
    meta_path = export_metadata_path(path)
    if not meta_path.is_file():
        return {}
    try:
        return json.loads(meta_path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ModelError(f"{meta_path}: unreadable export metadata ({exc}); export the model again.") from exc
