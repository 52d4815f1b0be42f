"""The fast from-scratch network: an airbench94-style CNN in Keras 3 layers.

After K. Jordan, "94% on CIFAR-10 in 3.29 seconds on a single GPU" (2024). Taught in lesson 3.
The model is built from Keras' own layers only, so a checkpoint loads with
``keras.models.load_model(path, safe_mode=True)`` without importing this package::

    image (raw 0-255 RGB, 32x32)
      -> Normalization (training-split mean/std)
      -> whiten: Conv2D 2x2, 24 filters, valid padding (31x31). Its kernel is set from the
         eigen-decomposition of the covariance of 2x2 training patches and kept frozen; its bias
         trains for the first epochs only (the optimizer's job, see ScaledSGD)
      -> GELU
      -> 3 conv groups: Conv 3x3 -> MaxPool 2 -> BN -> GELU -> Conv 3x3 -> BN -> GELU
         (widths e.g. 64/256/256; BatchNorm without a learned scale, momentum 0.6)
      -> GlobalMaxPooling -> Dense (no bias) -> x 1/9 -> float32 logits

Every 3x3 convolution starts as an identity ("dirac") map on its first ``in_channels``
filters, so the untrained network already passes its input through.
"""

from __future__ import annotations

import keras
import numpy as np

from visiondl_keras.errors import ConfigError

WHITEN_KERNEL = 2
WHITEN_FILTERS = 2 * 3 * WHITEN_KERNEL**2  # +/- each of the 12 eigenvectors of a 2x2x3 patch
DEFAULT_WIDTHS = (64, 256, 256)
BN_MOMENTUM = 0.6
LOGIT_SCALE = 1 / 9



def _torch_default_init():
    """PyTorch's default conv/linear init (kaiming-uniform, a = sqrt(5)): U(-1/sqrt(fan_in), 1/sqrt(fan_in)).

    A new instance per layer: an initializer object made once at import time would draw its seed
    before ``keras.utils.set_random_seed`` runs, and runs would not be reproducible.
    """
    return keras.initializers.VarianceScaling(scale=1 / 3, mode="fan_in", distribution="uniform")



def _conv_group(x, filters: int, name: str):
    for i in (1, 2):
        x = keras.layers.Conv2D(filters, 3, padding="same", use_bias=False, kernel_initializer=_torch_default_init(),
                                name=f"{name}_conv{i}")(x)
        if i == 1:
            x = keras.layers.MaxPooling2D(2, name=f"{name}_pool")(x)
        x = keras.layers.BatchNormalization(momentum=BN_MOMENTUM, epsilon=1e-12, scale=False, name=f"{name}_bn{i}")(x)
        x = keras.layers.Activation("gelu", name=f"{name}_gelu{i}")(x)
    return x


def whitening_kernel(images: np.ndarray, mean, std, eps: float = 5e-4) -> np.ndarray:
    """The patch-whitening kernel for 2x2 patches of ``images``, shape ``(2, 2, 3, 24)``.

    With ``P`` the (n, 12) matrix of normalised 2x2x3 patches and ``Σ = PᵀP / n = V Λ Vᵀ``,
    filter ``i`` is ``v_i / sqrt(λ_i + eps)`` and filter ``12 + i`` its negative: the
    convolution's outputs are the patches' coordinates in the eigenbasis, each scaled to unit
    variance (both signs, so the GELU after it loses nothing).

    Args:
        images: uint8 or float images (N, H, W, 3) on the 0-255 scale (a few thousand suffice).
        mean, std: the per-channel statistics the model normalises with.
        eps: added to the eigenvalues (keeps tiny-variance directions from exploding).

    Returns:
        float32 kernel in Keras' ``(kh, kw, in, out)`` layout.
    """
    x = (np.asarray(images, dtype=np.float32) - np.asarray(mean, np.float32)) / np.asarray(std, np.float32)
    k = WHITEN_KERNEL
    n, h, w, c = x.shape
    windows = np.lib.stride_tricks.sliding_window_view(x, (k, k), axis=(1, 2))  # (n, h-1, w-1, c, k, k)
    patches = windows.transpose(0, 1, 2, 4, 5, 3).reshape(-1, k * k * c).astype(np.float64)  # (kh, kw, c) order
    cov = patches.T @ patches / len(patches)
    eigenvalues, eigenvectors = np.linalg.eigh(cov)
    order = np.argsort(eigenvalues)[::-1]
    eigenvalues, eigenvectors = eigenvalues[order], eigenvectors[:, order]
    filters = (eigenvectors / np.sqrt(eigenvalues + eps)).T.reshape(-1, k, k, c)  # (12, kh, kw, c)
    kernel = np.concatenate([filters, -filters]).transpose(1, 2, 3, 0)  # (kh, kw, c, 24)
    return kernel.astype(np.float32)


def dirac_init(model: keras.Model) -> None:
    """Make each 3x3 convolution's first ``in_channels`` filters identity maps (in place).

    Filter ``j < in_channels`` becomes 1 at the centre tap of input channel ``j`` and 0
    elsewhere; the other filters keep their random initialisation. The untrained network then
    starts close to passing its input through, which lets a high learning rate work from step 1.
    """
    for layer in model.layers:
        if isinstance(layer, keras.layers.Conv2D) and layer.kernel_size == (3, 3):
            kernel = keras.ops.convert_to_numpy(layer.kernel).copy()
            kh, kw, c_in, c_out = kernel.shape
            m = min(c_in, c_out)
            kernel[:, :, :, :m] = 0.0
            kernel[kh // 2, kw // 2, np.arange(m), np.arange(m)] = 1.0
            layer.kernel.assign(kernel)


def build_airbench(widths=DEFAULT_WIDTHS, num_classes: int = 10, mean=None, std=None, whitening_images=None,
                   name: str | None = None, identity_init: bool = True) -> keras.Model:
    """The airbench-style network (lesson 3) as a functional Keras model.

    Args:
        widths: channels of the three conv groups. Defaults to ``(64, 256, 256)`` (1.97M
            parameters); ``(32, 128, 128)`` is the half-width variant (0.5M, ~3x faster on a CPU).
        num_classes: outputs.
        mean, std: per-channel statistics on the 0-255 scale (defaults: CIFAR-10's).
        whitening_images: training images (uint8, N x 32 x 32 x 3) to initialise the whitening
            kernel from; without them the kernel keeps a random initialisation (tests only).
        name: model name. Defaults to ``airbench_<w1>_<w2>_<w3>``.
        identity_init: start the 3x3 convolutions as identity maps (:func:`dirac_init`).

    Returns:
        An uncompiled ``keras.Model`` from raw 0-255 RGB to float32 logits. Train it with
        :class:`visiondl_keras.training.optimizers.ScaledSGD` (``airbench_gradient_rules``) to keep the
        whitening kernel frozen.

    Example:
        >>> model = build_airbench((16, 32, 32))
        >>> model.output_shape
        (None, 10)
    """
    from visiondl_keras.models.scratch import _input_block

    widths = tuple(int(w) for w in widths)
    if len(widths) != 3 or min(widths) < 4:
        raise ConfigError(f"widths must be three integers >= 4, got {widths!r}.")
    inputs, x = _input_block(mean, std)
    x = keras.layers.Conv2D(WHITEN_FILTERS, WHITEN_KERNEL, padding="valid", use_bias=True, name="whiten")(x)
    x = keras.layers.Activation("gelu", name="whiten_gelu")(x)
    for i, width in enumerate(widths):
        x = _conv_group(x, width, f"group{i + 1}")
    x = keras.layers.GlobalMaxPooling2D(name="pool")(x)
    x = keras.layers.Dense(num_classes, use_bias=False, kernel_initializer=_torch_default_init(), name="head")(x)
    outputs = keras.layers.Rescaling(LOGIT_SCALE, dtype="float32", name="logits")(x)
    model = keras.Model(inputs, outputs, name=name or "airbench_" + "_".join(map(str, widths)))
    if identity_init:
        dirac_init(model)
    whiten = model.get_layer("whiten")
    whiten.bias.assign(np.zeros(WHITEN_FILTERS, np.float32))
    if whitening_images is not None:
        norm_layer = model.get_layer("normalize")
        mean_v = np.asarray(keras.ops.convert_to_numpy(norm_layer.mean)).reshape(-1)
        std_v = np.sqrt(np.asarray(keras.ops.convert_to_numpy(norm_layer.variance)).reshape(-1))
        whiten.kernel.assign(whitening_kernel(whitening_images, mean_v, std_v))
    return model


def airbench_gradient_rules(bias_scaler: float = 64.0, whiten_bias_steps: int | None = None,
                            freeze_whitening: bool = True) -> list[dict]:
    """The per-variable rules of the recipe, for :class:`~visiondl_keras.training.optimizers.ScaledSGD`.

    * the whitening kernel never changes (gradient x 0, no weight decay), unless ``freeze_whitening``
      is False (the ablation without whitening trains that layer like any other);
    * the whitening bias trains for ``whiten_bias_steps`` steps, then stops;
    * BatchNorm offsets (``beta``) learn ``bias_scaler`` times faster than the other weights.
    """
    rules = [{"match": "whiten/kernel", "scale": 0.0, "decay": False}] if freeze_whitening else []
    if whiten_bias_steps is not None and freeze_whitening:
        rules.append({"match": "whiten/bias", "scale": 1.0, "until_step": int(whiten_bias_steps)})
    rules.append({"match": "/beta", "scale": float(bias_scaler)})
    return rules
