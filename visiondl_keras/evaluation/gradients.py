"""Gradients that Keras does not expose, through one small dispatch per backend.

Keras 3 runs on TensorFlow, JAX and PyTorch, but it has no backend-agnostic way to take the
gradient of a model's output with respect to its *input* or to an *intermediate activation*.
Grad-CAM and adversarial attacks need both, so this module does it once, per backend:

* TensorFlow: ``tf.GradientTape`` (wrapped in ``tf.function`` for speed);
* JAX: ``jax.value_and_grad`` (wrapped in ``jax.jit``);
* PyTorch: ``torch.autograd.grad``.

Everything else (the model call, the loss, the score) is written with ``keras.ops`` and so is
the same on every backend. The public functions take and return numpy arrays.

Intermediate activations are reached without rebuilding the model graph, so layers inside a
nested model (a pretrained backbone used as a layer) work too: the target layer's ``call`` is
wrapped for the duration of the computation so that it returns ``activation + delta`` with a
zero tensor ``delta``; the gradient with respect to ``delta`` is the gradient with respect to
the activation, and the activation itself is returned as an auxiliary output.

Example:
    >>> import numpy as np
    >>> from visiondl_keras.models import build_simple_cnn
    >>> model = build_simple_cnn(width=4)
    >>> x = np.random.default_rng(0).uniform(0, 255, (2, 32, 32, 3)).astype("float32")
    >>> g = input_gradients(model, x, np.array([0, 1]))
    >>> g.shape
    (2, 32, 32, 3)
"""

from __future__ import annotations

import contextlib
import weakref
from collections.abc import Callable

import keras
import numpy as np
from keras.src.layers.convolutional.base_conv import BaseConv

from visiondl_keras.errors import ConfigError, ModelError

__all__ = [
    "find_layer",
    "flatten_layers",
    "input_gradients",
    "last_conv_layer",
    "layer_activations_and_gradients",
    "predict_logits",
    "value_and_grad",
]

# Compiled functions, cached per model (weakly) and per kind of computation.
_COMPILED: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


# --------------------------------------------------------------------------------------------
# The per-backend dispatch
# --------------------------------------------------------------------------------------------


def _to_numpy(x):
    if x is None:
        return None
    if keras.backend.backend() == "torch" and hasattr(x, "detach"):
        x = x.detach()  # a tensor that requires grad cannot become numpy directly
    return np.asarray(keras.ops.convert_to_numpy(x))


def _make_step(fn: Callable, n_args: int, compile: bool) -> Callable:
    """Return ``g(*args) -> (value, aux, grads)``: ``fn``'s value, aux output and gradients.

    ``fn(*tensors) -> (scalar, aux)``; the gradient is taken of the scalar with respect to
    every argument. With ``compile``, the step is a ``tf.function`` / ``jax.jit`` (worth it
    when the same step runs on many batches; tracing costs about a second).
    """
    # Each backend's own autodiff library is imported here, for the active backend only: the
    # others need not be installed.
    backend = keras.backend.backend()
    if backend == "tensorflow":
        import tensorflow as tf

        def tf_step(*args):
            with tf.GradientTape() as tape:
                for a in args:
                    tape.watch(a)
                value, aux = fn(*args)
            grads = tape.gradient(value, list(args), unconnected_gradients=tf.UnconnectedGradients.ZERO)
            return value, aux, grads

        return tf.function(tf_step, reduce_retracing=True) if compile else tf_step
    if backend == "jax":
        import jax

        def jax_step(*args):
            (value, aux), grads = jax.value_and_grad(fn, argnums=tuple(range(n_args)), has_aux=True)(*args)
            return value, aux, grads

        return jax.jit(jax_step) if compile else jax_step
    if backend == "torch":
        import torch

        def torch_step(*args):
            args = [a.detach().requires_grad_(True) for a in args]
            value, aux = fn(*args)
            grads = torch.autograd.grad(value, args, allow_unused=True)
            grads = [torch.zeros_like(a) if g is None else g for a, g in zip(args, grads)]
            return value, aux, grads

        return torch_step
    raise ModelError(
        f"gradients are implemented for the tensorflow, jax and torch backends, not {backend!r}; "
        "set KERAS_BACKEND to one of them."
    )


def value_and_grad(fn: Callable, *args: np.ndarray, compiled_key=None, model=None):
    """Evaluate ``fn(*args) -> (scalar, aux)`` and the scalar's gradient w.r.t. every argument.

    The backend-specific part of this module: TensorFlow ``GradientTape``, JAX
    ``jax.value_and_grad``, PyTorch ``torch.autograd.grad``.

    Args:
        fn: a function of backend tensors written with ``keras.ops`` (and model calls) that
            returns a scalar tensor and an auxiliary output (a tensor or a tuple of tensors).
        *args: numpy arrays, converted to float32 backend tensors.
        compiled_key: when given together with ``model``, the compiled function is cached under
            ``(model, compiled_key)``, compiled (``tf.function``/``jax.jit``) and reused (``fn``
            must then compute the same thing on every call); otherwise ``fn`` runs eagerly.
        model: see ``compiled_key``.

    Returns:
        ``(value, aux, grads)`` as numpy: a float, ``aux`` (same structure), a list of arrays
        with the shapes of ``args``.

    Example:
        >>> v, aux, (g,) = value_and_grad(lambda x: (keras.ops.sum(x**2), x), np.ones(3, "float32"))
        >>> g.tolist()
        [2.0, 2.0, 2.0]
    """
    if compiled_key is not None and model is not None:
        cache = _COMPILED.setdefault(model, {})
        step = cache.get(compiled_key)
        if step is None:
            step = cache[compiled_key] = _make_step(fn, len(args), compile=True)
    else:
        step = _make_step(fn, len(args), compile=False)
    tensors = [keras.ops.convert_to_tensor(np.asarray(a, dtype=np.float32)) for a in args]
    value, aux, grads = step(*tensors)
    if isinstance(aux, (tuple, list)):
        aux = type(aux)(_to_numpy(a) for a in aux)
    else:
        aux = _to_numpy(aux)
    return float(_to_numpy(value)), aux, [_to_numpy(g) for g in grads]


# --------------------------------------------------------------------------------------------
# Layers: flattening nested models, finding the last convolutional feature map
# --------------------------------------------------------------------------------------------


def flatten_layers(model) -> list:
    """Every layer of ``model`` in order, nested models expanded in place (depth first).

    Args:
        model: a ``keras.Model`` (functional, sequential or nested).

    Returns:
        A list of ``(path, layer)`` pairs; ``path`` is the ``/``-joined names from the outer
        model, e.g. ``"mobilenetv2_0.35_96/out_relu"``.
    """
    out = []

    def visit(m, prefix):
        for layer in getattr(m, "layers", []):
            path = f"{prefix}{layer.name}"
            out.append((path, layer))
            if isinstance(layer, keras.Model) or hasattr(layer, "layers"):
                visit(layer, path + "/")

    visit(model, "")
    return out


def _output_shape(layer):
    try:
        out = layer.output
    except (AttributeError, ValueError):  # unbuilt or shared layer
        return None
    if isinstance(out, (list, tuple)):
        return None
    return tuple(out.shape)


def _is_conv(layer) -> bool:
    return isinstance(layer, BaseConv) or isinstance(layer, keras.layers.DepthwiseConv2D)


def last_conv_layer(model):
    """The layer whose output is the model's last convolutional feature map.

    Searches the layers in order, nested models included, and returns the last one after the
    first convolution whose output is a spatial feature map ``(N, h, w, C)`` with ``h, w > 1``,
    skipping pooling, padding, dropout and noise layers (so for a conv-BN-ReLU-pool block it is
    the ReLU, for a residual block its ``Add``, for a MobileNetV2 backbone its ``out_relu``):
    what Grad-CAM uses by default.

    Args:
        model: a ``keras.Model``.

    Returns:
        ``(path, layer)``.

    Raises:
        ModelError: the model has no convolutional layer.
    """
    layers = flatten_layers(model)
    first_conv = next((i for i, (_, layer) in enumerate(layers) if _is_conv(layer)), None)
    if first_conv is None:
        raise ModelError(f"model {model.name!r} has no convolutional layer; pass layer=... to choose one.")
    found = None
    pooling = tuple(
        getattr(keras.layers, n)
        for n in ("MaxPooling2D", "AveragePooling2D", "Dropout", "SpatialDropout2D", "GaussianNoise", "ZeroPadding2D")
    )
    for path, layer in layers[first_conv:]:
        if isinstance(layer, (keras.Model,) + pooling):
            continue
        shape = _output_shape(layer)
        if shape is not None and len(shape) == 4 and (shape[1] or 2) > 1 and (shape[2] or 2) > 1:
            found = (path, layer)
    if found is None:
        raise ModelError(f"model {model.name!r} has no spatial feature map after its first convolution.")
    return found


def find_layer(model, layer):
    """Resolve ``layer`` (None, a name, a ``"outer/inner"`` path or a layer object) in ``model``.

    Names are matched against the full path and against the plain layer name, so a layer
    inside a nested backbone can be named either way.

    Returns:
        ``(path, layer)``.

    Raises:
        ConfigError: no such layer (the message lists a few candidate names).
    """
    if layer is None:
        return last_conv_layer(model)
    layers = flatten_layers(model)
    if isinstance(layer, str):
        for path, lyr in layers:
            if path == layer:
                return path, lyr
        matches = [(p, lyr) for p, lyr in layers if lyr.name == layer]
        if len(matches) == 1:
            return matches[0]
        if len(matches) > 1:
            raise ConfigError(f"layer name {layer!r} is ambiguous; use one of the paths {[p for p, _ in matches]}.")
        spatial = [p for p, lyr in layers if (_output_shape(lyr) or ()).__len__() == 4][-5:]
        raise ConfigError(f"model {model.name!r} has no layer {layer!r}; its last feature-map layers are {spatial}.")
    for path, lyr in layers:
        if lyr is layer:
            return path, lyr
    raise ConfigError(f"layer {getattr(layer, 'name', layer)!r} is not part of model {model.name!r}.")


@contextlib.contextmanager
def _intercept(layer, delta_holder: dict):
    """Make ``layer`` return ``output + delta_holder['delta']`` and record the output."""
    original = layer.__dict__.get("call")
    unbound = layer.call

    def call(*args, **kwargs):
        out = unbound(*args, **kwargs)
        delta = delta_holder.get("delta")
        delta_holder["activation"] = out
        if delta is not None:
            out = out + keras.ops.cast(delta, out.dtype)
        return out

    layer.call = call
    try:
        yield
    finally:
        if original is None:
            del layer.call
        else:
            layer.call = original


# --------------------------------------------------------------------------------------------
# Public functions
# --------------------------------------------------------------------------------------------


def _batches(n: int, batch_size: int):
    if not isinstance(batch_size, (int, np.integer)) or batch_size < 1:
        raise ConfigError(f"batch_size must be a positive integer, got {batch_size!r}.")
    for start in range(0, n, batch_size):
        yield slice(start, min(n, start + batch_size))


def _check_images(images) -> np.ndarray:
    x = np.asarray(images)
    if x.ndim != 4:
        raise ConfigError(f"images must be a batch (N, H, W, C), got shape {x.shape}.")
    return x.astype(np.float32, copy=False)


def check_labelled_images(images, labels) -> tuple[np.ndarray, np.ndarray]:
    """Check a batch of RGB images and its labels; returns ``(images, int64 labels)``.

    Args:
        images: (N, H, W, 3) images.
        labels: (N,) int labels.

    Returns:
        The images as a numpy array (dtype unchanged) and the labels as int64.

    Raises:
        ConfigError: the images are not (N, H, W, 3) or the labels do not match them.
    """
    x = np.asarray(images)
    y = np.asarray(labels)
    if x.ndim != 4 or x.shape[-1] != 3:
        raise ConfigError(f"images must have shape (N, H, W, 3), got {x.shape}.")
    if y.shape != (len(x),):
        raise ConfigError(f"labels must have shape ({len(x)},), got {y.shape}.")
    return x, y.astype(np.int64)


def predict_logits(model, images, batch_size: int = 512) -> np.ndarray:
    """The model's outputs (logits for this package's models) as float32 numpy, batched.

    Args:
        model: a ``keras.Model``.
        images: (N, H, W, C) images on the scale the model expects (0-255 for this package).
        batch_size: images per forward pass.

    Returns:
        float32 array (N, num_classes).
    """
    x = _check_images(images)
    if len(x) == 0:
        return np.zeros((0,) + tuple(model.output_shape[1:]), np.float32)
    # predict_on_batch runs the compiled predict step on each slice directly; model.predict builds
    # a tf.data pipeline per call, which made it about 1.9x slower here on 10,000 images (and far
    # slower on the many small calls of the robustness benchmarks).
    out = [_to_numpy(model.predict_on_batch(x[sl])).astype(np.float32, copy=False) for sl in _batches(len(x), batch_size)]
    return np.concatenate(out)


def input_gradients(
    model,
    images,
    labels_or_fn,
    batch_size: int = 256,
    from_logits: bool = True,
    return_outputs: bool = False,
):
    """Gradient of a per-image loss or score with respect to the input pixels.

    Args:
        model: a ``keras.Model`` (this package's models take 0-255 RGB and return logits).
        images: (N, H, W, C) images, any numeric dtype; gradients are taken at float32 values.
        labels_or_fn: either int labels ``(N,)``: the gradient of the cross-entropy loss of each
            image with respect to its own pixels; or a function ``fn(outputs) -> tensor``
            written with ``keras.ops`` that returns a per-image score ``(n,)`` (or a scalar) for a
            batch of model outputs: the gradient of its sum. A function sees only the batch, so
            per-image targets must be encoded in it (prefer labels for those).
        batch_size: images per backward pass.
        from_logits: whether the model returns logits (True for this package) or probabilities.
        return_outputs: also return the model outputs of the forward pass.

    Returns:
        float32 gradients of the same shape as ``images``; with ``return_outputs``, a pair
        ``(gradients, outputs)``.

    Example:
        >>> g = input_gradients(model, x_test[:8], y_test[:8])  # doctest: +SKIP
        >>> adversarial = np.clip(x_test[:8] + 8.0 * np.sign(g), 0, 255)  # doctest: +SKIP
    """
    x = _check_images(images)
    use_labels = not callable(labels_or_fn)
    if use_labels:
        labels = np.asarray(labels_or_fn).astype(np.int64)
        if labels.shape != (len(x),):
            raise ConfigError(f"labels must have shape ({len(x)},), got {labels.shape}.")
        n_out = model.output_shape[-1]
        if len(labels) and (labels.min() < 0 or labels.max() >= n_out):
            raise ConfigError(f"labels must lie in 0..{n_out - 1}, got {labels.min()}..{labels.max()}.")

        def fn(xb, yb):
            out = model(xb, training=False)
            y = keras.ops.cast(yb, "int32")
            loss = keras.ops.sparse_categorical_crossentropy(y, keras.ops.cast(out, "float32"), from_logits=from_logits)
            return keras.ops.sum(loss), out

        key = ("input_ce", bool(from_logits))
    else:
        score_fn = labels_or_fn

        def fn(xb, yb):
            out = model(xb, training=False)
            return keras.ops.sum(score_fn(out)), out

        key = None  # user functions are not cached
    grads = np.empty_like(x, dtype=np.float32)
    outputs = []
    dummy = np.zeros((0,), np.float32)
    for sl in _batches(len(x), batch_size):
        yb = labels[sl].astype(np.float32) if use_labels else dummy
        _, out, (g, _) = value_and_grad(fn, x[sl], yb, compiled_key=key, model=model if key else None)
        grads[sl] = g
        outputs.append(out)
    if return_outputs:
        outs = (np.concatenate(outputs).astype(np.float32) if outputs
                else np.zeros((0,) + tuple(model.output_shape[1:]), np.float32))
        return grads, outs
    return grads


def _class_indices(class_index, n: int):
    if class_index is None:
        return None
    idx = np.asarray(class_index)
    if idx.ndim == 0:
        idx = np.full((n,), int(idx))
    if idx.shape != (n,) or not np.issubdtype(idx.dtype, np.integer):
        raise ConfigError(f"class_index must be None, an int or {n} ints (one per image), got shape {idx.shape}.")
    return idx.astype(np.int64)


def layer_activations_and_gradients(model, images, layer=None, class_index=None, batch_size: int = 64):
    """Activations of ``layer`` and the gradient of a class score with respect to them.

    The score is the model output for the class (the logit, for this package's models), as in
    Grad-CAM. Works for layers inside nested models (pretrained backbones used as a layer).

    Args:
        model: a ``keras.Model``.
        images: (N, H, W, C) images on the model's input scale.
        layer: None (the last convolutional feature map, see :func:`last_conv_layer`), a layer
            name or ``"outer/inner"`` path, or a layer object.
        class_index: None (each image's predicted class), an int, or one int per image.
        batch_size: images per backward pass.

    Returns:
        ``(activations, gradients, outputs)``: float32 numpy arrays, the first two of the layer's
        output shape (N, h, w, C), ``outputs`` the model outputs (N, num_classes).

    Raises:
        ConfigError: unknown layer or bad ``class_index``.
        ModelError: ``layer`` is None and the model has no convolution.

    Example:
        >>> acts, grads, logits = layer_activations_and_gradients(model, x[:4])  # doctest: +SKIP
        >>> acts.shape == grads.shape  # doctest: +SKIP
        True
    """
    x = _check_images(images)
    _, target = find_layer(model, layer)
    idx = _class_indices(class_index, len(x))
    n_out = model.output_shape[-1]
    if idx is not None and len(idx) and (idx.min() < 0 or idx.max() >= n_out):
        raise ConfigError(f"class_index must lie in 0..{n_out - 1}, got {idx.min()}..{idx.max()}.")
    holder: dict = {}

    # One forward pass on a single image learns the activation's shape for ``delta``.
    with _intercept(target, holder):
        model(x[:1], training=False)
    act_shape = tuple(int(d) for d in holder["activation"].shape[1:])
    holder.clear()

    def fn(xb, delta, cls):
        holder["delta"] = delta
        out = keras.ops.cast(model(xb, training=False), "float32")
        act = holder["activation"]
        holder.clear()
        c = keras.ops.cast(cls, "int32")
        c = keras.ops.where(c < 0, keras.ops.cast(keras.ops.argmax(out, axis=-1), "int32"), c)
        score = keras.ops.take_along_axis(out, keras.ops.expand_dims(c, -1), axis=-1)
        return keras.ops.sum(score), (keras.ops.cast(act, "float32"), out)

    acts = np.empty((len(x),) + act_shape, np.float32)
    grads = np.empty_like(acts)
    outs = []
    with _intercept(target, holder):
        for sl in _batches(len(x), batch_size):
            n = sl.stop - sl.start
            cls = np.full((n,), -1, np.float32) if idx is None else idx[sl].astype(np.float32)
            delta = np.zeros((n,) + act_shape, np.float32)
            _, (a, out), (_, g, _) = value_and_grad(fn, x[sl], delta, cls)
            acts[sl] = a
            grads[sl] = g
            outs.append(out)
    return acts, grads, np.concatenate(outs).astype(np.float32)
