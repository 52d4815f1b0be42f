"""Frozen-backbone features, computed once and cached on disk.

With the ``frozen`` strategy the backbone never changes, so running it every epoch is wasted work:
:func:`extract_features` runs a transfer model's :func:`~visiondl_keras.models.backbones.feature_extractor`
(resize, preprocessing, backbone, global pooling) once over the images and stores the pooled
features; the head then trains on them in seconds per epoch
(:func:`~visiondl_keras.models.backbones.head_model` shares its layers with the full model, so the
trained head is already in place there). Without augmentation this gives the same head as
end-to-end training with a frozen backbone (tested).

The cache lives in ``cache_dir()/features/<key>/`` (``$VISIONDL_CACHE``, default
``~/.cache/visiondl_keras``; never in the repository). The key is a hash of

* the model name (backbone, alpha and input size, e.g. ``mobilenet_v2_a0.35_96px``) and the input size,
* a fingerprint of the extractor's weights (ImageNet file, random init or fine-tuned: whatever the
  values are, moving BatchNorm statistics included),
* the data fingerprint (sha256 of the image array, or one the caller passes),
* whether the images were flipped horizontally (a cheap augmentation for head training).

Each entry holds ``features.npy`` (float32, N x D) and ``meta.json`` (the readable key fields, the
extraction time and image count), written with :func:`visiondl_keras.io.save_npy_cache` (the meta
file last, so a half-written entry is never read). Taught in lesson 4.
"""

from __future__ import annotations

import hashlib
import shutil
import time
import weakref
from pathlib import Path

import keras
import numpy as np

from visiondl_keras.data.cifar10 import cache_dir, fingerprint_arrays
from visiondl_keras.errors import ConfigError
from visiondl_keras.io import load_npy_cache, save_npy_cache
from visiondl_keras.models.backbones import feature_extractor, get_backbone

_FEATURE_CACHE_VERSION = 1


def feature_cache_root() -> Path:
    """The folder holding every cached feature set (``cache_dir() / "features"``). Taught in lesson 4.

    Example:
        >>> feature_cache_root().name
        'features'
    """
    return cache_dir() / "features"


def weights_fingerprint(model) -> str:
    """sha256 over the names, shapes and values of a model's weights (trainable or not). Taught in lesson 4.

    Args:
        model: any Keras model.

    Returns:
        The hex digest.

    Example:
        >>> len(weights_fingerprint(keras.Sequential([keras.Input((2,)), keras.layers.Dense(1)])))
        64
    """
    h = hashlib.sha256()
    for w in model.weights:
        arr = np.ascontiguousarray(keras.ops.convert_to_numpy(w))
        h.update(f"{w.path}|{arr.dtype.str}|{arr.shape}".encode())
        h.update(memoryview(arr).cast("B"))
    return h.hexdigest()


_EXTRACTORS: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def _extractor(model):
    """The feature extractor of a transfer model (one per model, so its predict graph is traced once)."""
    get_backbone(model)  # a clear error for models that are not transfer models
    if model.layers[-1].name == "pool":
        return model
    if model not in _EXTRACTORS:
        _EXTRACTORS[model] = feature_extractor(model)
    return _EXTRACTORS[model]


def feature_cache_key(model, data_fingerprint: str, flip: bool = False) -> tuple[str, dict]:
    """The cache key of the features of ``model`` on the data with ``data_fingerprint``.

    Args:
        model: a transfer model or its feature extractor.
        data_fingerprint: identifies the exact images (e.g. :func:`visiondl_keras.data.cifar10.fingerprint_arrays`).
        flip: features of horizontally flipped images.

    Returns:
        ``(key, fields)``: a 24-hex-digit key and the readable fields it hashes.

    Raises:
        ConfigError: ``model`` is not a transfer model.

    Example:
        >>> key, fields = feature_cache_key(model, splits.fingerprint)  # doctest: +SKIP

    Taught in lesson 4.
    """
    ext = _extractor(model)
    fields = {
        "version": _FEATURE_CACHE_VERSION,
        "model": ext.name.removesuffix("_features"),
        "input_size": int(ext.get_layer("resize").output.shape[1]),
        "weights_fingerprint": weights_fingerprint(ext),
        "data_fingerprint": str(data_fingerprint),
        "flip": bool(flip),
        "feature_dim": int(ext.outputs[0].shape[-1]),
    }
    key = hashlib.sha256(repr(sorted(fields.items())).encode()).hexdigest()[:24]
    return key, fields


def _load_entry(folder: Path, n: int, dim: int) -> tuple[np.ndarray, dict] | None:
    entry = load_npy_cache(folder, ("features",))
    if entry is None:
        return None
    arrays, meta = entry
    feats = arrays["features"]
    if feats.shape != (n, dim) or feats.dtype != np.float32:
        return None
    return feats, meta


def extract_features(
    model,
    x: np.ndarray,
    batch_size: int = 256,
    cache: bool = True,
    fingerprint: str | None = None,
    flip: bool = False,
    progress: bool = True,
    return_info: bool = False,
):
    """Pooled backbone features of raw 32x32 images, from the on-disk cache when possible. Taught in lesson 4.

    Args:
        model: a transfer model (its frozen part is used) or its feature extractor.
        x: uint8 (or 0-255 float) images, shape (N, 32, 32, 3).
        batch_size: images per forward pass.
        cache: read and write the cache (False: always compute, write nothing).
        fingerprint: identifies ``x``; default: sha256 of the array (well under a second for 50k images).
        flip: compute the features of the horizontally flipped images instead.
        progress: Keras progress bar while computing.
        return_info: also return a dict: ``key``, ``cache_hit``, ``seconds`` and ``cpu_seconds``
            (extraction wall-clock and CPU time, the original ones on a cache hit), ``path`` and the key fields.

    Returns:
        float32 array (N, D), or ``(features, info)`` with ``return_info``.

    Raises:
        ConfigError: the images are not (N, 32, 32, 3), or ``model`` is not a transfer model.

    Example:
        >>> model = build_transfer_model("mobilenet_v2", "frozen", input_size=96)  # doctest: +SKIP
        >>> f_train = extract_features(model, splits.x_train)  # doctest: +SKIP
        >>> f_train.shape  # doctest: +SKIP
        (45000, 1280)
    """
    x = np.asarray(x)
    if x.ndim != 4 or x.shape[1:] != (32, 32, 3):
        raise ConfigError(f"images must have shape (N, 32, 32, 3), got {x.shape}.")
    ext = _extractor(model)
    key, fields = feature_cache_key(ext, fingerprint or fingerprint_arrays(x), flip)
    folder = feature_cache_root() / key
    dim = fields["feature_dim"]
    if cache:
        hit = _load_entry(folder, len(x), dim)
        if hit is not None:
            feats, meta = hit
            info = {**fields, "key": key, "cache_hit": True, "seconds": float(meta.get("seconds", 0.0)),
                    "cpu_seconds": float(meta.get("cpu_seconds", 0.0)), "path": str(folder)}
            return (feats, info) if return_info else feats
    start, start_cpu = time.perf_counter(), time.process_time()
    images = np.ascontiguousarray(x[:, :, ::-1]) if flip else x  # uint8 is fine: the model casts per batch
    feats = ext.predict(images, batch_size=batch_size, verbose=1 if progress else 0)
    feats = np.asarray(feats, dtype=np.float32)
    seconds, cpu_seconds = time.perf_counter() - start, time.process_time() - start_cpu
    info = {**fields, "key": key, "cache_hit": False, "seconds": seconds, "cpu_seconds": cpu_seconds,
            "path": str(folder) if cache else None}
    if cache:
        save_npy_cache(folder, {"features": feats}, {**fields, "n": len(x), "seconds": seconds,
                                                     "cpu_seconds": cpu_seconds, "created": time.time()})
    return (feats, info) if return_info else feats


def clear_feature_cache() -> int:
    """Delete every cached feature set. Taught in lesson 4.

    Returns:
        How many entries were removed.

    Example:
        >>> clear_feature_cache()  # doctest: +SKIP
        3
    """
    root = feature_cache_root()
    if not root.is_dir():
        return 0
    entries = [p for p in root.iterdir() if p.is_dir()]
    for p in entries:
        shutil.rmtree(p, ignore_errors=True)
    return len(entries)


__all__ = ["clear_feature_cache", "extract_features", "feature_cache_key", "feature_cache_root", "weights_fingerprint"]
