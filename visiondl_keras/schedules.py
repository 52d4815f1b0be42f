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

from .errors import ConfigError


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


@keras.saving.register_keras_serializable(package="visiondl_keras")
class NesterovSGD(keras.optimizers.SGD):
    """SGD with Nesterov momentum whose momentum may follow the OneCycle momentum schedule.

    Args:
        cycle_momentum_steps: when > 0, momentum follows :func:`one_cycle_momentum` over that
            many steps (``pct_start``, ``base_momentum``, ``max_momentum``); else it is the
            constant ``momentum``.
        Other arguments as ``keras.optimizers.SGD``.
    """

    def __init__(self, learning_rate=0.01, momentum=0.9, nesterov=True, cycle_momentum_steps=0, pct_start=0.25,
                 base_momentum=0.85, max_momentum=0.95, **kwargs):
        super().__init__(learning_rate=learning_rate, momentum=momentum, nesterov=nesterov, **kwargs)
        self.cycle_momentum_steps = int(cycle_momentum_steps)
        self.pct_start, self.base_momentum, self.max_momentum = float(pct_start), float(base_momentum), float(max_momentum)

    def current_momentum(self):
        """The momentum at the optimizer's current step (a tensor or float)."""
        if self.cycle_momentum_steps <= 0:
            return self.momentum
        step = ops.cast(self.iterations, "float32")
        up = max(self.pct_start * self.cycle_momentum_steps, 1.0)
        down = _cos_interp(self.max_momentum, self.base_momentum, ops.clip(step / up, 0.0, 1.0), _KerasOps)
        back = _cos_interp(self.base_momentum, self.max_momentum,
                           ops.clip((step - up) / max(self.cycle_momentum_steps - up, 1), 0.0, 1.0), _KerasOps)
        return ops.where(step <= up, down, back)

    def update_step(self, gradient, variable, learning_rate):
        learning_rate = ops.cast(learning_rate, variable.dtype)
        gradient = ops.cast(gradient, variable.dtype)
        m = self.momentums[self._get_variable_index(variable)]
        momentum = ops.cast(self.current_momentum(), variable.dtype)
        self.assign(m, ops.subtract(ops.multiply(m, momentum), ops.multiply(gradient, learning_rate)))
        if self.nesterov:
            self.assign_add(variable, ops.subtract(ops.multiply(m, momentum), ops.multiply(gradient, learning_rate)))
        else:
            self.assign_add(variable, m)

    def get_config(self):
        config = super().get_config()
        config.update({"cycle_momentum_steps": self.cycle_momentum_steps, "pct_start": self.pct_start,
                       "base_momentum": self.base_momentum, "max_momentum": self.max_momentum})
        return config


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


@keras.saving.register_keras_serializable(package="visiondl_keras")
class ScaledSGD(keras.optimizers.SGD):
    """Nesterov SGD with coupled weight decay and per-variable learning-rate rules.

    Each step every trainable variable ``w`` with gradient ``g`` gets the update direction
    ``s·g + c·w``, which then goes through (Nesterov) momentum as in ``keras.optimizers.SGD``:
    ``c = coupled_weight_decay`` is L2 regularisation *through* the momentum, as in PyTorch's SGD
    and in airbench, and ``s`` is the variable's scale. Under SGD with momentum, scaling one
    variable's gradient by ``s`` is the same as an ``s``-times larger learning rate for it (a
    "bias scaler"), while its weight decay stays the same.

    Args:
        rules: list of dicts ``{"match": substring of the variable path, "scale": s,
            "decay": bool (default True), "until_step": n (optional: from step n on the variable
            gets no new gradient or decay; its momentum runs out within a few steps)}``; the first matching rule applies; unmatched variables use
            scale 1 with decay.
        coupled_weight_decay: ``c`` above.
        Other arguments as ``keras.optimizers.SGD``.
    """

    def __init__(self, learning_rate=0.01, momentum=0.85, nesterov=True, rules=None, coupled_weight_decay=0.0,
                 **kwargs):
        super().__init__(learning_rate=learning_rate, momentum=momentum, nesterov=nesterov, **kwargs)
        self.rules = [dict(r) for r in (rules or [])]
        self.coupled_weight_decay = float(coupled_weight_decay)

    def rule_for(self, variable) -> dict:
        """The rule that applies to ``variable`` (``{}`` for the default)."""
        path = getattr(variable, "path", variable.name)
        for rule in self.rules:
            if rule["match"] in path:
                return rule
        return {}

    def apply(self, grads, trainable_variables=None):
        variables = self._trainable_variables if trainable_variables is None else list(trainable_variables)
        step = ops.cast(self.iterations, "float32")
        scaled = []
        for g, v in zip(grads, variables):
            if g is None:
                scaled.append(g)
                continue
            rule = self.rule_for(v)
            g = ops.cast(g, v.dtype) * ops.cast(rule.get("scale", 1.0), v.dtype)
            if self.coupled_weight_decay and rule.get("decay", True):
                g = g + ops.cast(self.coupled_weight_decay, v.dtype) * v
            if "until_step" in rule:
                g = g * ops.cast(step < rule["until_step"], v.dtype)
            scaled.append(g)
        return super().apply(scaled, trainable_variables)

    def get_config(self):
        config = super().get_config()
        config.update({"rules": self.rules, "coupled_weight_decay": self.coupled_weight_decay})
        return config
