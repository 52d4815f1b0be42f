"""Freezing strategies of transfer models: which backbone layers train.

* ``frozen``: the whole backbone is frozen; only the head trains;
* ``partial``: :func:`freeze_all_but_top` unfreezes the top ``unfreeze`` weighted layers of the
  backbone (an int, or a fraction of them); every BatchNormalization layer stays frozen, i.e. in
  inference mode;
* ``full``: every backbone layer trains, BatchNorm included; with ``freeze_bottom=n`` the bottom
  ``n`` weighted layers (and every layer up to the next weighted one, BatchNorm included) stay
  frozen (:func:`freeze_bottom_layers`): their backward pass is skipped, which saves most where a
  backbone is most expensive, at its highest resolution.

The models come from :func:`visiondl_keras.models.backbones.build_transfer_model` (which re-exports
these names). Taught in lesson 4.
"""

from __future__ import annotations

import keras
import numpy as np

from visiondl_keras.errors import ConfigError

STRATEGIES = ("frozen", "partial", "full")
DEFAULT_UNFREEZE = 0.25


def get_backbone(model: keras.Model) -> keras.Model:
    """The nested backbone of a transfer model (its layer named ``"backbone"``). Taught in lesson 4.

    Args:
        model: a model from :func:`build_transfer_model`.

    Returns:
        The backbone, a ``keras.Model``.

    Raises:
        ConfigError: the model has no such layer (it is not from :func:`build_transfer_model`).

    Example:
        >>> get_backbone(build_transfer_model("mobilenet", weights=None, input_size=32)).name  # doctest: +SKIP
        'backbone'
    """
    try:
        layer = model.get_layer("backbone")
    except ValueError:
        layer = None
    if not isinstance(layer, keras.Model):
        raise ConfigError(f"model {model.name!r} has no nested 'backbone' model; build it with build_transfer_model.")
    return layer


def is_transfer_model(model) -> bool:
    """True when ``model`` has a nested model named ``"backbone"`` (built by :func:`build_transfer_model`).

    Taught in lesson 4.

    Example:
        >>> is_transfer_model(keras.Sequential([keras.Input((4,)), keras.layers.Dense(2)]))
        False
    """
    return any(layer.name == "backbone" and isinstance(layer, keras.Model) for layer in model.layers)


def unfreezable_layers(backbone: keras.Model) -> list[keras.layers.Layer]:
    """The layers :func:`freeze_all_but_top` counts: weighted, not BatchNormalization, bottom to top.

    Taught in lesson 4.

    Args:
        backbone: a backbone model (e.g. :func:`get_backbone` of a transfer model).

    Returns:
        The layers, in the backbone's (topological) order.

    Example:
        >>> base = keras.applications.MobileNetV2(input_shape=(32, 32, 3), include_top=False, weights=None, alpha=0.35)
        >>> unfreezable_layers(base)[-1].name
        'Conv_1'
    """
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

    Taught in lesson 4.
    """
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 0:
        raise ConfigError(f"n must be a non-negative integer number of layers, got {n!r}.")
    if is_transfer_model(model_or_backbone):
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
    """Number of layers ``partial`` unfreezes: ``unfreeze`` itself (int) or that fraction (float in (0, 1]).

    Taught in lesson 4.

    Args:
        backbone: the backbone (its :func:`unfreezable_layers` are counted).
        unfreeze: a layer count (int >= 1, capped at the number of layers) or a fraction in (0, 1].

    Returns:
        The number of layers, at least 1.

    Raises:
        ConfigError: ``unfreeze`` is neither.

    Example:
        >>> base = keras.applications.MobileNetV2(input_shape=(32, 32, 3), include_top=False, weights=None, alpha=0.35)
        >>> resolve_unfreeze(base, 3), resolve_unfreeze(base, 1.0) == len(unfreezable_layers(base))
        (3, True)
    """
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


def apply_strategy(model: keras.Model, strategy: str, unfreeze: int | float = DEFAULT_UNFREEZE,
                   freeze_bottom: int = 0) -> keras.Model:
    """Set the trainable flags of a transfer model for ``frozen``, ``partial`` or ``full``.

    The head (layers after the backbone) is always trainable and the ``"preprocess"`` layer never.
    Re-compile the model after calling this (Keras reads the flags at compile time).

    Args:
        model: a model from :func:`build_transfer_model`.
        strategy: ``"frozen"`` (backbone frozen), ``"partial"`` (:func:`freeze_all_but_top` with
            :func:`resolve_unfreeze` layers; BatchNorm frozen) or ``"full"`` (everything trainable).
        unfreeze: the ``partial`` layer count (int) or fraction (float).
        freeze_bottom: ``full`` only: keep the bottom layers frozen (:func:`freeze_bottom_layers`).

    Returns:
        The same model (for chaining).

    Raises:
        ConfigError: unknown strategy, bad ``unfreeze`` or ``freeze_bottom`` (or ``freeze_bottom``
            with another strategy than ``full``), or not a transfer model.

    Example:
        >>> model = build_transfer_model("mobilenet", "frozen", input_size=32, weights=None)  # doctest: +SKIP
        >>> trainable_params(apply_strategy(model, "full")) > trainable_params(apply_strategy(model, "frozen"))  # doctest: +SKIP
        True

    Taught in lesson 4.
    """
    if strategy not in STRATEGIES:
        raise ConfigError(f"unknown strategy {strategy!r}; choose one of {', '.join(STRATEGIES)}.")
    if freeze_bottom and strategy != "full":
        raise ConfigError(f"freeze_bottom applies to the full strategy only, got strategy {strategy!r}.")
    backbone = get_backbone(model)
    _set_head_trainable(model)
    if strategy == "partial":
        freeze_all_but_top(backbone, resolve_unfreeze(backbone, unfreeze))
        return model
    backbone.trainable = strategy == "full"
    for layer in backbone.layers:  # explicit: a container's flag does not always reach its layers
        layer.trainable = strategy == "full"
    if strategy == "full" and freeze_bottom:
        freeze_bottom_layers(backbone, freeze_bottom)
    return model


def freeze_bottom_layers(backbone: keras.Model, n: int) -> list[str]:
    """Freeze the bottom ``n`` weighted layers of a backbone and every layer before the next one.

    The counted layers are :func:`unfreezable_layers` (weighted, not BatchNormalization). Everything
    from the input up to, not including, the ``n + 1``-th of them gets ``trainable = False``: the
    BatchNormalization after the last frozen convolution runs in inference mode too, so the frozen
    part computes a fixed function. Keras then needs no gradient below the first trainable layer:
    the backward pass stops there. In MobileNetV2 the bottom 9 (the stem and blocks 0-2) run at the
    highest resolutions (64x64 and 32x32 pixels for a 128-px input) and take a large share of a
    training step on a CPU. The other layers' flags are left as they are. Taught in lesson 4.

    Args:
        backbone: a backbone model (e.g. :func:`get_backbone` of a transfer model).
        n: how many weighted layers to freeze from the bottom (``0``: none).

    Returns:
        The names of the frozen weighted layers, bottom to top.

    Raises:
        ConfigError: ``n`` is not a non-negative integer smaller than the number of counted layers.

    Example:
        >>> base = keras.applications.MobileNetV2(input_shape=(96, 96, 3), include_top=False, weights=None, alpha=0.35)
        >>> freeze_bottom_layers(base, 3)
        ['Conv1', 'expanded_conv_depthwise', 'expanded_conv_project']
        >>> [l.name for l in base.layers if l.trainable][:2]
        ['block_1_expand', 'block_1_expand_BN']
    """
    candidates = unfreezable_layers(backbone)
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or not 0 <= n < len(candidates):
        raise ConfigError(f"freeze_bottom must be an integer in [0, {len(candidates) - 1}] "
                          f"(the backbone has {len(candidates)} weighted layers), got {n!r}.")
    if n == 0:
        return []
    stop = next(i for i, layer in enumerate(backbone.layers) if layer is candidates[n])
    for layer in backbone.layers[:stop]:
        layer.trainable = False
    return [layer.name for layer in candidates[:n]]


def trainable_params(model: keras.Model) -> int:
    """Number of trainable scalars (the variables the optimizer updates). Taught in lesson 4.

    Args:
        model: any Keras model or layer.

    Returns:
        The sum of the sizes of ``model.trainable_weights``.

    Example:
        >>> trainable_params(keras.Sequential([keras.Input((4,)), keras.layers.Dense(2)]))
        10
    """
    return int(sum(int(np.prod(w.shape)) for w in model.trainable_weights))


__all__ = [
    "DEFAULT_UNFREEZE",
    "STRATEGIES",
    "apply_strategy",
    "freeze_all_but_top",
    "get_backbone",
    "is_transfer_model",
    "resolve_unfreeze",
    "trainable_params",
    "unfreezable_layers",
]
