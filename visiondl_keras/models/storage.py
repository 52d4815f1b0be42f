"""Storage precision of a trained model: a bfloat16 copy for shipping, a float32 copy for export.

A network trained with ``mixed_bfloat16`` already computes every convolution in bfloat16; only its
master weights are float32. :func:`cast_model` rebuilds the same architecture with another
variable dtype and copies the weights over, rounding them. A bfloat16 copy is half the file and, for
the fast recipe's network, classifies the test set as the float32 original does (lesson 3 measures
it); its output layer stays float32, so it still returns float32 logits and loads with
``keras.models.load_model(path, safe_mode=True)`` like any checkpoint. Converters that expect
float32 (TFLite) get :func:`cast_model` back to ``"float32"``.
"""

from __future__ import annotations

import keras

from visiondl_keras.errors import ConfigError
from visiondl_keras.names import STORAGE_DTYPES

# Layers that keep float32 whatever the storage dtype: the logits (a float32 output is part of the
# models' contract) and layers without weights that only reshape or scale.
_KEEP_FLOAT32 = ("logits",)


def model_storage_dtype(model: keras.Model) -> str:
    """The dtype most of ``model``'s weights are stored in (``"float32"``, ``"bfloat16"``, ...)."""
    counts: dict[str, int] = {}
    for w in model.weights:
        dtype = str(w.dtype)
        counts[dtype] = counts.get(dtype, 0) + int(keras.ops.size(w))
    return max(counts, key=counts.get) if counts else "float32"


def is_float32(model: keras.Model) -> bool:
    """True when every layer of ``model`` stores *and computes* in float32 (a network trained with a
    ``mixed_bfloat16`` policy stores float32 weights but computes in bfloat16: not float32)."""
    if model_storage_dtype(model) != "float32":
        return False
    return all(getattr(layer.dtype_policy, "compute_dtype", "float32") == "float32"
               for layer in model._flatten_layers(include_self=False)
               if not isinstance(layer, keras.layers.InputLayer))


def cast_model(model: keras.Model, dtype: str = "bfloat16") -> keras.Model:
    """A copy of a functional ``model`` whose layers store (and compute with) ``dtype`` weights.

    Every layer gets the plain dtype policy ``dtype`` except the float32 output layer
    (``logits``), so the copy still returns float32 logits. Weights are cast (rounded to nearest)
    from the original; the original is not changed.

    Args:
        model: a functional Keras model (any of this package's networks).
        dtype: ``"float32"``, ``"bfloat16"`` or ``"float16"``.

    Returns:
        A new, uncompiled ``keras.Model`` with the same name, layers and outputs.

    Raises:
        ConfigError: an unknown dtype.

    Example:
        >>> from visiondl_keras.models.airbench import build_airbench
        >>> small = cast_model(build_airbench((8, 16, 16)), "bfloat16")
        >>> model_storage_dtype(small), small.output.dtype
        ('bfloat16', 'float32')
    """
    if dtype not in STORAGE_DTYPES:
        raise ConfigError(f"dtype must be one of {STORAGE_DTYPES}, got {dtype!r}.")

    def clone(layer):
        config = layer.get_config()
        if layer.name not in _KEEP_FLOAT32 and not isinstance(layer, keras.layers.InputLayer):
            config["dtype"] = dtype
        return layer.__class__.from_config(config)

    copy = keras.models.clone_model(model, clone_function=clone)
    for target, source in zip(copy.weights, model.weights):
        target.assign(keras.ops.cast(source, target.dtype))
    return copy
