"""Training configuration: :class:`TrainConfig`, the named presets and the precision choice.

A run is defined by one :class:`TrainConfig` (stored as ``config.json`` in its run directory).
Presets (lesson 3):

* ``"94"``: the fast recipe (airbench-style network, alternating flip + translate, ScaledSGD with a
  bias scaler, label smoothing 0.2, triangular schedule, lookahead, TTA level 2) at full width;
* ``"fast"``: the same recipe on a short budget;
* ``"resnet9"``: the ResNet-9 / OneCycle recipe (the dataclass defaults).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

from visiondl_keras.data import augment
from visiondl_keras.errors import ConfigError
from visiondl_keras.reproducibility import cpu_info, has_gpu

PRECISIONS = ("auto", "float32", "mixed_float16", "mixed_bfloat16")


OPTIMIZERS = ("sgd", "adamw", "scaled_sgd")


SCHEDULES = ("onecycle", "cosine", "constant", "triangular")


# The networks a config can name: models.scratch.ARCHITECTURES plus "airbench" (checked by a test;
# spelled out here so that the command line can build its parsers without importing Keras).
ALL_ARCHITECTURES = ("resnet9", "simple", "airbench")

# The augmentation policies ablate-augment compares by default.
ABLATION_POLICIES = ("none", "baseline", "randaugment", "mixup", "cutmix", "randaugment+cutmix")
# ... and for the fast recipe (``ablate-augment --recipe fast``): nothing, its alternating flip, flip +
# 2-pixel translation (the recipe's own policy), and that with RandAugment, MixUp or CutMix on top.
FAST_ABLATION_POLICIES = ("none", "altflip", "altflip+translate", "altflip+translate+randaugment",
                          "altflip+translate+mixup", "altflip+translate+cutmix")
# The fast recipe's budget for that ablation: half width, 10 epochs, the full training split.
FAST_ABLATION_BUDGET = {"widths": [32, 128, 128], "epochs": 10}

# What "removing a piece" of the fast recipe means, as config overrides ("tta" needs no retraining:
# it is the full recipe's test accuracy without test-time augmentation).
RECIPE_PIECES = {
    "whitening": {"whitening": False},
    "identity_init": {"identity_init": False},
    "alternating_flip": {"policy": "flip+translate"},
    "lookahead": {"lookahead": False},
    "label_smoothing": {"label_smoothing": 0.0},
    "bias_scaler": {"bias_scaler": 1.0},
    "tta": {},
}


@dataclass
class TrainConfig:
    """Everything that defines a training run (stored as ``config.json``).

    The defaults are the package's CPU recipe: a ResNet-9-style net of width 24 (0.93M parameters,
    about 400 images/s on 2 CPU cores), SGD with Nesterov momentum, OneCycle, label smoothing,
    the baseline augmentation, batch 512.

    ``weight_decay`` is Keras' decoupled decay (``w -= lr * wd * w`` each step). For SGD with
    momentum 0.9 the default 5e-3 matches the classic coupled L2 of 5e-4 (5e-4 / (1 - 0.9)).
    With ``optimizer="scaled_sgd"`` (the fast recipe) ``lr`` and ``weight_decay`` are airbench's
    values per 1024 examples instead (see :func:`visiondl_keras.training.optimizers.make_optimizer`).

    The fast recipe's own fields: ``widths`` (the three conv-group widths of ``arch="airbench"``),
    ``bias_scaler`` (learning-rate multiplier of BatchNorm offsets), ``whiten_bias_epochs`` (epochs
    the whitening bias trains), ``whitening`` and ``identity_init`` (the two initialisations, off
    only in ablations), ``lookahead`` (weight averaging) and ``tta_level`` (test-time augmentation
    of the reported test accuracy). Presets: :func:`preset_config`.
    """

    arch: str = "resnet9"
    width: int = 24
    epochs: int = 24
    batch_size: int = 512
    optimizer: str = "sgd"
    lr: float = 0.2
    momentum: float = 0.9
    weight_decay: float = 5e-3
    label_smoothing: float = 0.1
    schedule: str = "onecycle"
    warmup_epochs: float = 2.0
    pct_start: float = 0.25
    policy: str = "baseline"
    precision: str = "auto"
    seed: int = 0
    deterministic: bool = False
    val_size: int = 5000
    limit: int | None = None
    test_limit: int | None = None
    data: str | None = None
    spike_factor: float = 3.0
    widths: list | None = None
    bias_scaler: float = 64.0
    whiten_bias_epochs: int = 3
    whitening: bool = True
    identity_init: bool = True
    lookahead: bool = False
    tta_level: int = 0
    wandb: bool = False
    notes: dict = field(default_factory=dict)

    def validate(self) -> TrainConfig:
        checks = [
            (self.arch in ALL_ARCHITECTURES, f"arch must be one of {ALL_ARCHITECTURES}, got {self.arch!r}"),
            (self.tta_level in (0, 1, 2), f"tta_level must be 0, 1 or 2, got {self.tta_level!r}"),
            (self.optimizer in OPTIMIZERS, f"optimizer must be one of {OPTIMIZERS}, got {self.optimizer!r}"),
            (self.schedule in SCHEDULES, f"schedule must be one of {SCHEDULES}, got {self.schedule!r}"),
            (self.precision in PRECISIONS, f"precision must be one of {PRECISIONS}, got {self.precision!r}"),
            (isinstance(self.epochs, int) and self.epochs >= 1, f"epochs must be an integer >= 1, got {self.epochs!r}"),
            (isinstance(self.batch_size, int) and self.batch_size >= 1, f"batch_size must be >= 1, got {self.batch_size!r}"),
            (self.lr > 0, f"lr must be > 0, got {self.lr}"),
            (0 <= self.label_smoothing < 1, f"label_smoothing must lie in [0, 1), got {self.label_smoothing}"),
            (self.weight_decay >= 0, f"weight_decay must be >= 0, got {self.weight_decay}"),
        ]
        for ok, msg in checks:
            if not ok:
                raise ConfigError(msg + ".")
        if not augment.is_fast_policy(self.policy):  # raises ConfigError for a malformed fast-recipe name
            augment.get_policy(self.policy)  # raises ConfigError for an unknown policy
        return self

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> TrainConfig:
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(d) - names)
        if unknown:
            raise ConfigError(f"unknown configuration keys {unknown}; valid keys are {sorted(names)}.")
        return cls(**d).validate()


# The fast recipe (airbench94-style, lesson 3). lr and weight_decay are airbench's "per 1024
# examples" values: the optimizer turns them into a mean-loss learning rate and a coupled decay.
_FAST_RECIPE = dict(
    arch="airbench", widths=[64, 256, 256], batch_size=1024, optimizer="scaled_sgd", lr=11.5, momentum=0.85,
    weight_decay=0.0153, label_smoothing=0.2, schedule="triangular", pct_start=0.23, policy="altflip+translate",
    bias_scaler=64.0, whiten_bias_epochs=3, lookahead=True, tta_level=2,
)


PRESETS = {
    "94": dict(_FAST_RECIPE, epochs=20),
    "fast": dict(_FAST_RECIPE, epochs=8),
    "resnet9": {},
}


def preset_config(name: str, **overrides) -> TrainConfig:
    """A named configuration: ``"94"`` (the fast recipe, full width, aims at 94%), ``"fast"`` (the
    same recipe on a short budget) or ``"resnet9"`` (the ResNet-9 / OneCycle recipe), with overrides.

    Example:
        >>> preset_config("fast", epochs=2).epochs
        2
    """
    if name not in PRESETS:
        raise ConfigError(f"unknown preset {name!r}; choose one of {', '.join(PRESETS)}.")
    return TrainConfig(**dict(PRESETS[name], **overrides)).validate()


def quick_config(**overrides) -> TrainConfig:
    """A configuration for tests and live lesson cells: 2,000 training images, 2 epochs, width 16."""
    base = dict(width=16, epochs=2, batch_size=128, limit=2000, val_size=500, test_limit=1000, warmup_epochs=0.5)
    base.update(overrides)
    return TrainConfig(**base).validate()




def resolve_precision(precision: str) -> str:
    """``auto`` -> ``mixed_float16`` on a GPU, ``mixed_bfloat16`` on a CPU with bfloat16
    instructions (``avx512_bf16`` or AMX), else ``float32``; other values pass through."""
    if precision not in PRECISIONS:
        raise ConfigError(f"precision must be one of {PRECISIONS}, got {precision!r}.")
    if precision == "auto":
        if has_gpu():
            return "mixed_float16"
        return "mixed_bfloat16" if cpu_info()["has_bf16"] else "float32"
    return precision
