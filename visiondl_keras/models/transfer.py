"""Pretrained backbones for CIFAR-10: building, offline weights, freezing strategies, fine-tuning.

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

**Strategies** (:func:`apply_strategy`):

* ``frozen``: the whole backbone is frozen; only the head trains (and its features can be cached,
  see :mod:`visiondl_keras.features`);
* ``partial``: :func:`freeze_all_but_top` unfreezes the top ``unfreeze`` weighted layers of the
  backbone (an int, or a fraction of them); every BatchNormalization layer stays frozen, i.e. in
  inference mode;
* ``full``: every backbone layer trains, BatchNormalization included: during training it
  normalises with batch statistics and updates its moving averages (gamma/beta train too).

BatchNorm's mode follows its ``trainable`` flag alone: a frozen BatchNormalization runs in inference
mode. Calling the nested backbone with ``training=False`` (the keras.io guide's idiom) would not pin
it: in Keras 3.15 a functional model passes the outer ``training=True`` of ``fit`` down to nested
models, overriding the recorded ``False`` (checked in the tests).

**Fine-tuning**: :func:`compile_transfer_model` with a smaller learning rate for the backbone
(discriminative learning rates, :func:`discriminative_optimizer`), :func:`fit_transfer` (a minimal
compile-and-fit loop with optional horizontal flips), and :func:`two_stage_fine_tune` (frozen
warm-up of the head, then partial fine-tuning).
"""

from __future__ import annotations

import logging
import os
import time
from dataclasses import dataclass
from pathlib import Path

import keras
import numpy as np

from ..augment import random_crop, random_flip
from ..errors import ConfigError, ModelError

logger = logging.getLogger(__name__)

STRATEGIES = ("frozen", "partial", "full")
DEFAULT_UNFREEZE = 0.25


@dataclass(frozen=True)
class BackboneSpec:
    """What the package knows about one ``keras.applications`` backbone.

    Attributes:
        name: the name used in this package (``"mobilenet_v2"``).
        alphas: width multipliers with ImageNet weights; empty when the backbone has no alpha.
        default_alpha: the alpha used when none is given (None when there is no alpha).
        weight_sizes: input sizes for which Keras publishes a weight file (others use 224).
        preprocess: ``"tf"`` (scale to [-1, 1]) or ``"caffe"`` (RGB->BGR, ImageNet mean subtracted).
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
    """The first existing ``filename`` in :func:`weight_search_dirs`, or None."""
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


def get_backbone(model: keras.Model) -> keras.Model:
    """The nested backbone of a transfer model (its layer named ``"backbone"``).

    Raises:
        ConfigError: the model has no such layer (it is not from :func:`build_transfer_model`).
    """
    try:
        layer = model.get_layer("backbone")
    except ValueError:
        layer = None
    if not isinstance(layer, keras.Model):
        raise ConfigError(f"model {model.name!r} has no nested 'backbone' model; build it with build_transfer_model.")
    return layer


def _is_transfer_model(model) -> bool:
    return any(layer.name == "backbone" and isinstance(layer, keras.Model) for layer in model.layers)


def unfreezable_layers(backbone: keras.Model) -> list[keras.layers.Layer]:
    """The layers :func:`freeze_all_but_top` counts: weighted, not BatchNormalization, bottom to top."""
    return [
        layer
        for layer in backbone.layers
        if layer.weights and not isinstance(layer, keras.layers.BatchNormalization)
    ]


def freeze_all_but_top(model_or_backbone: keras.Model, n: int) -> list[str]:
    """Freeze a backbone except its top ``n`` weighted layers.

    Exact semantics (the graded exercise compares with this):

    * **Which layers count**: the backbone's direct layers (``backbone.layers``, which Keras keeps in
      topological order, input to output) that own weights, *excluding* BatchNormalization, i.e.
      Conv2D, DepthwiseConv2D, Dense, ... (:func:`unfreezable_layers`). "Top ``n``" are the last
      ``n`` of them. ``n = 0`` unfreezes nothing; ``n`` beyond their number unfreezes all of them.
    * **trainable flags**: the backbone itself gets ``trainable = True`` (a container whose flag is
      False hides all its weights), then *every* direct layer's flag is set explicitly: True for the
      chosen ``n``, False for all others. (Setting only the container's flag is not enough: in Keras
      3.15 it reaches the sub-layers only when the container's value changes.)
    * **BatchNormalization**: every BatchNormalization layer is frozen, also inside the unfrozen top.
      A frozen BatchNormalization runs in inference mode in Keras 3: it normalises with its moving
      mean/variance, does not update them, and its gamma/beta do not train.
    * Layers without weights (activations, padding, Add) get ``trainable = False``; it changes nothing.
    * Given a whole transfer model (one with a nested model named ``"backbone"``), the function works
      on that backbone, keeps the ``"preprocess"`` layer frozen and makes the head layers after the
      backbone trainable. Any other model is treated as the backbone itself.

    Args:
        model_or_backbone: a transfer model from :func:`build_transfer_model`, or a backbone.
        n: how many of the counted layers to unfreeze (a non-negative integer).

    Returns:
        The names of the unfrozen layers, bottom to top.

    Raises:
        ConfigError: ``n`` is not a non-negative integer.

    Example:
        >>> base = keras.applications.MobileNetV2(input_shape=(96, 96, 3), include_top=False, weights=None, alpha=0.35)
        >>> freeze_all_but_top(base, 2)
        ['block_16_project', 'Conv_1']
    """
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 0:
        raise ConfigError(f"n must be a non-negative integer number of layers, got {n!r}.")
    if _is_transfer_model(model_or_backbone):
        backbone = get_backbone(model_or_backbone)
        _set_head_trainable(model_or_backbone)
    else:
        backbone = model_or_backbone
    candidates = unfreezable_layers(backbone)
    chosen = candidates[len(candidates) - min(int(n), len(candidates)) :]
    chosen_ids = {id(layer) for layer in chosen}
    backbone.trainable = True
    for layer in backbone.layers:
        layer.trainable = id(layer) in chosen_ids
    return [layer.name for layer in chosen]


def _set_head_trainable(model: keras.Model) -> None:
    model.trainable = True
    after = False
    for layer in model.layers:
        if layer.name in ("resize", "preprocess"):
            layer.trainable = False
        elif layer.name == "backbone":
            after = True
        elif after:
            layer.trainable = True


def resolve_unfreeze(backbone: keras.Model, unfreeze: int | float) -> int:
    """Number of layers ``partial`` unfreezes: ``unfreeze`` itself (int) or that fraction (float in (0, 1])."""
    total = len(unfreezable_layers(backbone))
    if isinstance(unfreeze, bool):
        raise ConfigError(f"unfreeze must be a layer count or a fraction in (0, 1], got {unfreeze!r}.")
    if isinstance(unfreeze, (int, np.integer)):
        if unfreeze < 1:
            raise ConfigError(f"unfreeze must be >= 1 layer for the partial strategy, got {unfreeze}.")
        return min(int(unfreeze), total)
    if isinstance(unfreeze, float) and 0.0 < unfreeze <= 1.0:
        return max(1, int(round(unfreeze * total)))
    raise ConfigError(f"unfreeze must be a layer count (int >= 1) or a fraction in (0, 1], got {unfreeze!r}.")


def apply_strategy(model: keras.Model, strategy: str, unfreeze: int | float = DEFAULT_UNFREEZE) -> keras.Model:
    """Set the trainable flags of a transfer model for ``frozen``, ``partial`` or ``full``.

    The head (layers after the backbone) is always trainable and the ``"preprocess"`` layer never.
    Re-compile the model after calling this (Keras reads the flags at compile time).

    Args:
        model: a model from :func:`build_transfer_model`.
        strategy: ``"frozen"`` (backbone frozen), ``"partial"`` (:func:`freeze_all_but_top` with
            :func:`resolve_unfreeze` layers; BatchNorm frozen) or ``"full"`` (everything trainable).
        unfreeze: the ``partial`` layer count (int) or fraction (float).

    Returns:
        The same model (for chaining).
    """
    if strategy not in STRATEGIES:
        raise ConfigError(f"unknown strategy {strategy!r}; choose one of {', '.join(STRATEGIES)}.")
    backbone = get_backbone(model)
    _set_head_trainable(model)
    if strategy == "partial":
        freeze_all_but_top(backbone, resolve_unfreeze(backbone, unfreeze))
        return model
    backbone.trainable = strategy == "full"
    for layer in backbone.layers:  # explicit: a container's flag does not always reach its layers
        layer.trainable = strategy == "full"
    return model


def trainable_params(model: keras.Model) -> int:
    """Number of trainable scalars (the variables the optimizer updates)."""
    return int(sum(int(np.prod(w.shape)) for w in model.trainable_weights))


def describe_transfer_model(model: keras.Model) -> dict:
    """Parameter counts of a transfer model as a dict (total, trainable, backbone, head)."""
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
    """
    get_backbone(model)
    return keras.Model(model.inputs, model.get_layer("pool").output, name=f"{model.name}_features")


def head_model(model: keras.Model) -> keras.Model:
    """The head of a transfer model as a model of its own: pooled features -> logits.

    It *shares* the head layers with ``model``: training it trains ``model``'s head, so a head
    fitted on cached features is already in place in the full model.
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


# --------------------------------------------------------------------------------------------
# Optimisation: discriminative learning rates and a minimal training loop
# --------------------------------------------------------------------------------------------

_OPTIMIZERS = {"adam": keras.optimizers.Adam, "adamw": keras.optimizers.AdamW, "sgd": keras.optimizers.SGD}
_DISCRIMINATIVE_CLASSES: dict[type, type] = {}


class _LRMultiplierMixin:
    """Scales the learning rate of chosen variables by a per-variable factor in ``update_step``."""

    def set_lr_multipliers(self, multipliers: dict[int, float]) -> None:
        self._lr_multipliers_by_id = dict(multipliers)

    def build(self, variables):
        super().build(variables)
        by_id = getattr(self, "_lr_multipliers_by_id", {})
        self._lr_multipliers = [float(by_id.get(id(v), 1.0)) for v in variables]

    def update_step(self, gradient, variable, learning_rate):
        mult = self._lr_multipliers[self._get_variable_index(variable)]
        if mult != 1.0:
            learning_rate = learning_rate * mult
        return super().update_step(gradient, variable, learning_rate)


def discriminative_optimizer(
    model: keras.Model,
    optimizer: str = "adam",
    learning_rate: float = 1e-3,
    backbone_lr_multiplier: float = 0.1,
    **kwargs,
) -> keras.optimizers.Optimizer:
    """An optimizer whose learning rate for the backbone's variables is ``learning_rate * multiplier``.

    Keras optimizers have one learning rate; this subclass of the chosen optimizer scales the
    learning rate of each backbone variable in its update step (momentum and Adam moments are kept
    per variable as usual; AdamW's decoupled weight decay uses the base rate).

    Args:
        model: a transfer model; its backbone's variables get the multiplier.
        optimizer: ``"adam"``, ``"adamw"`` or ``"sgd"``.
        learning_rate: the head's learning rate (a float or a schedule).
        backbone_lr_multiplier: factor for the backbone (e.g. 0.1); 1.0 gives a plain optimizer.
        **kwargs: passed to the optimizer (``weight_decay``, ``momentum``, ...).

    Returns:
        A ``keras.optimizers.Optimizer``.

    Example:
        >>> opt = discriminative_optimizer(model, "adam", 1e-3, backbone_lr_multiplier=0.1)  # doctest: +SKIP
    """
    if optimizer not in _OPTIMIZERS:
        raise ConfigError(f"unknown optimizer {optimizer!r}; choose one of {', '.join(_OPTIMIZERS)}.")
    if not backbone_lr_multiplier > 0:
        raise ConfigError(f"backbone_lr_multiplier must be > 0, got {backbone_lr_multiplier!r}.")
    base = _OPTIMIZERS[optimizer]
    if backbone_lr_multiplier == 1.0:
        return base(learning_rate=learning_rate, **kwargs)
    cls = _DISCRIMINATIVE_CLASSES.get(base)
    if cls is None:
        cls = type(f"Discriminative{base.__name__}", (_LRMultiplierMixin, base), {})
        _DISCRIMINATIVE_CLASSES[base] = cls
    opt = cls(learning_rate=learning_rate, **kwargs)
    opt.set_lr_multipliers({id(v): float(backbone_lr_multiplier) for v in get_backbone(model).weights})
    return opt


def compile_transfer_model(
    model: keras.Model,
    learning_rate: float = 1e-3,
    backbone_lr_multiplier: float = 1.0,
    optimizer: str = "adam",
    **optimizer_kwargs,
) -> keras.Model:
    """Compile with sparse categorical cross-entropy on logits and accuracy.

    For a transfer model, ``backbone_lr_multiplier`` < 1 gives discriminative learning rates; for a
    head model (:func:`head_model`) it is ignored.
    """
    if _is_transfer_model(model):
        opt = discriminative_optimizer(model, optimizer, learning_rate, backbone_lr_multiplier, **optimizer_kwargs)
    else:
        if optimizer not in _OPTIMIZERS:
            raise ConfigError(f"unknown optimizer {optimizer!r}; choose one of {', '.join(_OPTIMIZERS)}.")
        opt = _OPTIMIZERS[optimizer](learning_rate=learning_rate, **optimizer_kwargs)
    model.compile(
        optimizer=opt,
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        metrics=[keras.metrics.SparseCategoricalAccuracy(name="accuracy")],
    )
    return model


class ArrayBatches(keras.utils.PyDataset):
    """Batches of (x, y) numpy arrays, reshuffled each epoch, with optional light augmentation.

    Works for images (NHWC): ``flip`` draws a horizontal flip per image, ``crop_pad`` a random
    32x32 crop per image out of the reflect-padded image. With ``flip_pairs``, for cached features:
    ``x`` is then a pair ``(features, features_of_flipped_images)`` and ``flip`` picks one per sample.
    """

    def __init__(self, x, y, batch_size=64, shuffle=True, flip=False, seed=0, flip_pairs=False, crop_pad=0):
        super().__init__()
        self.x, self.y = x, np.asarray(y)
        self.batch_size, self.shuffle, self.flip, self.flip_pairs = int(batch_size), shuffle, flip, flip_pairs
        self.crop_pad = int(crop_pad)
        self.n = len(self.y)
        self.rng = np.random.default_rng(seed)
        self.order = self.rng.permutation(self.n) if shuffle else np.arange(self.n)

    def __len__(self):
        return int(np.ceil(self.n / self.batch_size))

    def __getitem__(self, i):
        idx = np.sort(self.order[i * self.batch_size : (i + 1) * self.batch_size])
        if self.flip_pairs:
            plain, flipped = self.x
            pick = self.rng.random(len(idx)) < 0.5 if self.flip else np.zeros(len(idx), bool)
            xb = np.where(pick[:, None], flipped[idx], plain[idx])
        else:
            xb = self.x[idx]
            if self.flip:
                xb = random_flip(xb, self.rng)
            if self.crop_pad:
                xb = random_crop(xb, self.crop_pad, self.rng)
        return xb.astype(np.float32), self.y[idx]

    def on_epoch_end(self):
        if self.shuffle:
            self.order = self.rng.permutation(self.n)


class EpochClock(keras.callbacks.Callback):
    """Records cumulative wall-clock and CPU seconds and the logs at each epoch end.

    Attributes:
        rows: one dict per epoch: ``epoch`` (1-based, continuing from ``start_epoch``), ``time_s``
            (wall-clock seconds since ``start_time``), ``cpu_s`` (this process's CPU seconds, all
            threads, since ``start_cpu``: less sensitive to other jobs on a shared machine), and every
            metric Keras logged (``val_accuracy``, ...).
    """

    def __init__(self, start_time: float | None = None, start_epoch: int = 0, stage: str | None = None,
                 start_cpu: float | None = None):
        super().__init__()
        self.start_time = time.perf_counter() if start_time is None else start_time
        self.start_cpu = time.process_time() if start_cpu is None else start_cpu
        self.start_epoch = start_epoch
        self.stage = stage
        self.rows: list[dict] = []

    def on_epoch_end(self, epoch, logs=None):
        row = {
            "epoch": self.start_epoch + epoch + 1,
            "time_s": time.perf_counter() - self.start_time,
            "cpu_s": time.process_time() - self.start_cpu,
        }
        if self.stage:
            row["stage"] = self.stage
        row.update({k: float(v) for k, v in (logs or {}).items()})
        self.rows.append(row)


class CosineToBudget(keras.callbacks.Callback):
    """Per-epoch cosine learning-rate decay over a number of epochs that a time budget may shorten.

    The learning rate of the ``k``-th epoch of this fit (from 0) is ``lr * (0.5 + 0.5 cos(pi k / total))``.
    After the first epoch, ``total`` becomes ``min(max_epochs, budget_s // first epoch's seconds)``
    (at least 2) when a budget is given; training stops after ``total`` epochs. The rate is logged as ``lr``.
    """

    def __init__(self, lr: float, max_epochs: int, budget_s: float | None = None):
        super().__init__()
        self.lr, self.total, self.budget_s = float(lr), int(max_epochs), budget_s
        self.start = self.first = None

    def on_epoch_begin(self, epoch, logs=None):
        if self.start is None:
            self.start, self.first = time.perf_counter(), epoch
        frac = (epoch - self.first) / max(1, self.total)
        self.model.optimizer.learning_rate.assign(self.lr * (0.5 + 0.5 * float(np.cos(np.pi * frac))))

    def on_epoch_end(self, epoch, logs=None):
        if logs is not None:
            logs["lr"] = float(keras.ops.convert_to_numpy(self.model.optimizer.learning_rate))
        done = epoch - self.first + 1
        if done == 1 and self.budget_s:
            self.total = max(2, min(self.total, int(self.budget_s // (time.perf_counter() - self.start))))
        if done >= self.total:
            self.model.stop_training = True


def fit_transfer(
    model: keras.Model,
    x,
    y,
    validation_data=None,
    epochs: int = 1,
    batch_size: int = 64,
    learning_rate: float = 1e-3,
    backbone_lr_multiplier: float = 1.0,
    optimizer: str = "adam",
    flip: bool = False,
    shuffle: bool = True,
    seed: int = 0,
    callbacks=None,
    verbose="auto",
    flip_pairs: bool = False,
    crop_pad: int = 0,
):
    """Compile ``model`` and fit it on numpy arrays: a minimal, self-contained training loop.

    Args:
        model: a transfer model (after :func:`apply_strategy`) or a head model.
        x, y: training images (uint8 NHWC 0-255) or features, and int labels.
        validation_data: ``(x_val, y_val)`` or None.
        epochs, batch_size: as in ``model.fit``.
        learning_rate: the head's learning rate; ``backbone_lr_multiplier`` scales the backbone's.
        optimizer: ``"adam"``, ``"adamw"`` or ``"sgd"``.
        flip: random horizontal flips of the training images (or, with ``flip_pairs``, of features).
        shuffle: reshuffle every epoch (seeded by ``seed``).
        callbacks: extra Keras callbacks.
        flip_pairs: ``x`` is ``(features, features_of_flipped_images)``.
        crop_pad: random 32x32 crops of the images reflect-padded by this many pixels (0: none).

    Returns:
        The Keras ``History``.
    """
    compile_transfer_model(model, learning_rate, backbone_lr_multiplier, optimizer)
    data = ArrayBatches(x, y, batch_size, shuffle=shuffle, flip=flip, seed=seed, flip_pairs=flip_pairs, crop_pad=crop_pad)
    val = None
    if validation_data is not None:
        val = (np.asarray(validation_data[0], dtype=np.float32), np.asarray(validation_data[1]))
    return model.fit(
        data,
        validation_data=val,
        validation_batch_size=max(batch_size, 256),
        epochs=epochs,
        shuffle=False,  # ArrayBatches shuffles with its own seed; Keras would reorder batches with `random`
        callbacks=callbacks,
        verbose=verbose,
    )


def two_stage_fine_tune(
    model: keras.Model,
    x,
    y,
    validation_data=None,
    warmup_epochs: int = 2,
    finetune_epochs: int = 2,
    batch_size: int = 64,
    head_lr: float = 1e-3,
    finetune_lr: float = 1e-3,
    backbone_lr_multiplier: float = 0.1,
    unfreeze: int | float = DEFAULT_UNFREEZE,
    warmup_features=None,
    flip: bool = False,
    seed: int = 0,
    callbacks=None,
    verbose="auto",
) -> list[dict]:
    """The two-stage recipe: train the head on a frozen backbone, then fine-tune the top layers.

    Stage 1 (``warmup_epochs``): ``frozen``, head learning rate ``head_lr``. With
    ``warmup_features=(f_train, f_val)`` (pooled features of ``x`` and of the validation images,
    e.g. from :func:`visiondl_keras.features.extract_features`) the head trains on them instead of
    running the backbone every step: same result, much faster.
    Stage 2 (``finetune_epochs``): ``partial`` with ``unfreeze`` layers, BatchNorm frozen, learning
    rate ``finetune_lr`` for the head and ``finetune_lr * backbone_lr_multiplier`` for the backbone.

    Returns:
        One row per epoch (see :class:`EpochClock`), with a ``stage`` column (``warmup``/``finetune``).
    """
    callbacks = list(callbacks or [])
    start, start_cpu = time.perf_counter(), time.process_time()
    rows = []
    if warmup_epochs:
        apply_strategy(model, "frozen")
        clock = EpochClock(start, 0, "warmup", start_cpu)
        if warmup_features is not None:
            f_train, f_val = warmup_features
            val = None if validation_data is None or f_val is None else (f_val, validation_data[1])
            fit_transfer(head_model(model), f_train, y, val, warmup_epochs, batch_size, head_lr,
                         seed=seed, callbacks=[clock, *callbacks], verbose=verbose)
        else:
            fit_transfer(model, x, y, validation_data, warmup_epochs, batch_size, head_lr, flip=flip,
                         seed=seed, callbacks=[clock, *callbacks], verbose=verbose)
        rows += clock.rows
    if finetune_epochs:
        apply_strategy(model, "partial", unfreeze=unfreeze)
        clock = EpochClock(start, warmup_epochs, "finetune", start_cpu)
        fit_transfer(model, x, y, validation_data, finetune_epochs, batch_size, finetune_lr,
                     backbone_lr_multiplier, flip=flip, seed=seed + 1, callbacks=[clock, *callbacks], verbose=verbose)
        rows += clock.rows
    return rows


__all__ = [
    "BACKBONES",
    "STRATEGIES",
    "ArrayBatches",
    "CosineToBudget",
    "EpochClock",
    "apply_strategy",
    "build_backbone",
    "build_transfer_model",
    "compile_transfer_model",
    "describe_transfer_model",
    "discriminative_optimizer",
    "feature_extractor",
    "find_weights_file",
    "fit_transfer",
    "freeze_all_but_top",
    "get_backbone",
    "head_model",
    "keras_weights_filename",
    "resolve_unfreeze",
    "trainable_params",
    "two_stage_fine_tune",
    "unfreezable_layers",
]
