"""The learning-rate range test (L. Smith, 2017), run through the training engine.

Train for a few dozen steps while the learning rate grows exponentially, record the (smoothed)
loss per step, and suggest the rate where the loss falls fastest. Taught in lesson 3.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import keras
import numpy as np

from visiondl_keras.data import augment
from visiondl_keras.errors import ConfigError
from visiondl_keras.reporting.plots import lr_finder_plot
from visiondl_keras.training.engine import fit_epoch


@dataclass
class LRFinderResult:
    """Result of :func:`lr_find`: learning rates tried, smoothed losses, the suggested LR."""

    lrs: np.ndarray
    losses: np.ndarray
    suggested_lr: float

    def plot(self):
        return lr_finder_plot(self.lrs, self.losses, self.suggested_lr)


class LRSweep(keras.callbacks.Callback):
    """Sets the learning rate of step ``i`` to ``lrs[i]`` and records the smoothed loss; stops the
    epoch when the loss becomes non-finite or exceeds ``blowup`` times its minimum."""

    def __init__(self, lrs: np.ndarray, smoothing: float = 0.8, blowup: float = 4.0):
        super().__init__()
        self.lrs, self.smoothing, self.blowup = lrs, smoothing, blowup
        self.losses: list[float] = []
        self._smooth, self._best, self._prev_mean = None, math.inf, 0.0

    def on_train_batch_end(self, batch, logs=None):
        mean = float((logs or {}).get("loss", math.nan))
        loss = mean * (batch + 1) - self._prev_mean * batch  # this batch's loss from the running mean
        self._prev_mean = mean
        self._smooth = loss if self._smooth is None else self.smoothing * self._smooth + (1 - self.smoothing) * loss
        self.losses.append(self._smooth)
        self._best = min(self._best, self._smooth)
        if not math.isfinite(loss) or self._smooth > self.blowup * self._best or batch + 1 >= len(self.lrs):
            self.model.stop_training = True
        else:
            self.model.optimizer.learning_rate.assign(float(self.lrs[batch + 1]))


def lr_find(model, x: np.ndarray, y: np.ndarray, start_lr: float = 1e-4, end_lr: float = 10.0, steps: int = 60,
            batch_size: int = 128, seed: int = 0, label_smoothing: float = 0.0, momentum: float = 0.9) -> LRFinderResult:
    """LR range test: train with an exponentially growing LR and watch the loss.

    The model's weights are restored afterwards. The suggestion is the LR of the steepest descent
    of the smoothed loss (before it blows up), a common, conservative choice.

    Args:
        model: an uncompiled or compiled logits model (it is re-compiled with SGD-Nesterov).
        x, y: uint8 images and int labels.
        start_lr, end_lr, steps: the exponential sweep.
        batch_size: images per step (drawn at random, baseline augmentation).
        seed: the draw.
        label_smoothing, momentum: of the loss and the optimizer.

    Returns:
        :class:`LRFinderResult`.

    Raises:
        ConfigError: not ``0 < start_lr < end_lr``.
    """
    if not 0 < start_lr < end_lr:
        raise ConfigError(f"need 0 < start_lr < end_lr, got {start_lr} and {end_lr}.")
    weights = model.get_weights()
    num_classes = model.output_shape[-1]
    model.compile(optimizer=keras.optimizers.SGD(learning_rate=start_lr, momentum=momentum, nesterov=True),
                  loss=keras.losses.CategoricalCrossentropy(from_logits=True, label_smoothing=label_smoothing),
                  metrics=[keras.metrics.CategoricalAccuracy(name="accuracy")])
    rng = np.random.default_rng(seed)
    policy = augment.get_policy("baseline", num_classes=num_classes)
    idx = rng.integers(0, len(x), steps * batch_size)
    xs, ys = policy(x[idx], y[idx], rng)
    lrs = start_lr * (end_lr / start_lr) ** (np.arange(steps) / max(steps - 1, 1))
    sweep = LRSweep(lrs)
    sweep.set_model(model)
    model.stop_training = False
    fit_epoch(model, xs, ys, batch_size, progress=False, callbacks=[sweep])
    model.stop_training = False
    model.set_weights(weights)
    losses = np.asarray(sweep.losses)
    lrs = lrs[: len(losses)]
    stop = int(np.argmin(losses)) + 1
    if stop >= 3:
        grads = np.gradient(losses[:stop], np.log(lrs[:stop]))
        suggested = float(lrs[int(np.argmin(grads))])
    else:
        suggested = float(lrs[0])
    return LRFinderResult(lrs, losses, suggested)
