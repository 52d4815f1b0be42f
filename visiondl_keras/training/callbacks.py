"""Callbacks of the training engine: each one concern of a run, in the style of ``keras.callbacks``.

* :class:`StabilityMonitor`: stops on NaN/Inf, counts loss spikes;
* :class:`Lookahead`: the fast recipe's weight averaging (resumable state);
* :class:`Checkpointer`: best/last checkpoints, ``history.csv`` and ``state.json`` after every epoch;
* :class:`TimeBudget`: stops training once the training time reaches a budget;
* :class:`TensorBoardLogger`: epoch scalars for TensorBoard.

The engine (:func:`visiondl_keras.training.engine.run_epochs`) calls ``on_train_begin``,
``on_epoch_begin``, ``on_train_batch_end`` and ``on_epoch_end`` (with the epoch's history row as
``logs``) in list order. Taught in lesson 3 (writing a ``keras.callbacks.Callback``).
"""

from __future__ import annotations

import math
import os
from pathlib import Path

import keras
import numpy as np

from visiondl_keras.errors import ConfigError, VisionDLError
from visiondl_keras.io import read_json, write_json
from visiondl_keras.runs import RunDir, save_keras_atomic


class TrainingDiverged(VisionDLError):
    """The loss or the weights became NaN/Inf; training stopped and the best checkpoint was kept."""


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

    The average is state: with ``state_dir`` (the run directory) it is saved at every epoch end
    as ``lookahead-<step>.npz`` and loaded when training resumes, so a resumed run continues exactly.
    """

    def __init__(self, total_steps: int, every: int = 5, max_decay: float = 0.95**5, power: float = 3.0,
                 state_dir: str | os.PathLike | None = None):
        super().__init__()
        self.state_dir = Path(state_dir) if state_dir is not None else None
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

    def on_train_begin(self, logs=None):
        """Resuming: load the average saved with the checkpoint at the optimizer's current step."""
        step = int(keras.ops.convert_to_numpy(self.model.optimizer.iterations))
        if step == 0 or self.state_dir is None:
            return
        path = self.state_dir / f"lookahead-{step}.npz"
        if not path.is_file():
            raise ConfigError(f"{path}: the lookahead state of this checkpoint is missing; the run cannot resume "
                              "exactly (delete the run directory to start again).")
        with np.load(path) as f:
            self.average = [f[f"arr_{i}"] for i in range(len(f.files))]
        self._previous = path.name  # kept until the next checkpoint has been written

    def on_epoch_end(self, epoch, logs=None):
        """Save the average beside the checkpoint the engine writes next (kept: this one and the previous)."""
        if self.state_dir is None or self.average is None:
            return
        step = int(keras.ops.convert_to_numpy(self.model.optimizer.iterations))
        path = self.state_dir / f"lookahead-{step}.npz"
        tmp = path.with_name(f".{path.stem}.tmp.npz")
        np.savez(tmp, *self.average)
        os.replace(tmp, path)
        for old in self.state_dir.glob("lookahead-*.npz"):
            if old.name != path.name and old.name != getattr(self, "_previous", None):
                old.unlink(missing_ok=True)
        self._previous = path.name


class TensorBoardLogger(keras.callbacks.Callback):
    """Writes each epoch's numeric logs as TensorBoard scalars (TensorFlow only; never stops a run)."""

    def __init__(self, logdir: str | os.PathLike):
        super().__init__()
        try:
            import tensorflow as tf

            self._tf = tf
            self._writer = tf.summary.create_file_writer(str(logdir))
        except Exception:
            self._writer = None

    def on_epoch_end(self, epoch, logs=None):
        self.log(logs or {}, epoch + 1)

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


def wandb_run(config, run_dir: Path):
    """An offline Weights & Biases run when ``config.wandb`` is set and wandb is installed, else None."""
    if not config.wandb:
        return None
    try:
        import wandb
    except ImportError:
        print("note: wandb is not installed (pip install 'visiondl-keras[wandb]'); logging to the run directory only.")
        return None
    return wandb.init(mode="offline", dir=str(run_dir), config=config.to_dict(), name=run_dir.name)


class Checkpointer(keras.callbacks.Callback):
    """Keeps ``best.keras`` (by ``monitor``) and ``last.keras`` (with optimizer state), ``history.csv``
    and ``state.json`` up to date after every epoch, each written atomically.

    Args:
        run: the :class:`~visiondl_keras.runs.RunDir`.
        history: the rows of the epochs done so far (resuming), extended in place.
        monitor: the history column that decides the best checkpoint (higher is better).
    """

    def __init__(self, run: RunDir, history: list[dict], monitor: str = "val_accuracy"):
        super().__init__()
        self.run, self.history, self.monitor = run, history, monitor
        self.best = max((float(r[monitor]) for r in history), default=-math.inf)
        # the first epoch that reached the best value, as the strict ">" of on_epoch_end would have kept
        self.best_epoch = min((int(r["epoch"]) for r in history if float(r[monitor]) == self.best), default=0)

    def on_epoch_end(self, epoch, logs=None):
        row = dict(logs or {})
        self.history.append(row)
        value = float(row.get(self.monitor, -math.inf))
        if value > self.best:
            self.best, self.best_epoch = value, epoch + 1
            save_keras_atomic(self.model, self.run.best)
        save_keras_atomic(self.model, self.run.last)
        self.run.write_history(self.history)
        self.run.write_state("running", epochs_done=epoch + 1, best_epoch=self.best_epoch,
                             best_val_accuracy=self.best, time_s=row.get("time_s"))


class TimeBudget(keras.callbacks.Callback):
    """Stops training at the end of the first epoch whose cumulative training time reaches ``seconds``."""

    def __init__(self, seconds: float | None):
        super().__init__()
        self.seconds = seconds
        self.stopped_at: int | None = None

    def on_epoch_end(self, epoch, logs=None):
        if self.seconds is not None and float((logs or {}).get("time_s", 0.0)) >= self.seconds:
            self.stopped_at = epoch + 1
            self.model.stop_training = True


class EpochCosine(keras.callbacks.Callback):
    """Per-epoch cosine decay over a number of epochs that a time budget may shorten; resumable.

    Epoch ``k`` (from 0) trains at ``lr * (0.5 + 0.5 cos(pi k / total))``. With ``budget_s``, after
    the first epoch ``total`` becomes ``min(max_epochs, budget_s // that epoch's seconds)`` (at least
    2); after each later epoch the plan is checked against the mean epoch time so far and shortened
    (never lengthened) when the remaining budget no longer holds the remaining epochs, so a run that
    slows down (a busy machine) still ends its decay at a low rate instead of being cut off mid-way.
    Every plan is written to ``state_file`` before the checkpoint, so a resumed run keeps it.
    Training stops after ``total`` epochs. Taught in lesson 4.

    Args:
        lr: the rate of the first epoch.
        max_epochs: the planned number of epochs.
        budget_s: training seconds the stage may take (None: no budget).
        state_file: where the chosen ``total`` is kept (None: not kept).

    Example:
        >>> round(EpochCosine(0.1, max_epochs=4).rate(2), 4)
        0.05
    """

    def __init__(self, lr: float, max_epochs: int, budget_s: float | None = None, state_file=None):
        super().__init__()
        self.lr, self.total, self.budget_s, self.state_file = float(lr), int(max_epochs), budget_s, state_file
        self.planned = False
        if state_file is not None and state_file.is_file():
            self.total, self.planned = int(read_json(state_file)["total_epochs"]), True

    def rate(self, epoch: int) -> float:
        """The learning rate of epoch ``epoch`` (from 0)."""
        return self.lr * (0.5 + 0.5 * math.cos(math.pi * epoch / max(1, self.total)))

    def on_epoch_begin(self, epoch, logs=None):
        self.model.optimizer.learning_rate.assign(self.rate(epoch))

    def _save(self, plan: dict) -> None:
        if self.state_file is not None:
            previous = read_json(self.state_file) if self.state_file.is_file() else {}
            write_json(self.state_file, {**previous, **plan})

    def on_epoch_end(self, epoch, logs=None):
        logs = logs or {}
        if epoch == 0 and self.budget_s and not self.planned:
            seconds = max(float(logs.get("epoch_time_s", 0.0)), 1e-9)
            self.total = max(2, min(self.total, int(self.budget_s // seconds)))
            self.planned = True
            self._save({"total_epochs": self.total, "first_epoch_s": seconds})
        elif epoch > 0 and self.budget_s and logs.get("time_s"):
            done, elapsed = epoch + 1, float(logs["time_s"])
            fits = done + int(max(0.0, self.budget_s - elapsed) // (elapsed / done))
            if fits < self.total:  # slower than planned: end the decay within the budget
                self.total = max(done + 1, fits) if elapsed < self.budget_s else done
                self._save({"total_epochs": self.total, "replanned_after_epoch": done,
                            "mean_epoch_s": round(elapsed / done, 3)})
        if epoch + 1 >= self.total:
            self.model.stop_training = True
