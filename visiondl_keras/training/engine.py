"""The training engine: one loop for every recipe.

:func:`fit_epoch` runs one epoch of ``train_on_batch`` over pre-shuffled, pre-augmented arrays;
:func:`run_epochs` runs the epochs of a run with the next epoch's data prepared in a background
thread, validation after each epoch, and callbacks (:mod:`visiondl_keras.training.callbacks`)
for checkpoints, lookahead, time budgets and logging; :func:`resume_state` finds where an
interrupted run directory left off. Scratch training (:mod:`.scratch`), transfer training (both
stages, :mod:`.transfer`), the LR finder (:mod:`.lr_finder`) and the ablations all use it.

Why not ``model.fit``: the loop keeps batches exactly as the augmentation made them (MixUp and
CutMix mix within them; an epoch is a pure function of (seed, epoch), so a resumed run sees the
same data), and it avoids a ``tf.data`` iterator per epoch, whose teardown can deadlock on a
loaded CPU with TensorFlow 2.21. Taught in lesson 3.

Resuming: after every epoch the :class:`~visiondl_keras.training.callbacks.Checkpointer` writes
``last.keras`` (model + optimizer state) and stateful callbacks write theirs; the number of epochs
done is read back from the optimizer's step counter, so a run killed at any point (even
``kill -9``) and started again with the same command continues as if never interrupted.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

import keras
import numpy as np

from visiondl_keras.errors import ConfigError
from visiondl_keras.evaluation.gradients import predict_logits
from visiondl_keras.runs import RunDir
from visiondl_keras.training.callbacks import StabilityMonitor, TrainingDiverged, global_grad_norm
from visiondl_keras.training.optimizers import current_lr_momentum


def fit_epoch(model, xs: np.ndarray, ys: np.ndarray, batch_size: int, monitor: StabilityMonitor | None = None,
              epoch: int = 0, progress: bool = True, callbacks=()) -> tuple[float, float]:
    """One epoch of ``train_on_batch`` over ``xs, ys`` in order (no shuffling: the data is pre-shuffled).

    A plain loop rather than ``model.fit``: it keeps batches exactly as
    :func:`~visiondl_keras.data.augment.augmented_epoch` made them (MixUp/CutMix mix within them), and
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
    seen = 0
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
        if model.stop_training:
            break
    if monitor is not None and not monitor.problem:
        monitor.on_epoch_end(epoch)
    return tot_loss / max(seen, 1), tot_acc / max(seen, 1)


def evaluate_loss_accuracy(model, x: np.ndarray, y_onehot: np.ndarray, batch_size: int = 500) -> tuple[float, float]:
    """The compiled loss (label smoothing included) and accuracy on ``x`` against one-hot ``y_onehot``."""
    logits = predict_logits(model, x, batch_size)
    loss = float(keras.ops.convert_to_numpy(model.loss(y_onehot, logits)))
    return loss, float(np.mean(logits.argmax(1) == y_onehot.argmax(1)))


def _comparable(d: dict) -> dict:
    return {k: v for k, v in d.items() if k not in ("notes", "wandb")}


def resume_state(run: RunDir, config: dict, steps_per_epoch: int, log=print):
    """Where a run directory left off.

    Args:
        run: the run directory.
        config: the configuration of the run about to start (``config.json`` must match it).
        steps_per_epoch: optimizer steps per epoch (epochs done = optimizer steps // this).

    Returns:
        ``(model, start_epoch, history, elapsed_s)``: the compiled model from ``last.keras`` and the
        history rows up to it, or ``(None, 0, [], 0.0)`` for a new run. A completed run returns
        ``start_epoch`` equal to the number of epochs done and ``model`` None.

    Raises:
        ConfigError: the folder holds a run with another configuration.
    """
    state = run.state()
    if state is None:
        return None, 0, [], 0.0
    saved = run.read("config.json")
    if _comparable(saved) != _comparable(config):
        raise ConfigError(f"{run.path} holds a run with a different configuration; pass another --run-dir or "
                          "delete that folder.")
    if state.get("status") == "completed":
        return None, int(state.get("epochs_done", 0)), run.read_history(), float(state.get("time_s") or 0.0)
    if not run.last.is_file():
        return None, 0, [], 0.0
    model = keras.saving.load_model(run.last, compile=True)
    iterations = int(keras.ops.convert_to_numpy(model.optimizer.iterations))
    start_epoch = iterations // steps_per_epoch
    history = [r for r in run.read_history() if int(r["epoch"]) <= start_epoch]
    elapsed = float(history[-1]["time_s"]) if history else 0.0
    log(f"resuming {run.path} after epoch {start_epoch}")
    return model, start_epoch, history, elapsed


def run_epochs(model, epoch_data: Callable[[int], tuple[np.ndarray, np.ndarray]], *, epochs: int, batch_size: int,
               start_epoch: int = 0, elapsed: float = 0.0, validate: Callable | None = None,
               callbacks=(), monitor: StabilityMonitor | None = None, probe=None, run: RunDir | None = None,
               progress: bool = True, log=print) -> dict:
    """Train ``model`` from ``start_epoch`` to ``epochs`` (or until a callback stops it).

    Args:
        model: a compiled Keras model.
        epoch_data: ``epoch -> (x, y)``, the shuffled, augmented arrays of that epoch (a pure
            function of the epoch, so a resumed run sees the same data). Called one epoch ahead
            in a background thread.
        epochs: the last epoch (exclusive upper bound of the epoch index).
        batch_size: images per step.
        start_epoch, elapsed: where a resumed run starts, and its training time so far.
        validate: ``model -> (val_loss, val_accuracy)`` after each epoch (None: NaN and the
            training accuracy).
        callbacks: ``keras.callbacks.Callback`` objects, called in order; ``on_epoch_end``
            receives the epoch's history row (a Checkpointer should come after callbacks whose
            state belongs to the checkpoint).
        monitor: the :class:`StabilityMonitor` (it also sees every batch); on NaN/Inf the run
            stops with :class:`TrainingDiverged` before anything is saved for that epoch.
        probe: ``(x, y_onehot)`` of a few images for the gradient-norm column (None: no column).
        run: the run directory (to record a divergence in ``state.json``).
        progress, log: Keras progress bars; where one-line messages go.

    Returns:
        ``{"epochs_done", "elapsed_s", "stopped_early"}``.

    Raises:
        TrainingDiverged: the loss or the weights became NaN/Inf.
    """
    callbacks = list(callbacks)
    batch_callbacks = ([monitor] if monitor is not None else []) + callbacks
    for cb in batch_callbacks:
        cb.set_model(model)
    model.stop_training = False
    for cb in callbacks:
        cb.on_train_begin()
    epoch = start_epoch
    with ThreadPoolExecutor(max_workers=1) as prefetch:
        next_epoch = prefetch.submit(epoch_data, start_epoch) if start_epoch < epochs else None
        for epoch in range(start_epoch, epochs):
            if progress:
                log(f"epoch {epoch + 1}/{epochs}")
            xs, ys = next_epoch.result()
            if epoch + 1 < epochs:  # prepare the next epoch's data while this one trains
                next_epoch = prefetch.submit(epoch_data, epoch + 1)
            for cb in batch_callbacks:
                cb.on_epoch_begin(epoch)
            t0 = time.perf_counter()
            train_loss, train_acc = fit_epoch(model, xs, ys, batch_size, monitor, epoch, progress, callbacks)
            epoch_time = time.perf_counter() - t0
            elapsed += epoch_time
            if monitor is not None and monitor.problem:
                _diverged(monitor, run, epoch)
            val_loss, val_acc = validate(model) if validate is not None else (float("nan"), train_acc)
            row = _history_row(model, epoch, train_loss, train_acc, val_loss, val_acc, monitor, probe, epoch_time,
                               elapsed)
            for cb in callbacks:
                cb.on_epoch_end(epoch, row)
            grad = f", grad_norm {row['grad_norm']:.3g}" if "grad_norm" in row else ""
            log(f"epoch {epoch + 1}: val_accuracy {val_acc:.4f}, loss {train_loss:.4f}, lr {row['lr']:.4g}{grad}, "
                f"{epoch_time:.1f}s")
            if model.stop_training:
                epoch += 1
                break
        else:
            epoch = epochs
    for cb in callbacks:
        cb.on_train_end()
    return {"epochs_done": epoch, "elapsed_s": elapsed, "stopped_early": epoch < epochs}


def _diverged(monitor: StabilityMonitor, run: RunDir | None, epoch: int):
    """Record a divergence in ``state.json`` and raise :class:`TrainingDiverged`."""
    best_epoch = (run.state() or {}).get("best_epoch", 0) if run is not None else 0
    if run is not None:
        run.write_state("diverged", epochs_done=epoch, best_epoch=best_epoch, message=monitor.problem)
    kept = f" best.keras (from epoch {best_epoch}) was kept." if run is not None and run.best.is_file() else ""
    raise TrainingDiverged(f"training stopped: {monitor.problem}; lower the learning rate (--lr) or use float32.{kept}")


def _history_row(model, epoch, train_loss, train_acc, val_loss, val_acc, monitor, probe, epoch_time, elapsed) -> dict:
    """One row of ``history.csv``."""
    lr, mom = current_lr_momentum(model.optimizer)
    row = {"epoch": epoch + 1, "loss": train_loss, "accuracy": train_acc, "val_loss": float(val_loss),
           "val_accuracy": float(val_acc), "lr": lr, "momentum": mom if mom is not None else ""}
    if probe is not None:
        row["grad_norm"] = global_grad_norm(model, probe[0], probe[1], model.loss)
    row.update({"loss_spikes": monitor.spikes if monitor is not None else 0,
                "epoch_time_s": round(epoch_time, 3), "time_s": round(elapsed, 3)})
    return row


def steps_per_epoch(n: int, batch_size: int) -> int:
    """Optimizer steps in one epoch of ``n`` images (the last batch may be partial)."""
    return math.ceil(n / batch_size)
