"""Training engine: compile + fit with schedules, precision, stability monitoring, resumable runs.

``train(config, run_dir)`` writes one run directory::

    RUN_DIR/config.json        the TrainConfig
    RUN_DIR/environment.json   versions, backend, devices, seed, dataset fingerprint
    RUN_DIR/history.csv        one row per epoch: loss, accuracy, val_loss, val_accuracy, lr,
                               momentum, grad_norm, loss_spikes, epoch_time_s, time_s
    RUN_DIR/best.keras         best checkpoint by validation accuracy (self-contained model)
    RUN_DIR/last.keras         last checkpoint with optimizer state (for resuming)
    RUN_DIR/state.json         progress: status, epochs done, best epoch
    RUN_DIR/metrics.json       test accuracy, loss, per-class accuracy of best.keras, timings, data
    RUN_DIR/figures/curves.png loss/accuracy curves
    RUN_DIR/tensorboard/       TensorBoard scalars (when TensorFlow is installed)

Every write is atomic. A run killed at any point (even ``kill -9``) and restarted with the same
command resumes from ``last.keras``: the number of epochs done is read from the optimizer's step
counter, and each epoch's data is a pure function of (seed, epoch) (see
:func:`visiondl_keras.augment.augmented_epoch`), so the resumed run finishes with the same
metrics as an uninterrupted one (bit-for-bit with ``deterministic=True`` on CPU).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import os
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import keras
import numpy as np

from . import augment
from .artifacts import checkpoint_file, read_csv, read_json, write_csv, write_json
from .data import Splits, load_cifar10, train_val_split
from .errors import ConfigError, VisionDLError
from .gradients import predict_logits
from .models.airbench import airbench_gradient_rules, build_airbench
from .models.scratch import ARCHITECTURES, build_scratch_model, model_summary
from .reproducibility import cpu_info, environment_info, has_gpu, set_seed
from .schedules import NesterovSGD, ScaledSGD, Triangular, make_schedule
from .tta import PASSES as TTA_PASSES
from .tta import tta_logits

PRECISIONS = ("auto", "float32", "mixed_float16", "mixed_bfloat16")
OPTIMIZERS = ("sgd", "adamw", "scaled_sgd")
SCHEDULES = ("onecycle", "cosine", "constant", "triangular")
ALL_ARCHITECTURES = (*ARCHITECTURES, "airbench")


class TrainingDiverged(VisionDLError):
    """The loss or the weights became NaN/Inf; training stopped and the best checkpoint was kept."""


@dataclass
class TrainConfig:
    """Everything that defines a training run (stored as ``config.json``).

    The defaults are the package's CPU recipe: a ResNet-9-style net of width 24 (0.93M parameters,
    about 400 images/s on 2 CPU cores), SGD with Nesterov momentum, OneCycle, label smoothing,
    the baseline augmentation, batch 512.

    ``weight_decay`` is Keras' decoupled decay (``w -= lr * wd * w`` each step). For SGD with
    momentum 0.9 the default 5e-3 matches the classic coupled L2 of 5e-4 (5e-4 / (1 - 0.9)).
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
        if self.policy not in augment.ALTERNATING_POLICIES:
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


# ------------------------------------------------------------------------------------------------
# Building blocks
# ------------------------------------------------------------------------------------------------


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


def make_optimizer(config: TrainConfig, steps_per_epoch: int):
    """The optimizer with its LR schedule (and OneCycle momentum for SGD)."""
    total = config.epochs * steps_per_epoch
    if config.optimizer == "scaled_sgd":
        # airbench's hyperparameters are per 1024 examples with a summed loss; on a mean loss the
        # learning rate is lr * batch / (1024 * (1 + 1/(1 - momentum))) and the coupled decay wd / lr.
        peak = config.lr * config.batch_size / (1024 * (1 + 1 / (1 - config.momentum)))
        schedule = Triangular(total, peak, warmup_frac=config.pct_start)
        whiten_steps = config.whiten_bias_epochs * steps_per_epoch
        rules = (airbench_gradient_rules(config.bias_scaler, whiten_steps) if config.arch == "airbench"
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


def global_grad_norm(model, x: np.ndarray, y: np.ndarray, loss_fn) -> float:
    """Global L2 norm of the loss gradient w.r.t. the trainable weights on one batch.

    Computed in inference mode (BatchNorm statistics untouched). One small dispatch per backend:
    TensorFlow ``GradientTape``, JAX ``jax.grad`` over ``stateless_call``, PyTorch autograd.
    """
    backend = keras.backend.backend()
    if backend == "tensorflow":
        import tensorflow as tf

        with tf.GradientTape() as tape:
            loss = loss_fn(y, model(x, training=False))
        grads = [g for g in tape.gradient(loss, model.trainable_weights) if g is not None]
        return float(tf.linalg.global_norm(grads))
    if backend == "jax":
        import jax
        import jax.numpy as jnp

        tv = [v.value for v in model.trainable_variables]
        ntv = [v.value for v in model.non_trainable_variables]

        def f(tv):
            logits, _ = model.stateless_call(tv, ntv, x, training=False)
            return loss_fn(y, logits)

        grads = jax.grad(f)(tv)
        return float(jnp.sqrt(sum(jnp.sum(jnp.square(g)) for g in grads)))
    if backend == "torch":
        import torch

        params = [v.value for v in model.trainable_variables]
        loss = loss_fn(keras.ops.convert_to_tensor(y), model(keras.ops.convert_to_tensor(x), training=False))
        grads = torch.autograd.grad(loss, params, allow_unused=True)
        return float(torch.sqrt(sum(torch.sum(g**2) for g in grads if g is not None)))
    return float("nan")


class StabilityMonitor(keras.callbacks.Callback):
    """Stops training on NaN/Inf loss or weights, and warns on loss spikes.

    Keras passes the *running mean* of the loss to ``on_train_batch_end``; the monitor recovers
    each batch's own loss from consecutive means and compares it with an exponential moving
    average: a batch loss above ``spike_factor`` times the average counts as a spike (a warning).
    """

    def __init__(self, spike_factor: float = 3.0, log=print):
        super().__init__()
        self.spike_factor = spike_factor
        self.log = log
        self.problem: str | None = None
        self.spikes = 0
        self._ema = None
        self._prev_mean = 0.0

    def on_epoch_begin(self, epoch, logs=None):
        self.spikes = 0
        self._prev_mean = 0.0
        self._epoch = epoch

    def on_train_batch_end(self, batch, logs=None):
        mean = float((logs or {}).get("loss", 0.0))
        batch_loss = mean * (batch + 1) - self._prev_mean * batch
        self._prev_mean = mean
        if not math.isfinite(mean) or not math.isfinite(batch_loss):
            self.problem = f"the training loss became {mean} at epoch {self._epoch + 1}, batch {batch + 1}"
            self.model.stop_training = True
            return
        if self._ema is not None and batch_loss > self.spike_factor * self._ema and batch > 0:
            self.spikes += 1
            self.log(f"warning: loss spike at epoch {self._epoch + 1}, batch {batch + 1}: "
                     f"{batch_loss:.3f} vs running average {self._ema:.3f}")
        self._ema = batch_loss if self._ema is None else 0.9 * self._ema + 0.1 * batch_loss

    def on_epoch_end(self, epoch, logs=None):
        if self.problem is None:
            for w in self.model.weights:
                if not np.all(np.isfinite(keras.ops.convert_to_numpy(w))):
                    self.problem = f"weight {w.path} became NaN/Inf at epoch {epoch + 1}"
                    self.model.stop_training = True
                    break


class Lookahead(keras.callbacks.Callback):
    """airbench's lookahead: every ``every`` steps, pull the weights back towards their moving average.

    With ``w`` the model's weights (BatchNorm statistics included) and ``a`` their average,
    every ``every`` optimizer steps: ``a <- d·a + (1 - d)·w`` and then ``w <- a``, where the decay
    ``d = max_decay · (step / total_steps)^power`` is ~0 early in training (no effect) and grows to
    ``max_decay`` at the end; after the last step ``w <- a``. The weights at the end are an average
    over the last part of training, which is worth a few tenths of a percent at no cost.

    The average is state: :meth:`save` / :meth:`load` keep it beside the checkpoint, so a
    resumed run continues exactly.
    """

    def __init__(self, total_steps: int, every: int = 5, max_decay: float = 0.95**5, power: float = 3.0):
        super().__init__()
        self.total_steps, self.every, self.max_decay, self.power = int(total_steps), int(every), max_decay, power
        self.average: list[np.ndarray] | None = None

    def _variables(self):
        return [w for w in self.model.weights if "float" in str(w.dtype)]

    def decay(self, step: int) -> float:
        """The decay ``d`` at optimizer step ``step``."""
        return float(self.max_decay * (min(step, self.total_steps) / self.total_steps) ** self.power)

    def on_train_batch_end(self, batch, logs=None):
        step = int(keras.ops.convert_to_numpy(self.model.optimizer.iterations))
        variables = self._variables()
        if self.average is None:
            self.average = [np.array(keras.ops.convert_to_numpy(v), dtype=np.float32) for v in variables]
        if step % self.every != 0 and step < self.total_steps:
            return
        d = 1.0 if step >= self.total_steps else self.decay(step)
        for a, v in zip(self.average, variables):
            if d < 1.0:
                a *= d
                a += (1.0 - d) * keras.ops.convert_to_numpy(v).astype(np.float32)
            v.assign(a)

    def save(self, path: Path) -> None:
        if self.average is not None:
            tmp = path.with_name(f".{path.name}.tmp.npz")
            np.savez(tmp, *self.average)
            os.replace(tmp, path)

    def load(self, path: Path) -> None:
        with np.load(path) as f:
            self.average = [f[f"arr_{i}"] for i in range(len(f.files))]


def fit_epoch(model, xs: np.ndarray, ys: np.ndarray, batch_size: int, monitor: StabilityMonitor | None = None,
              epoch: int = 0, progress: bool = True, callbacks=()) -> tuple[float, float]:
    """One epoch of ``train_on_batch`` over ``xs, ys`` in order (no shuffling: the data is pre-shuffled).

    A plain loop rather than ``model.fit``: it keeps batches exactly as
    :func:`~visiondl_keras.augment.augmented_epoch` made them (MixUp/CutMix mix within them), and
    it avoids building a ``tf.data`` iterator per epoch (their teardown can deadlock on a loaded
    CPU with TensorFlow 2.21). Returns the epoch's mean loss and accuracy.
    """
    n = len(xs)
    steps = math.ceil(n / batch_size)
    bar = keras.utils.Progbar(steps, stateful_metrics=["loss", "accuracy"]) if progress else None
    if monitor is not None:
        monitor.set_model(model)
        monitor.on_epoch_begin(epoch)
    tot_loss = tot_acc = 0.0
    for b in range(steps):
        xb, yb = xs[b * batch_size : (b + 1) * batch_size], ys[b * batch_size : (b + 1) * batch_size]
        out = model.train_on_batch(xb, yb, return_dict=True)
        tot_loss += float(out["loss"]) * len(xb)
        tot_acc += float(out["accuracy"]) * len(xb)
        seen = min((b + 1) * batch_size, n)
        logs = {"loss": tot_loss / seen, "accuracy": tot_acc / seen}
        if bar is not None:
            bar.update(b + 1, list(logs.items()))
        for cb in callbacks:
            cb.on_train_batch_end(b, logs)
        if monitor is not None:
            monitor.on_train_batch_end(b, logs)
            if monitor.problem:
                break
    if monitor is not None and not monitor.problem:
        monitor.on_epoch_end(epoch)
    return tot_loss / n, tot_acc / n


def evaluate_loss_accuracy(model, x: np.ndarray, y_onehot: np.ndarray, batch_size: int = 500) -> tuple[float, float]:
    """The compiled loss (label smoothing included) and accuracy on ``x`` against one-hot ``y_onehot``."""
    logits = predict_logits(model, x, batch_size)
    loss = float(keras.ops.convert_to_numpy(model.loss(y_onehot, logits)))
    return loss, float(np.mean(logits.argmax(1) == y_onehot.argmax(1)))


def evaluate_arrays(model, x: np.ndarray, y: np.ndarray, class_names, batch_size: int = 1000) -> dict:
    """Accuracy, mean NLL and per-class accuracy of a logits model on uint8 images."""
    return evaluate_logits(predict_logits(model, x, batch_size), y, class_names)


def evaluate_logits(logits: np.ndarray, y: np.ndarray, class_names) -> dict:
    """Accuracy, mean NLL and per-class accuracy of logits against int labels (see :func:`evaluate_arrays`)."""
    from scipy.special import log_softmax

    logits = np.asarray(logits, dtype=np.float64)
    logp = log_softmax(logits, axis=1)
    pred = logits.argmax(axis=1)
    per_class = {name: float(np.mean(pred[y == k] == k)) if np.any(y == k) else None for k, name in enumerate(class_names)}
    return {
        "accuracy": float(np.mean(pred == y)),
        "loss": float(-np.mean(logp[np.arange(len(y)), y])),
        "per_class_accuracy": per_class,
        "n": int(len(y)),
    }


def _save_keras_atomic(model, path: Path):
    tmp = path.with_name(f".{path.stem}.tmp.keras")
    model.save(tmp)
    os.replace(tmp, path)


def _data_info(splits: Splits) -> dict:
    jpeg = "jpeg" in splits.source.lower() or "jpg" in splits.source.lower()
    return {
        "source": splits.source,
        "fingerprint": splits.fingerprint,
        "is_jpeg_mirror": jpeg,
        "description": ("JPEG q75 mirror of CIFAR-10 (not bit-identical to the official release)" if jpeg
                        else "CIFAR-10"),
        "n_train": int(len(splits.y_train)),
        "n_val": int(len(splits.y_val)),
        "n_test": int(len(splits.y_test)),
    }


class _TensorBoard:
    def __init__(self, logdir: Path):
        try:
            import tensorflow as tf

            self._tf = tf
            self._writer = tf.summary.create_file_writer(str(logdir))
        except Exception:
            self._writer = None

    def log(self, row: dict, step: int):
        if self._writer is None:
            return
        try:
            with self._writer.as_default():
                for k, v in row.items():
                    if isinstance(v, (int, float)) and k != "epoch" and math.isfinite(v):
                        self._tf.summary.scalar(k, v, step=step)
            self._writer.flush()
        except Exception as exc:  # TensorBoard logging must never stop a run
            print(f"note: TensorBoard logging disabled ({type(exc).__name__}: {exc}).")
            self._writer = None


def _wandb_run(config: TrainConfig, run_dir: Path):
    if not config.wandb:
        return None
    try:
        import wandb
    except ImportError:
        print("note: wandb is not installed (pip install 'visiondl-keras[wandb]'); logging to the run directory only.")
        return None
    return wandb.init(mode="offline", dir=str(run_dir), config=config.to_dict(), name=run_dir.name)


# ------------------------------------------------------------------------------------------------
# The run
# ------------------------------------------------------------------------------------------------


def _comparable(d: dict) -> dict:
    return {k: v for k, v in d.items() if k not in ("notes", "wandb")}


def train(config: TrainConfig, run_dir: str | os.PathLike, splits: Splits | None = None, progress: bool = True,
          log=print) -> dict:
    """Train a from-scratch model and write the run directory; resume if it holds an unfinished run.

    Args:
        config: a :class:`TrainConfig`.
        run_dir: the run directory (created).
        splits: data to use instead of loading ``config.data`` (tests, lessons).
        progress: Keras progress bars.
        log: where one-line messages go.

    Returns:
        The content of ``metrics.json``.

    Raises:
        ConfigError: the run directory holds a different run.
        TrainingDiverged: the loss or weights became NaN/Inf (``best.keras`` is kept).

    Example:
        >>> metrics = train(quick_config(), "runs/quick")  # doctest: +SKIP
        >>> 0 <= metrics["test_accuracy"] <= 1  # doctest: +SKIP
        True
    """
    config.validate()
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    state_path = run_dir / "state.json"
    state = read_json(state_path) if state_path.is_file() else None
    if state is not None:
        saved = read_json(run_dir / "config.json") if (run_dir / "config.json").is_file() else {}
        if _comparable(saved) != _comparable(config.to_dict()):
            raise ConfigError(
                f"{run_dir} holds a run with a different configuration; pass another --run-dir or delete that folder."
            )
        if state.get("status") == "completed" and (run_dir / "metrics.json").is_file():
            log(f"{run_dir}: run already completed; metrics from metrics.json.")
            return read_json(run_dir / "metrics.json")

    set_seed(config.seed, deterministic=config.deterministic)
    precision = resolve_precision(config.precision)
    keras.mixed_precision.set_dtype_policy(precision)
    try:
        if splits is None:
            splits = train_val_split(load_cifar10(config.data, progress=progress), config.val_size, config.seed,
                                     config.limit, config.test_limit)
        num_classes = len(splits.class_names)
        steps_per_epoch = math.ceil(len(splits.y_train) / config.batch_size)
        if config.policy in augment.ALTERNATING_POLICIES:
            def epoch_data(epoch):
                translate = 2 if config.policy.endswith("translate") else 0
                return augment.alternating_flip_epoch(splits.x_train, splits.y_train, config.seed, epoch, translate,
                                                      num_classes)
        else:
            policy = augment.get_policy(config.policy, num_classes=num_classes, seed=config.seed)

            def epoch_data(epoch):
                return augment.augmented_epoch(splits.x_train, splits.y_train, policy, config.seed, epoch,
                                               config.batch_size)

        last_path, best_path = run_dir / "last.keras", run_dir / "best.keras"
        history: list[dict] = []
        start_epoch = 0
        if state is not None and last_path.is_file():
            model = keras.saving.load_model(last_path, compile=True)
            iterations = int(keras.ops.convert_to_numpy(model.optimizer.iterations))
            start_epoch = iterations // steps_per_epoch
            if (run_dir / "history.csv").is_file():
                history = [r for r in read_csv(run_dir / "history.csv") if int(r["epoch"]) <= start_epoch]
            log(f"resuming {run_dir} after epoch {start_epoch} of {config.epochs}")
        else:
            if config.arch == "airbench":
                model = build_airbench(config.widths or (64, 256, 256), num_classes, splits.mean, splits.std,
                                       whitening_images=splits.x_train[:5000])
            else:
                model = build_scratch_model(config.arch, config.width, num_classes, splits.mean, splits.std)
            compile_model(model, config, steps_per_epoch, precision)
            write_json(run_dir / "config.json", config.to_dict())
        env = environment_info()
        env.update({"cpu": cpu_info(), "seed": config.seed, "deterministic": config.deterministic, "precision": precision,
                    "dataset_fingerprint": splits.fingerprint, "data": _data_info(splits)})
        write_json(run_dir / "environment.json", env)

        tb = _TensorBoard(run_dir / "tensorboard")
        wb = _wandb_run(config, run_dir)
        monitor = StabilityMonitor(config.spike_factor, log=log)
        y_val = augment.one_hot(splits.y_val, num_classes)
        probe_x = splits.x_val[:64] if len(splits.y_val) else splits.x_train[:64]
        probe_y = augment.one_hot(splits.y_val[:64] if len(splits.y_val) else splits.y_train[:64], num_classes)
        best_val = max((float(r["val_accuracy"]) for r in history), default=-1.0)
        best_epoch = max((int(r["epoch"]) for r in history if float(r["val_accuracy"]) == best_val), default=0)
        elapsed = float(history[-1]["time_s"]) if history else 0.0

        callbacks = []
        if config.lookahead:
            lookahead = Lookahead(config.epochs * steps_per_epoch)
            lookahead.set_model(model)
            saved_average = run_dir / f"lookahead-{start_epoch}.npz"
            if start_epoch and saved_average.is_file():
                lookahead.load(saved_average)
            callbacks.append(lookahead)
        prefetch = ThreadPoolExecutor(max_workers=1)
        next_epoch = prefetch.submit(epoch_data, start_epoch)
        for epoch in range(start_epoch, config.epochs):
            if progress:
                log(f"epoch {epoch + 1}/{config.epochs}")
            xs, ys = next_epoch.result()
            if epoch + 1 < config.epochs:  # augment the next epoch in a background thread while this one trains
                next_epoch = prefetch.submit(epoch_data, epoch + 1)
            t0 = time.perf_counter()
            train_loss, train_acc = fit_epoch(model, xs, ys, config.batch_size, monitor, epoch, progress, callbacks)
            epoch_time = time.perf_counter() - t0
            elapsed += epoch_time
            if monitor.problem:
                write_json(state_path, {"status": "diverged", "epochs_done": epoch, "best_epoch": best_epoch,
                                        "message": monitor.problem})
                kept = f" best.keras (from epoch {best_epoch}) was kept." if best_path.is_file() else ""
                raise TrainingDiverged(
                    f"training stopped: {monitor.problem}; lower the learning rate (--lr) or use float32.{kept}"
                )
            if len(splits.y_val):
                val_loss, val_acc = evaluate_loss_accuracy(model, splits.x_val, y_val)
            else:
                val_loss, val_acc = float("nan"), train_acc
            lr, mom = current_lr_momentum(model.optimizer)
            row = {
                "epoch": epoch + 1,
                "loss": train_loss,
                "accuracy": train_acc,
                "val_loss": float(val_loss),
                "val_accuracy": float(val_acc),
                "lr": lr,
                "momentum": mom if mom is not None else "",
                "grad_norm": global_grad_norm(model, probe_x, probe_y, model.loss),
                "loss_spikes": monitor.spikes,
                "epoch_time_s": round(epoch_time, 3),
                "time_s": round(elapsed, 3),
            }
            history.append(row)
            if val_acc > best_val:
                best_val, best_epoch = float(val_acc), epoch + 1
                _save_keras_atomic(model, best_path)
            if config.lookahead:  # the average first: a resumed run needs the one of its last.keras
                lookahead.save(run_dir / f"lookahead-{epoch + 1}.npz")
            _save_keras_atomic(model, last_path)
            for old in run_dir.glob("lookahead-*.npz"):
                if old.name != f"lookahead-{epoch + 1}.npz":
                    old.unlink(missing_ok=True)
            write_csv(run_dir / "history.csv", history)
            write_json(state_path, {"status": "running", "epochs_done": epoch + 1, "best_epoch": best_epoch,
                                    "best_val_accuracy": best_val, "time_s": elapsed})
            tb.log(row, epoch + 1)
            if wb is not None:
                wb.log(row, step=epoch + 1)
            log(f"epoch {epoch + 1}: val_accuracy {val_acc:.4f} (best {best_val:.4f} at {best_epoch}), "
                f"lr {lr:.4g}, grad_norm {row['grad_norm']:.3g}, {epoch_time:.1f}s")

        prefetch.shutdown()
        best = keras.saving.load_model(best_path, compile=False)
        test = evaluate_arrays(best, splits.x_test, splits.y_test, splits.class_names)
        tta = {}
        for level in sorted({0, config.tta_level}):
            t0 = time.perf_counter()
            tta_acc = float(np.mean(tta_logits(best, splits.x_test, level).argmax(1) == splits.y_test))
            tta[str(level)] = {"test_accuracy": tta_acc, "seconds": round(time.perf_counter() - t0, 2),
                               "forward_passes_per_image": TTA_PASSES[level]}
        val = evaluate_arrays(best, splits.x_val, splits.y_val, splits.class_names) if len(splits.y_val) else None
        metrics = {
            "test_accuracy": test["accuracy"],
            "test_loss": test["loss"],
            "per_class_accuracy": test["per_class_accuracy"],
            "val_accuracy": val["accuracy"] if val else None,
            "val_loss": val["loss"] if val else None,
            "tta": tta,
            "best_epoch": best_epoch,
            "epochs": config.epochs,
            "train_time_s": round(elapsed, 1),
            "images_per_second": round(config.epochs * len(splits.y_train) / elapsed, 1) if elapsed else None,
            "model": model_summary(best),
            "precision": precision,
            "data": _data_info(splits),
        }
        write_json(run_dir / "metrics.json", metrics)
        from .plots import save_figure, training_curves

        save_figure(training_curves(history, title=f"{best.name}: test accuracy {test['accuracy']:.4f}"),
                    run_dir / "figures" / "curves.png")
        write_json(state_path, {"status": "completed", "epochs_done": config.epochs, "best_epoch": best_epoch,
                                "best_val_accuracy": best_val, "time_s": elapsed})
        if wb is not None:
            wb.summary.update({"test_accuracy": test["accuracy"]})
            wb.finish()
        return metrics
    finally:
        keras.mixed_precision.set_dtype_policy("float32")


def publish_run(run_dir: str | os.PathLike, name: str, out: str | os.PathLike = "artifacts",
                run_name: str | None = None) -> dict:
    """Ship a finished run: its best checkpoint without optimizer state, and its small run files.

    Writes ``OUT/checkpoints/NAME.keras`` (weights only: the optimizer state is dropped, which
    halves the file) and copies ``config.json``, ``history.csv``, ``metrics.json``,
    ``environment.json``, ``state.json`` and ``figures/`` to ``OUT/runs/RUN_NAME/`` (default: NAME).

    Returns:
        ``{"checkpoint": path, "run_dir": path, "bytes": size}``.
    """
    import shutil

    run_dir = Path(run_dir)
    state = read_json(run_dir / "state.json") if (run_dir / "state.json").is_file() else {}
    if state.get("status") != "completed":
        raise ConfigError(f"{run_dir}: the run is not completed (status {state.get('status')!r}); finish it first.")
    out = Path(out)
    model = keras.saving.load_model(run_dir / "best.keras", compile=False)
    ckpt = out / "checkpoints" / f"{name}.keras"
    ckpt.parent.mkdir(parents=True, exist_ok=True)
    _save_keras_atomic(model, ckpt)
    dest = out / "runs" / (run_name or name)
    dest.mkdir(parents=True, exist_ok=True)
    for f in ("config.json", "history.csv", "metrics.json", "environment.json", "state.json"):
        if (run_dir / f).is_file():
            shutil.copy2(run_dir / f, dest / f)
    if (run_dir / "figures").is_dir():
        shutil.copytree(run_dir / "figures", dest / "figures", dirs_exist_ok=True)
    return {"checkpoint": str(ckpt), "run_dir": str(dest), "bytes": ckpt.stat().st_size}


# ------------------------------------------------------------------------------------------------
# LR range test
# ------------------------------------------------------------------------------------------------


@dataclass
class LRFinderResult:
    """Result of :func:`lr_find`: learning rates tried, smoothed losses, the suggested LR."""

    lrs: np.ndarray
    losses: np.ndarray
    suggested_lr: float

    def plot(self):
        from .plots import lr_finder_plot

        return lr_finder_plot(self.lrs, self.losses, self.suggested_lr)


def lr_find(model, x: np.ndarray, y: np.ndarray, start_lr: float = 1e-4, end_lr: float = 10.0, steps: int = 60,
            batch_size: int = 128, seed: int = 0, label_smoothing: float = 0.0, momentum: float = 0.9) -> LRFinderResult:
    """LR range test (Smith 2017): train with an exponentially growing LR and watch the loss.

    The model's weights are restored afterwards. The suggestion is the LR of the steepest descent
    of the smoothed loss (before it blows up), a common, conservative choice.

    Args:
        model: an uncompiled or compiled logits model (it is re-compiled with SGD-Nesterov).
        x, y: uint8 images and int labels.
        start_lr, end_lr, steps: the exponential sweep.

    Returns:
        :class:`LRFinderResult`.
    """
    if not 0 < start_lr < end_lr:
        raise ConfigError(f"need 0 < start_lr < end_lr, got {start_lr} and {end_lr}.")
    weights = model.get_weights()
    opt = keras.optimizers.SGD(learning_rate=start_lr, momentum=momentum, nesterov=True)
    num_classes = model.output_shape[-1]
    model.compile(optimizer=opt, loss=keras.losses.CategoricalCrossentropy(from_logits=True,
                                                                           label_smoothing=label_smoothing))
    rng = np.random.default_rng(seed)
    policy = augment.get_policy("baseline", num_classes=num_classes)
    lrs = start_lr * (end_lr / start_lr) ** (np.arange(steps) / max(steps - 1, 1))
    losses, smooth, best = [], None, np.inf
    for lr in lrs:
        idx = rng.integers(0, len(x), batch_size)
        xb, yb = policy(x[idx], y[idx], rng)
        opt.learning_rate.assign(float(lr))
        loss = float(np.asarray(model.train_on_batch(xb, yb)).ravel()[0])
        smooth = loss if smooth is None else 0.8 * smooth + 0.2 * loss
        corrected = smooth
        losses.append(corrected)
        best = min(best, corrected)
        if not math.isfinite(loss) or corrected > 4 * best:
            break
    model.set_weights(weights)
    losses = np.asarray(losses)
    lrs = lrs[: len(losses)]
    stop = int(np.argmin(losses)) + 1
    if stop >= 3:
        grads = np.gradient(losses[:stop], np.log(lrs[:stop]))
        suggested = float(lrs[int(np.argmin(grads))])
    else:
        suggested = float(lrs[0])
    return LRFinderResult(lrs, losses, suggested)


# ------------------------------------------------------------------------------------------------
# Command line: train, evaluate, lr-find
# ------------------------------------------------------------------------------------------------


def _add_config_args(p: argparse.ArgumentParser):
    fields = {f.name: f for f in dataclasses.fields(TrainConfig)}
    for name, f in fields.items():
        if name == "notes":
            continue
        flag = "--" + name.replace("_", "-")
        if f.type in ("bool", bool):
            p.add_argument(flag, action="store_true", default=None, help=f"(default {f.default})")
        else:
            typ = {"int": int, "float": float, "str": str, "int | None": int, "str | None": str}.get(str(f.type), str)
            p.add_argument(flag, type=typ, default=None, help=f"(default {f.default})")


def config_from_args(args) -> TrainConfig:
    base: dict = {}
    if getattr(args, "preset", None):
        base = preset_config(args.preset).to_dict()
    if getattr(args, "quick", False):
        base.update(quick_config(**{k: v for k, v in base.items() if k in ("arch", "widths", "optimizer", "lr",
                                    "momentum", "weight_decay", "label_smoothing", "schedule", "pct_start",
                                    "policy", "bias_scaler", "whiten_bias_epochs", "lookahead", "tta_level")}
                                 ).to_dict())
    if getattr(args, "config", None):
        path = Path(args.config)
        if not path.is_file():
            raise ConfigError(f"{path}: configuration file not found.")
        try:
            base.update(json.loads(path.read_text()))
        except json.JSONDecodeError as exc:
            raise ConfigError(f"{path}: not valid JSON ({exc.msg} at line {exc.lineno}).") from exc
    for f in dataclasses.fields(TrainConfig):
        v = getattr(args, f.name, None)
        if v is not None:
            if f.name == "widths" and isinstance(v, str):
                try:
                    v = [int(w) for w in v.split(",")]
                except ValueError:
                    raise ConfigError(f"--widths takes three comma-separated integers such as 64,256,256, got {v!r}.") from None
            base[f.name] = v
    return TrainConfig.from_dict(base)


def _cmd_train(args) -> int:
    config = config_from_args(args)
    run_dir = args.run_dir or os.path.join("runs", time.strftime("%Y%m%d-%H%M%S"))
    metrics = train(config, run_dir, progress=not args.quiet, log=(lambda *a, **k: None) if args.quiet else print)
    print(f"{run_dir}: test accuracy {metrics['test_accuracy']:.4f} ({metrics['data']['description']}, "
          f"{metrics['data']['n_test']} test images), best epoch {metrics['best_epoch']}, "
          f"{metrics['train_time_s']:.0f}s of training")
    return 0


def _cmd_evaluate(args) -> int:
    from .models import load_checkpoint

    model = load_checkpoint(args.checkpoint)
    ds = load_cifar10(args.data, progress=not args.quiet)
    x, y = ds.x_test, ds.y_test
    if args.limit:
        from .data import stratified_subset

        idx = stratified_subset(y, args.limit)
        x, y = x[idx], y[idx]
    logits = predict_logits(model, x, 1000)
    result = evaluate_logits(logits, y, ds.class_names)
    from .calibration import load_temperature

    temperature = load_temperature(checkpoint_file(args.checkpoint))
    if temperature != 1.0:
        result["calibrated_loss"] = evaluate_logits(logits.astype(np.float64) / temperature, y, ds.class_names)["loss"]
    result["temperature"] = temperature
    result["data"] = ds.describe()
    result["checkpoint"] = str(args.checkpoint)
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        calibrated = (f", calibrated loss {result['calibrated_loss']:.4f} (T = {temperature:.3f})"
                      if "calibrated_loss" in result else "")
        print(f"{args.checkpoint}: test accuracy {result['accuracy']:.4f}, loss {result['loss']:.4f}{calibrated} "
              f"on {result['n']} images of the {ds.describe()}")
        for name, acc in result["per_class_accuracy"].items():
            print(f"  {name:<11} {acc:.4f}")
    return 0


def _cmd_lr_find(args) -> int:
    from .plots import save_figure

    config = config_from_args(args)
    splits = train_val_split(load_cifar10(config.data, progress=not args.quiet), config.val_size, config.seed,
                             config.limit)
    model = build_scratch_model(config.arch, config.width, len(splits.class_names), splits.mean, splits.std)
    res = lr_find(model, splits.x_train, splits.y_train, steps=args.steps, batch_size=config.batch_size)
    out = Path(args.out)
    save_figure(res.plot(), out / "lr_find.png")
    write_json(out / "lr_find.json", {"lrs": res.lrs, "losses": res.losses, "suggested_lr": res.suggested_lr,
                                      "config": config.to_dict()})
    print(f"suggested learning rate: {res.suggested_lr:.4g} (plot: {out / 'lr_find.png'})")
    return 0


def _cmd_publish(args) -> int:
    info = publish_run(args.run_dir, args.name, args.out, args.run_name)
    print(f"{info['checkpoint']} ({info['bytes'] / 1e6:.2f} MB) and run files in {info['run_dir']}")
    return 0


def register_commands(sub):
    p = sub.add_parser("train", help="train a CNN from scratch (resumes an unfinished run directory)")
    p.add_argument("--config", help="JSON file with TrainConfig keys; flags override it")
    p.add_argument("--run-dir", help="run directory (default runs/<timestamp>)")
    p.add_argument("--preset", choices=sorted(PRESETS), help="a named recipe: 94, fast or resnet9 (flags override it)")
    p.add_argument("--quick", action="store_true", help="stratified 2,000-image subset, 2 epochs, width 16")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    _add_config_args(p)
    p.set_defaults(func=_cmd_train)

    p = sub.add_parser("evaluate", help="test accuracy, loss and per-class accuracy of a checkpoint")
    p.add_argument("checkpoint", help=".keras file or run directory")
    p.add_argument("--data", help="CIFAR-10 source (default: see load_cifar10)")
    p.add_argument("--limit", type=int, help="stratified subset of the test set")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.add_argument("--quiet", action="store_true")
    p.set_defaults(func=_cmd_evaluate)

    p = sub.add_parser("publish", help="copy a finished run's best checkpoint and small files into artifacts/")
    p.add_argument("run_dir")
    p.add_argument("--name", required=True, help="checkpoint name, e.g. scratch_resnet9")
    p.add_argument("--run-name", help="folder under OUT/runs/ for the run files (default: --name)")
    p.add_argument("--out", default="artifacts")
    p.set_defaults(func=_cmd_publish)

    p = sub.add_parser("lr-find", help="LR range test: plot and suggested learning rate")
    p.add_argument("--config", help="JSON file with TrainConfig keys")
    p.add_argument("--quick", action="store_true")
    p.add_argument("--steps", type=int, default=60)
    p.add_argument("--out", default="artifacts/figures", help="folder for lr_find.png and lr_find.json")
    p.add_argument("--quiet", action="store_true")
    _add_config_args(p)
    p.set_defaults(func=_cmd_lr_find)


if __name__ == "__main__":  # pragma: no cover
    from .cli import main

    sys.exit(main(["train", *sys.argv[1:]]))
