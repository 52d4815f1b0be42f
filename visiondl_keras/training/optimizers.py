"""Optimizers: SGD with a OneCycle momentum schedule, ScaledSGD (per-variable rules, coupled decay),
and the factory that builds the optimizer a :class:`~visiondl_keras.training.config.TrainConfig` names."""

from __future__ import annotations

import keras
from keras import ops

from visiondl_keras.models.airbench import airbench_gradient_rules
from visiondl_keras.training.config import TrainConfig
from visiondl_keras.training.schedules import Triangular, _cos_interp, _KerasOps, make_schedule


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



def make_optimizer(config: TrainConfig, steps_per_epoch: int):
    """The optimizer with its LR schedule (and OneCycle momentum for SGD)."""
    total = config.epochs * steps_per_epoch
    if config.optimizer == "scaled_sgd":
        # airbench's hyperparameters are per 1024 examples with a summed loss; on a mean loss the
        # learning rate is lr * batch / (1024 * (1 + 1/(1 - momentum))) and the coupled decay wd / lr.
        peak = config.lr * config.batch_size / (1024 * (1 + 1 / (1 - config.momentum)))
        schedule = Triangular(total, peak, warmup_frac=config.pct_start)
        whiten_steps = config.whiten_bias_epochs * steps_per_epoch
        rules = (airbench_gradient_rules(config.bias_scaler, whiten_steps, config.whitening) if config.arch == "airbench"
                 else [{"match": "/beta", "scale": config.bias_scaler}])
        return ScaledSGD(learning_rate=schedule, momentum=config.momentum, nesterov=True, rules=rules,
                         coupled_weight_decay=config.weight_decay / config.lr)
    warmup = min(int(round(config.warmup_epochs * steps_per_epoch)), total - 1)
    lr = make_schedule(config.schedule, total, config.lr, warmup_steps=warmup, pct_start=config.pct_start)
    if config.optimizer == "sgd":
        opt = NesterovSGD(
            learning_rate=lr,
            momentum=config.momentum,
            nesterov=True,
            weight_decay=config.weight_decay or None,
            cycle_momentum_steps=total if config.schedule == "onecycle" else 0,
            pct_start=config.pct_start,
        )
    else:
        opt = keras.optimizers.AdamW(learning_rate=lr, weight_decay=config.weight_decay)
    # Weight decay applies to every variable (as in Page's ResNet-9 recipe). An exclusion list
    # (``exclude_from_weight_decay``) is not saved with the optimizer, so a resumed run would
    # silently decay different variables: keep the rule in the config instead.
    return opt


def compile_model(model, config: TrainConfig, steps_per_epoch: int, precision: str = "float32"):
    """Compile with the optimizer, label-smoothed cross-entropy on logits and accuracy."""
    opt = make_optimizer(config, steps_per_epoch)
    if precision == "mixed_float16":
        opt = keras.optimizers.LossScaleOptimizer(opt)
    model.compile(
        optimizer=opt,
        loss=keras.losses.CategoricalCrossentropy(from_logits=True, label_smoothing=config.label_smoothing),
        metrics=[keras.metrics.CategoricalAccuracy(name="accuracy")],
    )
    return model


def current_lr_momentum(optimizer) -> tuple[float, float | None]:
    """The learning rate and momentum at the optimizer's current step."""
    inner = getattr(optimizer, "inner_optimizer", optimizer)
    lr = inner.learning_rate
    lr = float(keras.ops.convert_to_numpy(lr))
    mom = None
    if hasattr(inner, "current_momentum"):
        mom = float(keras.ops.convert_to_numpy(inner.current_momentum()))
    return lr, mom
