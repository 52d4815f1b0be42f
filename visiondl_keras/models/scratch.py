"""Lightweight CNNs trained from scratch.

Two designs, both *self-contained*: the model takes raw RGB images on the 0-255 scale
(uint8 or float, 32x32) and normalises them itself with the training split's per-channel
mean and std, so a checkpoint needs nothing else at inference time. The last layer is a
float32 ``Dense`` named ``"logits"`` that returns **logits** (apply a softmax, or a
temperature and a softmax, for probabilities); it stays float32 under mixed precision.

* ``resnet9``: a ResNet-9-style net (after Page's DAWNBench design): a prep conv, three stages
  (conv-BN-ReLU, max-pool) with residual blocks after the first and third, global max
  pooling, a 1/8 scale and a linear classifier. ``width`` scales every stage (channels w, 2w, 4w, 8w).
* ``simple``: a smaller plain VGG-style net (two convs per stage, three stages).
"""

from __future__ import annotations

import keras
import numpy as np

from visiondl_keras.errors import ConfigError

CIFAR_MEAN = np.array([125.3, 123.0, 113.9], dtype=np.float32)
CIFAR_STD = np.array([63.0, 62.1, 66.7], dtype=np.float32)
ARCHITECTURES = ("resnet9", "simple")


def _conv_bn(x, filters, name, pool=False):
    x = keras.layers.Conv2D(filters, 3, padding="same", use_bias=False, kernel_initializer="he_normal", name=f"{name}_conv")(x)
    x = keras.layers.BatchNormalization(momentum=0.9, epsilon=1e-5, name=f"{name}_bn")(x)
    x = keras.layers.Activation("relu", name=f"{name}_relu")(x)
    if pool:
        x = keras.layers.MaxPooling2D(2, name=f"{name}_pool")(x)
    return x


def _residual(x, filters, name):
    y = _conv_bn(x, filters, f"{name}_a")
    y = _conv_bn(y, filters, f"{name}_b")
    return keras.layers.Add(name=f"{name}_add")([x, y])


def _input_block(mean, std):
    mean = CIFAR_MEAN if mean is None else np.asarray(mean, dtype=np.float32)
    std = CIFAR_STD if std is None else np.asarray(std, dtype=np.float32)
    if mean.shape != (3,) or std.shape != (3,) or np.any(std <= 0):
        raise ConfigError(f"mean and std must be 3 per-channel values with std > 0, got {mean} and {std}.")
    inputs = keras.Input(shape=(32, 32, 3), name="image")
    x = keras.layers.Normalization(mean=mean.tolist(), variance=(std**2).tolist(), name="normalize")(inputs)
    return inputs, x


def build_resnet9(width: int = 32, num_classes: int = 10, mean=None, std=None, name: str | None = None) -> keras.Model:
    """A ResNet-9-style CNN for 32x32 images.

    Args:
        width: channels of the first stage (stages use w, 2w, 4w, 8w). 64 is the classic
            DAWNBench size (6.6M parameters); 16-32 suit a CPU.
        num_classes: outputs.
        mean, std: per-channel statistics on the 0-255 scale (defaults: CIFAR-10's).
        name: model name.

    Returns:
        An uncompiled ``keras.Model`` from raw 0-255 RGB to float32 logits.

    Example:
        >>> model = build_resnet9(width=16)
        >>> model.output_shape
        (None, 10)
    """
    if not isinstance(width, int) or width < 4:
        raise ConfigError(f"width must be an integer >= 4, got {width!r}.")
    inputs, x = _input_block(mean, std)
    x = _conv_bn(x, width, "prep")
    x = _conv_bn(x, 2 * width, "stage1", pool=True)
    x = _residual(x, 2 * width, "res1")
    x = _conv_bn(x, 4 * width, "stage2", pool=True)
    x = _conv_bn(x, 8 * width, "stage3", pool=True)
    x = _residual(x, 8 * width, "res3")
    x = keras.layers.GlobalMaxPooling2D(name="pool")(x)
    # Page's ResNet-9 scales the classifier input by 1/8: max-pooled ReLU features are large,
    # and unscaled logits make the first steps at a high learning rate diverge.
    x = keras.layers.Rescaling(0.125, name="pool_scale")(x)
    outputs = keras.layers.Dense(num_classes, dtype="float32", name="logits")(x)
    return keras.Model(inputs, outputs, name=name or f"resnet9_w{width}")


def build_simple_cnn(width: int = 16, num_classes: int = 10, mean=None, std=None, name: str | None = None) -> keras.Model:
    """A small VGG-style CNN (two 3x3 convs per stage, three stages, global average pooling).

    Args:
        width: channels of the first stage (w, 2w, 4w).
        num_classes: outputs.
        mean, std: per-channel statistics on the 0-255 scale.
        name: model name.

    Returns:
        An uncompiled ``keras.Model`` from raw 0-255 RGB to float32 logits.

    Example:
        >>> build_simple_cnn(width=8).count_params() < 100_000
        True
    """
    if not isinstance(width, int) or width < 4:
        raise ConfigError(f"width must be an integer >= 4, got {width!r}.")
    inputs, x = _input_block(mean, std)
    for i, mult in enumerate((1, 2, 4)):
        x = _conv_bn(x, mult * width, f"block{i + 1}a")
        x = _conv_bn(x, mult * width, f"block{i + 1}b", pool=True)
    x = keras.layers.GlobalAveragePooling2D(name="pool")(x)
    outputs = keras.layers.Dense(num_classes, dtype="float32", name="logits")(x)
    return keras.Model(inputs, outputs, name=name or f"simple_w{width}")


def build_scratch_model(arch: str = "resnet9", width: int = 32, num_classes: int = 10, mean=None, std=None) -> keras.Model:
    """Build a from-scratch model by name (``"resnet9"`` or ``"simple"``)."""
    if arch == "resnet9":
        return build_resnet9(width, num_classes, mean, std)
    if arch == "simple":
        return build_simple_cnn(width, num_classes, mean, std)
    raise ConfigError(f"unknown architecture {arch!r}; choose one of {', '.join(ARCHITECTURES)}.")


def count_flops(model: keras.Model) -> int:
    """Multiply-accumulates x 2 of one forward pass on one image (convolutions and dense layers).

    Counted analytically from the layers' output shapes and kernels; BatchNorm, activations and
    pooling are ignored (they are a few percent).
    """
    flops = 0
    for layer in model._flatten_layers(include_self=False, recursive=True):
        if isinstance(layer, keras.layers.Conv2D) and not isinstance(layer, keras.layers.DepthwiseConv2D):
            _, h, w, c_out = layer.output.shape
            kh, kw, c_in, _ = layer.kernel.shape
            flops += 2 * h * w * c_out * kh * kw * c_in // layer.groups
        elif isinstance(layer, keras.layers.DepthwiseConv2D):
            _, h, w, c_out = layer.output.shape
            kh, kw = layer.kernel.shape[:2]
            flops += 2 * h * w * c_out * kh * kw
        elif isinstance(layer, keras.layers.Dense):
            flops += 2 * int(np.prod(layer.kernel.shape))
    return int(flops)


def model_summary(model: keras.Model) -> dict:
    """Parameter counts and FLOPs of a model, as a dict for run metadata."""
    trainable = int(sum(np.prod(w.shape) for w in model.trainable_weights))
    total = int(model.count_params())
    return {"name": model.name, "params": total, "trainable_params": trainable, "flops": count_flops(model)}
