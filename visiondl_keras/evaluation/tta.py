"""Test-time augmentation (TTA): average the logits of a few transformed copies of each image.

Levels, as in airbench:

* 0: the image alone;
* 1: the image and its mirror image, ``(f(x) + f(flip(x))) / 2``;
* 2: level 1, averaged half-and-half with level 1 of two 1-pixel translations (reflect padding,
  shifted up-left and down-right): six forward passes per image.

:func:`tta_logits` works on numpy arrays with any model; :class:`TestTimeAugmentation` is the
same computation as a Keras layer, so ``tta_model(model, level)`` is a model that ``evaluate``,
``calibrate``, ``diagnose`` and ``export`` can use like any other. Taught in lesson 3.
"""

from __future__ import annotations

import keras
import numpy as np

from visiondl_keras.errors import ConfigError
from visiondl_keras.evaluation.gradients import predict_logits

TTA_LEVELS = (0, 1, 2)
PASSES = {0: 1, 1: 2, 2: 6}


def _check_level(level) -> int:
    if level not in TTA_LEVELS:
        raise ConfigError(f"TTA level must be one of {TTA_LEVELS}, got {level!r}.")
    return int(level)


def _shift(images: np.ndarray, dy: int, dx: int) -> np.ndarray:
    padded = np.pad(images, ((0, 0), (1, 1), (1, 1), (0, 0)), mode="reflect")
    h, w = images.shape[1:3]
    return padded[:, 1 + dy : 1 + dy + h, 1 + dx : 1 + dx + w]


def tta_accuracies(model, images, labels, levels=(0, 2)) -> dict:
    """Accuracy of ``model`` at each TTA level, with its cost: ``{"0": {"test_accuracy", "seconds",
    "forward_passes_per_image"}, "2": {...}}`` (the ``tta`` entry of a run's ``metrics.json``).

    Example:
        >>> tta_accuracies(model, splits.x_test, splits.y_test, (0, 2))["2"]["test_accuracy"]  # doctest: +SKIP
    """
    import time

    out = {}
    for level in sorted({_check_level(v) for v in levels}):
        t0 = time.perf_counter()
        acc = float(np.mean(tta_logits(model, images, level).argmax(1) == np.asarray(labels)))
        out[str(level)] = {"test_accuracy": acc, "seconds": round(time.perf_counter() - t0, 2),
                           "forward_passes_per_image": PASSES[level]}
    return out


def tta_logits(model, images, level: int = 2, batch_size: int = 500) -> np.ndarray:
    """Logits of ``model`` on ``images`` averaged over the TTA level's views (numpy in and out).

    Args:
        model: a Keras model (or any callable accepted by ``predict_logits``) from images to logits.
        images: uint8 or float (N, H, W, 3) images on the 0-255 scale.
        level: 0, 1 or 2 (see the module docstring).
        batch_size: images per forward pass.

    Returns:
        float32 logits (N, classes).

    Example:
        >>> import keras
        >>> m = keras.Sequential([keras.Input((4, 4, 3)), keras.layers.Flatten(), keras.layers.Dense(2)])
        >>> tta_logits(m, np.zeros((3, 4, 4, 3), np.uint8), level=1).shape
        (3, 2)
    """
    level = _check_level(level)
    x = np.asarray(images)

    def mirror_avg(v):
        out = predict_logits(model, v, batch_size)
        if level >= 1:
            out = 0.5 * out + 0.5 * predict_logits(model, v[:, :, ::-1], batch_size)
        return out

    logits = mirror_avg(x)
    if level == 2:
        shifted = 0.5 * mirror_avg(_shift(x, -1, -1)) + 0.5 * mirror_avg(_shift(x, 1, 1))
        logits = 0.5 * logits + 0.5 * shifted
    return logits.astype(np.float32)


@keras.saving.register_keras_serializable(package="visiondl_keras")
class TestTimeAugmentation(keras.layers.Layer):
    """Wraps a model: calls it on the TTA views of its input and averages the logits.

    Args:
        model: the wrapped Keras model (images -> logits).
        level: 0, 1 or 2.
    """

    def __init__(self, model, level: int = 2, **kwargs):
        super().__init__(**kwargs)
        self.model = model
        self.level = _check_level(level)

    def _mirror_avg(self, x):
        out = self.model(x)
        if self.level >= 1:
            out = 0.5 * out + 0.5 * self.model(keras.ops.flip(x, axis=2))
        return out

    def call(self, x):
        out = self._mirror_avg(x)
        if self.level == 2:
            h, w = x.shape[1], x.shape[2]
            padded = keras.ops.pad(x, ((0, 0), (1, 1), (1, 1), (0, 0)), mode="reflect")
            up_left = padded[:, 0:h, 0:w]
            down_right = padded[:, 2 : h + 2, 2 : w + 2]
            out = 0.5 * out + 0.25 * (self._mirror_avg(up_left) + self._mirror_avg(down_right))
        return out

    def get_config(self):
        config = super().get_config()
        config.update({"model": keras.saving.serialize_keras_object(self.model), "level": self.level})
        return config

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        config["model"] = keras.saving.deserialize_keras_object(config["model"])
        return cls(**config)


def tta_model(model, level: int = 2) -> keras.Model:
    """A Keras model that applies :class:`TestTimeAugmentation` of ``level`` around ``model``."""
    level = _check_level(level)
    if level == 0:
        return model
    inputs = keras.Input(shape=model.input_shape[1:], name="image")
    outputs = TestTimeAugmentation(model, level, name=f"tta{level}")(inputs)
    return keras.Model(inputs, outputs, name=f"{model.name}_tta{level}")
