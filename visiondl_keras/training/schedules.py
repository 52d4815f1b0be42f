"""Learning-rate (and momentum) schedules: cosine with linear warm-up, OneCycle.

Each schedule exists twice, with one source of truth for the formula:

* a plain function (``warmup_cosine``, ``one_cycle_lr``, ``one_cycle_momentum``) that works on
  Python floats and numpy arrays, for plots, tests and exercises;
* a ``keras.optimizers.schedules.LearningRateSchedule`` (``WarmupCosine``, ``OneCycle``) that
  evaluates the same formula with ``keras.ops`` on the optimizer's step counter, so it is saved
  with a checkpoint and continues exactly after a resume.

``NesterovSGD`` is SGD whose momentum follows a schedule too (OneCycle cycles momentum inversely
to the learning rate); Keras' own SGD bakes the momentum in as a constant.
"""

from __future__ import annotations

import math

import keras
import numpy as np
from keras import ops

from visiondl_keras.errors import ConfigError


def _cos_interp(start, end, frac, xp):
    """Cosine interpolation from ``start`` (frac=0) to ``end`` (frac=1)."""
    return end + (start - end) * 0.5 * (1.0 + xp.cos(math.pi * frac))


def warmup_cosine(step, total_steps: int, base_lr: float, warmup_steps: int = 0, min_lr: float = 0.0):
    """Cosine annealing with a linear warm-up, as a plain function.

    The learning rate rises linearly from ``base_lr / warmup_steps`` (step 0) to ``base_lr`` at
    step ``warmup_steps - 1``... precisely: ``lr = base_lr * (step + 1) / warmup_steps`` for
    ``step < warmup_steps``; then it follows a half cosine from ``base_lr`` down to ``min_lr``,
    reached at ``step = total_steps``; it stays at ``min_lr`` afterwards.

    Args:
        step: a step index (int, float or numpy array), counted from 0.
        total_steps: steps of the whole run (> warmup_steps).
        base_lr: peak learning rate.
        warmup_steps: steps of linear warm-up (0 for none).
        min_lr: final learning rate.

    Returns:
        The learning rate(s), float or numpy array.

    Example:
        >>> round(warmup_cosine(0, 100, 0.1, warmup_steps=10), 4)
        0.01
        >>> warmup_cosine(100, 100, 0.1, warmup_steps=10)
        0.0
    """
    _check(total_steps, warmup_steps, base_lr)
    step = np.asarray(step, dtype=np.float64)
    warm = base_lr * (step + 1.0) / max(warmup_steps, 1)
    frac = np.clip((step - warmup_steps) / max(total_steps - warmup_steps, 1), 0.0, 1.0)
    cos = _cos_interp(base_lr, min_lr, frac, np)
    out = np.where(step < warmup_steps, warm, cos)
    return float(out) if out.ndim == 0 else out


def one_cycle_lr(step, total_steps: int, max_lr: float, pct_start: float = 0.25, div_factor: float = 25.0,
                 final_div_factor: float = 1e4):
    """OneCycle learning rate (Smith & Topin 2018), cosine phases as in PyTorch's ``OneCycleLR``.

    Rises from ``max_lr / div_factor`` to ``max_lr`` over the first ``pct_start`` of the run,
    then anneals to ``max_lr / (div_factor * final_div_factor)``.

    Example:
        >>> one_cycle_lr(25, 100, 0.4, pct_start=0.25)
        0.4
    """
    _check(total_steps, 0, max_lr)
    step = np.asarray(step, dtype=np.float64)
    up = max(pct_start * total_steps, 1.0)
    start, end = max_lr / div_factor, max_lr / (div_factor * final_div_factor)
    rise = _cos_interp(start, max_lr, np.clip(step / up, 0, 1), np)
    fall = _cos_interp(max_lr, end, np.clip((step - up) / max(total_steps - up, 1), 0, 1), np)
    out = np.where(step <= up, rise, fall)
    return float(out) if out.ndim == 0 else out


def one_cycle_momentum(step, total_steps: int, pct_start: float = 0.25, base_momentum: float = 0.85,
                       max_momentum: float = 0.95):
    """OneCycle momentum: falls from ``max_momentum`` to ``base_momentum`` while the LR rises, then back."""
    step = np.asarray(step, dtype=np.float64)
    up = max(pct_start * total_steps, 1.0)
    down = _cos_interp(max_momentum, base_momentum, np.clip(step / up, 0, 1), np)
    back = _cos_interp(base_momentum, max_momentum, np.clip((step - up) / max(total_steps - up, 1), 0, 1), np)
    out = np.where(step <= up, down, back)
    return float(out) if out.ndim == 0 else out


def _check(total_steps, warmup_steps, lr):
    if total_steps <= 0:
        raise ConfigError(f"total_steps must be positive, got {total_steps}.")
    if not 0 <= warmup_steps < total_steps:
        raise ConfigError(f"warmup_steps must lie in [0, total_steps={total_steps}), got {warmup_steps}.")
    if lr <= 0:
        raise ConfigError(f"the learning rate must be positive, got {lr}.")


class _KerasOps:
    """numpy-like namespace over keras.ops for the shared interpolation helper."""

    cos = staticmethod(ops.cos)


@keras.saving.register_keras_serializable(package="visiondl_keras")
class WarmupCosine(keras.optimizers.schedules.LearningRateSchedule):
    """Keras schedule for :func:`warmup_cosine` (same formula, evaluated with ``keras.ops``)."""

    def __init__(self, total_steps, base_lr, warmup_steps=0, min_lr=0.0):
        _check(total_steps, warmup_steps, base_lr)
        self.total_steps, self.base_lr = int(total_steps), float(base_lr)
        self.warmup_steps, self.min_lr = int(warmup_steps), float(min_lr)

    def __call__(self, step):
        step = ops.cast(step, "float32")
        warm = self.base_lr * (step + 1.0) / max(self.warmup_steps, 1)
        frac = ops.clip((step - self.warmup_steps) / max(self.total_steps - self.warmup_steps, 1), 0.0, 1.0)
        cos = _cos_interp(self.base_lr, self.min_lr, frac, _KerasOps)
        return ops.where(step < self.warmup_steps, warm, cos)

    def get_config(self):
        return {"total_steps": self.total_steps, "base_lr": self.base_lr, "warmup_steps": self.warmup_steps,
                "min_lr": self.min_lr}


@keras.saving.register_keras_serializable(package="visiondl_keras")
class OneCycle(keras.optimizers.schedules.LearningRateSchedule):
    """Keras schedule for :func:`one_cycle_lr`."""

    def __init__(self, total_steps, max_lr, pct_start=0.25, div_factor=25.0, final_div_factor=1e4):
        _check(total_steps, 0, max_lr)
        self.total_steps, self.max_lr, self.pct_start = int(total_steps), float(max_lr), float(pct_start)
        self.div_factor, self.final_div_factor = float(div_factor), float(final_div_factor)

    def __call__(self, step):
        step = ops.cast(step, "float32")
        up = max(self.pct_start * self.total_steps, 1.0)
        start = self.max_lr / self.div_factor
        end = self.max_lr / (self.div_factor * self.final_div_factor)
        rise = _cos_interp(start, self.max_lr, ops.clip(step / up, 0.0, 1.0), _KerasOps)
        fall = _cos_interp(self.max_lr, end, ops.clip((step - up) / max(self.total_steps - up, 1), 0.0, 1.0), _KerasOps)
        return ops.where(step <= up, rise, fall)

    def get_config(self):
        return {"total_steps": self.total_steps, "max_lr": self.max_lr, "pct_start": self.pct_start,
                "div_factor": self.div_factor, "final_div_factor": self.final_div_factor}


def make_schedule(name: str, total_steps: int, lr: float, warmup_steps: int = 0, pct_start: float = 0.25):
    """A Keras LR schedule by name: ``"cosine"`` (with warm-up), ``"onecycle"`` or ``"constant"``."""
    if name == "cosine":
        return WarmupCosine(total_steps, lr, warmup_steps)
    if name == "onecycle":
        return OneCycle(total_steps, lr, pct_start=pct_start)
    if name == "constant":
        return lr
    if name == "triangular":
        return Triangular(total_steps, lr, warmup_frac=pct_start)
    raise ConfigError(f"unknown schedule {name!r}; choose cosine, onecycle, triangular or constant.")


def triangular_lr(step, total_steps: int, peak_lr: float, warmup_frac: float = 0.23, start_factor: float = 0.2,
                  end_factor: float = 0.07, xp=np):
    """Triangular schedule: linear from ``start_factor·peak`` up to ``peak`` over the first
    ``warmup_frac`` of the steps, then linear down to ``end_factor·peak`` at the last step.

    ``xp`` is ``numpy`` (plots, tests) or ``keras.ops`` (inside the optimizer).
    """
    warm = max(int(total_steps * warmup_frac), 1)
    down = max(total_steps - warm, 1)
    step = np.asarray(step, dtype=np.float32) if xp is np else ops.cast(step, "float32")
    up_frac = xp.clip(step / warm, 0.0, 1.0)
    down_frac = xp.clip((step - warm) / down, 0.0, 1.0)
    factor = xp.where(step < warm, start_factor + (1.0 - start_factor) * up_frac,
                      1.0 + (end_factor - 1.0) * down_frac)
    return peak_lr * factor


@keras.saving.register_keras_serializable(package="visiondl_keras")
class Triangular(keras.optimizers.schedules.LearningRateSchedule):
    """Keras schedule form of :func:`triangular_lr`."""

    def __init__(self, total_steps: int, peak_lr: float, warmup_frac: float = 0.23, start_factor: float = 0.2,
                 end_factor: float = 0.07):
        self.total_steps, self.peak_lr = int(total_steps), float(peak_lr)
        self.warmup_frac, self.start_factor, self.end_factor = float(warmup_frac), float(start_factor), float(end_factor)

    def __call__(self, step):
        return triangular_lr(step, self.total_steps, self.peak_lr, self.warmup_frac, self.start_factor,
                             self.end_factor, xp=ops)

    def get_config(self):
        return {"total_steps": self.total_steps, "peak_lr": self.peak_lr, "warmup_frac": self.warmup_frac,
                "start_factor": self.start_factor, "end_factor": self.end_factor}
