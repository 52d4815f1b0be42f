"""Pretrained backbones for CIFAR-10: building, offline weights and freezing strategies.

A transfer model has the same contract as the scratch models: it takes **raw RGB images on the
0-255 scale** (32x32, uint8 or float) and returns float32 **logits** from a final ``Dense`` named
``"logits"``. Everything else happens inside the model, so a checkpoint needs nothing else at
inference time::

    image (32x32x3, 0-255)
      -> "resize"      Resizing to input_size x input_size (bilinear)
      -> "preprocess"  the backbone's own ``preprocess_input``, written with built-in layers
      -> "backbone"    a keras.applications model without its classifier (a nested Model)
      -> "pool"        GlobalAveragePooling2D        (the cached features are this layer's output)
      -> "head_dropout", ["head_dense", "head_dense_dropout"], "logits"   the head

Backbones (``BACKBONES``): ``mobilenet`` (v1), ``mobilenet_v2``, ``mobilenet_v3_small``,
``resnet50``. The default ``alpha`` of each MobileNet is the one whose ImageNet weights ship in the
project's offline folder (MobileNet alpha 0.25, MobileNetV2 alpha 0.35).

**Weights.** ``weights="imagenet"`` looks for the Keras weight file first in ``$VISIONDL_WEIGHTS``
and in Keras' cache (``$KERAS_HOME/models``, default ``~/.keras/models``). When the file for the
requested input size is missing but the 224 px file is there, the model is built with
``weights=None`` and the 224 px file is loaded into it (convolution weights do not depend on the
input size), and a log line says so. When neither is found, Keras' standard download path is used;
if that fails too, :class:`~visiondl_keras.errors.ModelError` names the file and the ways to provide
it. ``weights`` may also be a path to an ``.h5``/``.weights.h5`` file, or ``None`` (random init).

**Strategies** (:func:`apply_strategy`, in :mod:`visiondl_keras.models.freezing` and re-exported here):

* ``frozen``: the whole backbone is frozen; only the head trains (and its features can be cached,
  see :mod:`visiondl_keras.models.features`);
* ``partial``: :func:`freeze_all_but_top` unfreezes the top ``unfreeze`` weighted layers of the
  backbone (an int, or a fraction of them); every BatchNormalization layer stays frozen, i.e. in
  inference mode;
* ``full``: every backbone layer trains, BatchNorm included: during training it
  normalises with batch statistics and updates its moving averages (gamma/beta train too);
  ``freeze_bottom`` keeps the bottom layers frozen (:func:`freeze_bottom_layers`).

BatchNorm's mode follows its ``trainable`` flag alone: a frozen BatchNormalization runs in inference
mode. Calling the nested backbone with ``training=False`` (the keras.io guide's idiom) would not pin
it: in Keras 3.15 a functional model passes the outer ``training=True`` of training down to nested
models, overriding the recorded ``False`` (checked in the tests).

This module holds the architecture only; training (both stages of the transfer recipe, on the
shared engine) lives in :mod:`visiondl_keras.training.transfer`. Taught in lesson 4.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path

import keras
import numpy as np

from visiondl_keras.errors import ConfigError, ModelError
from visiondl_keras.models.freezing import (
    DEFAULT_UNFREEZE,
    STRATEGIES,
    apply_strategy,
    freeze_all_but_top,
    freeze_bottom_layers,
    get_backbone,
    is_transfer_model,
    resolve_unfreeze,
    trainable_params,
    unfreezable_layers,
)

logger = logging.getLogger(__name__)



@dataclass(frozen=True)
class BackboneSpec:
    """What the package knows about one ``keras.applications`` backbone.

    Attributes:
        name: the name used in this package (``"mobilenet_v2"``).
        alphas: width multipliers with ImageNet weights; empty when the backbone has no alpha.
        default_alpha: the alpha used when none is given (None when there is no alpha).
        weight_sizes: input sizes for which Keras publishes a weight file (others use 224).
        preprocess: ``"tf"`` (scale to [-1, 1]) or ``"caffe"`` (RGB->BGR, ImageNet mean subtracted).

    Example:
        >>> BACKBONES["mobilenet_v2"].default_alpha
        0.35

    Taught in lesson 4.
    """

    name: str
    alphas: tuple[float, ...]
    default_alpha: float | None
    weight_sizes: tuple[int, ...]
    preprocess: str


BACKBONES: dict[str, BackboneSpec] = {
    "mobilenet": BackboneSpec("mobilenet", (0.25, 0.5, 0.75, 1.0), 0.25, (128, 160, 192, 224), "tf"),
    "mobilenet_v2": BackboneSpec("mobilenet_v2", (0.35, 0.5, 0.75, 1.0, 1.3, 1.4), 0.35, (96, 128, 160, 192, 224), "tf"),
    "mobilenet_v3_small": BackboneSpec("mobilenet_v3_small", (0.75, 1.0), 1.0, (224,), "tf"),
    "resnet50": BackboneSpec("resnet50", (), None, (224,), "caffe"),
}

# ImageNet channel means in RGB order, as keras.applications.imagenet_utils' "caffe" mode uses them.
_CAFFE_MEAN_RGB = np.array([123.68, 116.779, 103.939], dtype=np.float32)


# --------------------------------------------------------------------------------------------
# Weight files
# --------------------------------------------------------------------------------------------


def _spec(backbone: str) -> BackboneSpec:
    if backbone not in BACKBONES:
        raise ConfigError(f"unknown backbone {backbone!r}; choose one of {', '.join(BACKBONES)}.")
    return BACKBONES[backbone]


def _resolve_alpha(spec: BackboneSpec, alpha: float | None) -> float | None:
    if not spec.alphas:
        if alpha not in (None, 1.0):
            raise ConfigError(f"{spec.name} has no width multiplier; leave alpha unset (got {alpha!r}).")
        return None
    if alpha is None:
        return spec.default_alpha
    if not isinstance(alpha, (int, float)) or alpha <= 0:
        raise ConfigError(f"alpha must be a positive number, got {alpha!r}.")
    return float(alpha)


def keras_weights_filename(backbone: str, alpha: float | None = None, input_size: int = 224) -> str:
    """The file name Keras' ``weights="imagenet"`` path asks for (no-top weights).

    Args:
        backbone: a name of ``BACKBONES``.
        alpha: width multiplier (default: the backbone's default).
        input_size: the model's input size; sizes without published weights map to 224, as in Keras.

    Returns:
        A file name such as ``"mobilenet_v2_weights_tf_dim_ordering_tf_kernels_0.35_96_no_top.h5"``.

    Example:
        >>> keras_weights_filename("mobilenet", 0.25, 96)
        'mobilenet_2_5_224_tf_no_top.h5'

    Taught in lesson 4.
    """
    spec = _spec(backbone)
    alpha = _resolve_alpha(spec, alpha)
    rows = input_size if input_size in spec.weight_sizes else 224
    if backbone == "mobilenet":
        alpha_text = {1.0: "1_0", 0.75: "7_5", 0.5: "5_0"}.get(alpha, "2_5")
        return f"mobilenet_{alpha_text}_{rows}_tf_no_top.h5"
    if backbone == "mobilenet_v2":
        return f"mobilenet_v2_weights_tf_dim_ordering_tf_kernels_{float(alpha)}_{rows}_no_top.h5"
    if backbone == "mobilenet_v3_small":
        return f"weights_mobilenet_v3_small_224_{float(alpha)}_float_no_top_v2.h5"
    return "resnet50_weights_tf_dim_ordering_tf_kernels_notop.h5"


def weight_search_dirs() -> list[Path]:
    """Folders searched for Keras weight files, in order.

    ``$VISIONDL_WEIGHTS`` (when set), ``$KERAS_HOME/models`` (when set), Keras' own cache folder,
    ``~/.keras/models`` and ``/tmp/.keras/models`` (Keras' fallback when its home is read-only).
    Taught in lesson 4.

    Returns:
        The folders, without duplicates.

    Example:
        >>> weight_search_dirs()[-1].as_posix()
        '/tmp/.keras/models'
    """
    dirs = []
    if os.environ.get("VISIONDL_WEIGHTS"):
        dirs.append(Path(os.path.expanduser(os.environ["VISIONDL_WEIGHTS"])))
    if os.environ.get("KERAS_HOME"):
        dirs.append(Path(os.path.expanduser(os.environ["KERAS_HOME"])) / "models")
    try:
        from keras.src.backend.config import keras_home

        dirs.append(Path(os.path.expanduser(keras_home())) / "models")
    except ImportError:  # private path moved: the defaults below still cover the usual places
        pass
    dirs += [Path(os.path.expanduser("~")) / ".keras" / "models", Path("/tmp/.keras/models")]
    out = []
    for d in dirs:
        if d not in out:
            out.append(d)
    return out


def find_weights_file(filename: str) -> Path | None:
    """The first existing ``filename`` in :func:`weight_search_dirs`, or None. Taught in lesson 4.

    Args:
        filename: a file name such as :func:`keras_weights_filename` returns.

    Returns:
        The path, or None when no folder holds it.

    Example:
        >>> find_weights_file("no_such_file.h5") is None
        True
    """
    for d in weight_search_dirs():
        if (d / filename).is_file():
            return d / filename
    return None


def _missing_weights_message(backbone, alpha, input_size, names, download_error=None) -> str:
    what = backbone + (f" (alpha {alpha})" if alpha is not None else "")
    files = " or ".join(dict.fromkeys(names))
    dirs = ", ".join(str(d) for d in weight_search_dirs())
    reason = f"; the download failed ({download_error})" if download_error else ""
    return (
        f"ImageNet weights for {what} at {input_size} px not found: no {files} in {dirs}{reason}. "
        f"Provide them by (1) copying the file into $KERAS_HOME/models (default ~/.keras/models), "
        f"(2) setting VISIONDL_WEIGHTS to a folder that holds it, (3) passing weights='/path/to/{names[0]}', "
        f"or (4) connecting to the internet so Keras downloads it; or use weights=None for random initialisation."
    )


def _application(backbone: str, alpha, input_size: int, weights):
    shape = (input_size, input_size, 3)
    common = dict(include_top=False, weights=weights, input_shape=shape, name="backbone")
    if backbone == "mobilenet":
        return keras.applications.MobileNet(alpha=alpha, **common)
    if backbone == "mobilenet_v2":
        return keras.applications.MobileNetV2(alpha=alpha, **common)
    if backbone == "mobilenet_v3_small":
        return keras.applications.MobileNetV3Small(alpha=alpha, include_preprocessing=False, **common)
    return keras.applications.ResNet50(**common)


def _load_into(model, path: Path, what: str) -> None:
    try:
        model.load_weights(str(path))
    except Exception as exc:
        raise ModelError(f"{path}: could not load it into {what} ({type(exc).__name__}: {exc}).") from exc


def build_backbone(
    backbone: str,
    input_size: int = 96,
    weights: str | os.PathLike | None = "imagenet",
    alpha: float | None = None,
    download: bool = True,
) -> tuple[keras.Model, str]:
    """A ``keras.applications`` backbone without its classifier, named ``"backbone"``.

    Args:
        backbone: ``"mobilenet"``, ``"mobilenet_v2"``, ``"mobilenet_v3_small"`` or ``"resnet50"``.
        input_size: square input size in pixels (>= 32).
        weights: ``"imagenet"``, None (random init) or a path to a weights file of the same architecture.
        alpha: MobileNet width multiplier (default: the backbone's default).
        download: with ``weights="imagenet"`` and no local file, let Keras download it.

    Returns:
        ``(model, source)``: the backbone (expects *preprocessed* input) and a short description of
        where its weights came from (``"random"``, a file path, or ``"keras-download"``).

    Raises:
        ModelError: the weights file is missing (the message names it and the ways to provide it)
            or does not fit the architecture.
        ConfigError: unknown backbone, bad alpha or input size.

    Example:
        >>> base, source = build_backbone("mobilenet", 32, weights=None)  # doctest: +SKIP
        >>> source  # doctest: +SKIP
        'random'

    Taught in lesson 4.
    """
    spec = _spec(backbone)
    alpha = _resolve_alpha(spec, alpha)
    if not isinstance(input_size, (int, np.integer)) or input_size < 32:
        raise ConfigError(f"input_size must be an integer >= 32, got {input_size!r}.")
    input_size = int(input_size)
    if weights is None:
        return _application(backbone, alpha, input_size, None), "random"
    if weights != "imagenet":
        path = Path(os.path.expanduser(str(weights)))
        if not path.is_file():
            raise ModelError(f"{path}: weights file not found; pass an existing .h5 file, weights='imagenet' or None.")
        model = _application(backbone, alpha, input_size, None)
        _load_into(model, path, f"{backbone} at {input_size} px")
        return model, str(path)
    if spec.alphas and alpha not in spec.alphas:
        raise ConfigError(
            f"{backbone} has ImageNet weights only for alpha in {list(spec.alphas)}, got {alpha}; "
            "pick one of those or use weights=None."
        )
    exact = keras_weights_filename(backbone, alpha, input_size)
    base = keras_weights_filename(backbone, alpha, 224)
    found = find_weights_file(exact)
    if found is None and base != exact:
        found = find_weights_file(base)
    if found is not None:
        model = _application(backbone, alpha, input_size, None)
        _load_into(model, found, f"{backbone} at {input_size} px")
        if found.name == base and input_size != 224:
            logger.info(
                "%s: no ImageNet weights file for %d px here; built with weights=None and loaded the 224 px "
                "file %s (convolution weights do not depend on the input size).",
                backbone, input_size, found,
            )
        return model, str(found)
    if not download:
        raise ModelError(_missing_weights_message(backbone, alpha, input_size, [exact, base]))
    try:
        return _application(backbone, alpha, input_size, "imagenet"), "keras-download"
    except Exception as exc:  # URL errors, hash mismatches: all mean "no weights"
        raise ModelError(
            _missing_weights_message(backbone, alpha, input_size, [exact, base], f"{type(exc).__name__}: {exc}")
        ) from exc


# --------------------------------------------------------------------------------------------
# The transfer model
# --------------------------------------------------------------------------------------------


def _preprocess_layer(spec: BackboneSpec) -> keras.layers.Layer:
    """The backbone's ``preprocess_input`` as a built-in layer (so checkpoints load without custom code)."""
    if spec.preprocess == "tf":  # x / 127.5 - 1
        return keras.layers.Rescaling(1.0 / 127.5, offset=-1.0, name="preprocess")
    # caffe: RGB -> BGR, minus the ImageNet mean (BGR order). A fixed 1x1 convolution does both
    # exactly: each output channel picks one input channel (weights 0/1) and adds -mean.
    layer = keras.layers.Conv2D(3, 1, name="preprocess", trainable=False)
    layer.build((None, None, None, 3))
    kernel = np.zeros((1, 1, 3, 3), dtype=np.float32)
    for out_c, in_c in enumerate((2, 1, 0)):
        kernel[0, 0, in_c, out_c] = 1.0
    layer.set_weights([kernel, -_CAFFE_MEAN_RGB[::-1].copy()])
    return layer


def build_transfer_model(
    backbone: str = "mobilenet_v2",
    strategy: str = "frozen",
    input_size: int = 96,
    num_classes: int = 10,
    weights: str | os.PathLike | None = "imagenet",
    alpha: float | None = None,
    dropout: float = 0.2,
    hidden_units: int = 0,
    unfreeze: int | float = DEFAULT_UNFREEZE,
    download: bool = True,
    name: str | None = None,
) -> keras.Model:
    """A pretrained backbone with a small head, from raw 32x32 RGB (0-255) to float32 logits.

    Args:
        backbone: ``"mobilenet"``, ``"mobilenet_v2"``, ``"mobilenet_v3_small"`` or ``"resnet50"``.
        strategy: ``"frozen"``, ``"partial"`` or ``"full"`` (see :func:`apply_strategy`).
        input_size: the size the 32 px images are resized to inside the model (>= 32).
        num_classes: outputs of the ``"logits"`` layer.
        weights: ``"imagenet"`` (offline files first, then Keras' download), None, or a file path.
        alpha: MobileNet width multiplier (default: mobilenet 0.25, mobilenet_v2 0.35, v3 1.0).
        dropout: dropout rate before the logits layer.
        hidden_units: when > 0, a ReLU ``Dense`` layer of this width (and dropout) before the logits.
        unfreeze: for ``partial``: how many of the top weighted layers to unfreeze (int), or which
            fraction of them (float in (0, 1]); see :func:`freeze_all_but_top`.
        download: let Keras download missing ImageNet weights.
        name: model name (default ``"<backbone>_a<alpha>_<size>px"``).

    Returns:
        An uncompiled ``keras.Model`` with the chosen strategy applied.

    Raises:
        ModelError: weights missing or unusable.
        ConfigError: unknown backbone or strategy, bad sizes or rates.

    Example:
        >>> model = build_transfer_model("mobilenet_v2", "frozen", input_size=96)  # doctest: +SKIP
        >>> model.output_shape, trainable_params(model)  # doctest: +SKIP
        ((None, 10), 12810)

    Taught in lesson 4.
    """
    spec = _spec(backbone)
    if strategy not in STRATEGIES:
        raise ConfigError(f"unknown strategy {strategy!r}; choose one of {', '.join(STRATEGIES)}.")
    if not 0.0 <= dropout < 1.0:
        raise ConfigError(f"dropout must lie in [0, 1), got {dropout!r}.")
    if not isinstance(num_classes, (int, np.integer)) or num_classes < 2:
        raise ConfigError(f"num_classes must be an integer >= 2, got {num_classes!r}.")
    alpha = _resolve_alpha(spec, alpha)
    base, source = build_backbone(backbone, input_size, weights, alpha, download=download)

    inputs = keras.Input(shape=(32, 32, 3), name="image")
    x = keras.layers.Resizing(input_size, input_size, interpolation="bilinear", name="resize")(inputs)
    x = _preprocess_layer(spec)(x)
    x = base(x)
    x = keras.layers.GlobalAveragePooling2D(name="pool")(x)
    x = keras.layers.Dropout(dropout, name="head_dropout")(x)
    if hidden_units:
        x = keras.layers.Dense(int(hidden_units), activation="relu", name="head_dense")(x)
        x = keras.layers.Dropout(dropout, name="head_dense_dropout")(x)
    outputs = keras.layers.Dense(num_classes, dtype="float32", name="logits")(x)
    alpha_tag = f"_a{alpha:g}" if alpha is not None else ""
    model = keras.Model(inputs, outputs, name=name or f"{backbone}{alpha_tag}_{input_size}px")
    model.get_layer("preprocess").trainable = False
    apply_strategy(model, strategy, unfreeze=unfreeze)
    model.weights_source = source
    return model


def describe_transfer_model(model: keras.Model) -> dict:
    """Parameter counts of a transfer model as a dict. Taught in lesson 4.

    Args:
        model: a model from :func:`build_transfer_model`.

    Returns:
        ``{"name", "params", "trainable_params", "backbone_params", "backbone_trainable_params",
        "feature_dim", "input_size", "weights_source"}``.

    Raises:
        ConfigError: not a transfer model.

    Example:
        >>> describe_transfer_model(model)["feature_dim"]  # doctest: +SKIP
        1280
    """
    backbone = get_backbone(model)
    return {
        "name": model.name,
        "params": int(model.count_params()),
        "trainable_params": trainable_params(model),
        "backbone_params": int(backbone.count_params()),
        "backbone_trainable_params": trainable_params(backbone),
        "feature_dim": int(model.get_layer("pool").output.shape[-1]),
        "input_size": int(model.get_layer("resize").output.shape[1]),
        "weights_source": getattr(model, "weights_source", None),
    }


# --------------------------------------------------------------------------------------------
# Sub-models: features and head
# --------------------------------------------------------------------------------------------


def feature_extractor(model: keras.Model) -> keras.Model:
    """The frozen part of a transfer model: raw 32x32 images -> pooled backbone features.

    It shares its layers (and weights) with ``model``; its output is the ``"pool"`` layer's.
    Taught in lesson 4.

    Args:
        model: a model from :func:`build_transfer_model`.

    Returns:
        A ``keras.Model`` named ``"<model>_features"``.

    Raises:
        ConfigError: not a transfer model.

    Example:
        >>> feature_extractor(model).output_shape  # doctest: +SKIP
        (None, 1280)
    """
    get_backbone(model)
    return keras.Model(model.inputs, model.get_layer("pool").output, name=f"{model.name}_features")


def head_model(model: keras.Model) -> keras.Model:
    """The head of a transfer model as a model of its own: pooled features -> logits.

    It *shares* the head layers with ``model``: training it trains ``model``'s head, so a head
    fitted on cached features is already in place in the full model. Taught in lesson 4.

    Args:
        model: a model from :func:`build_transfer_model`.

    Returns:
        A ``keras.Model`` named ``"<model>_head"``.

    Example:
        >>> head_model(model).input_shape  # doctest: +SKIP
        (None, 1280)
    """
    pool = model.get_layer("pool")
    feats = keras.Input(shape=pool.output.shape[1:], name="features")
    x = feats
    after = False
    for layer in model.layers:
        if after:
            x = layer(x)
        if layer is pool:
            after = True
    return keras.Model(feats, x, name=f"{model.name}_head")


__all__ = [
    "BACKBONES",
    "DEFAULT_UNFREEZE",
    "STRATEGIES",
    "BackboneSpec",
    "apply_strategy",
    "build_backbone",
    "build_transfer_model",
    "describe_transfer_model",
    "feature_extractor",
    "find_weights_file",
    "freeze_all_but_top",
    "freeze_bottom_layers",
    "get_backbone",
    "head_model",
    "is_transfer_model",
    "keras_weights_filename",
    "resolve_unfreeze",
    "trainable_params",
    "unfreezable_layers",
    "weight_search_dirs",
]
