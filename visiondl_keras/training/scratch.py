"""The from-scratch recipes: ``train(config, run_dir)`` builds, trains and evaluates a model.

``train`` writes one run directory (see :mod:`visiondl_keras.runs`) and resumes it when it holds
an unfinished run. The network (:mod:`visiondl_keras.models.scratch` or
:mod:`visiondl_keras.models.airbench`), the optimizer (:mod:`.optimizers`) and the augmentation
(:mod:`visiondl_keras.data.augment`) follow the :class:`~visiondl_keras.training.config.TrainConfig`;
the loop is the shared engine (:func:`visiondl_keras.training.engine.run_epochs`). Taught in lesson 3.
"""

from __future__ import annotations

import os

import keras
import numpy as np

from visiondl_keras.data import augment
from visiondl_keras.data.cifar10 import describe_data, load_cifar10
from visiondl_keras.data.splits import Splits, train_val_split
from visiondl_keras.evaluation.gradients import predict_logits
from visiondl_keras.evaluation.metrics import evaluate_logits
from visiondl_keras.evaluation.tta import tta_accuracies
from visiondl_keras.models.airbench import DEFAULT_WIDTHS, build_airbench
from visiondl_keras.models.scratch import build_scratch_model, model_summary
from visiondl_keras.reporting.plots import save_figure, training_curves
from visiondl_keras.reproducibility import cpu_info, environment_info, set_seed
from visiondl_keras.runs import RunDir
from visiondl_keras.training.callbacks import (
    Checkpointer,
    Lookahead,
    StabilityMonitor,
    TensorBoardLogger,
    wandb_run,
)
from visiondl_keras.training.config import TrainConfig, resolve_precision
from visiondl_keras.training.engine import evaluate_loss_accuracy, resume_state, run_epochs, steps_per_epoch
from visiondl_keras.training.optimizers import compile_model

WHITENING_IMAGES = 5000  # training images whose 2x2 patches initialise the whitening layer
TRAIN_ACCURACY_IMAGES = 10000  # un-augmented training images for the train accuracy in metrics.json


def evaluate_arrays(model, x: np.ndarray, y: np.ndarray, class_names, batch_size: int = 1000) -> dict:
    """Accuracy, mean NLL and per-class accuracy of a logits model on uint8 images."""
    return evaluate_logits(predict_logits(model, x, batch_size), y, class_names)


def build_model(config: TrainConfig, splits: Splits) -> keras.Model:
    """The uncompiled network that ``config`` names, normalising with the training split's statistics."""
    num_classes = len(splits.class_names)
    if config.arch == "airbench":
        whitening_images = splits.x_train[:WHITENING_IMAGES] if config.whitening else None
        return build_airbench(config.widths or DEFAULT_WIDTHS, num_classes, splits.mean, splits.std,
                              whitening_images=whitening_images, identity_init=config.identity_init)
    return build_scratch_model(config.arch, config.width, num_classes, splits.mean, splits.std)


def epoch_data_fn(config: TrainConfig, splits: Splits):
    """``epoch -> (x, y)``: the training arrays of each epoch for the config's augmentation policy."""
    num_classes = len(splits.class_names)
    if augment.is_fast_policy(config.policy):
        fast = augment.FastPolicy(config.policy, num_classes)

        def epoch_data(epoch):
            return augment.fast_policy_epoch(splits.x_train, splits.y_train, fast, config.seed, epoch,
                                             config.batch_size, num_classes)
        return epoch_data
    policy = augment.get_policy(config.policy, num_classes=num_classes, seed=config.seed)

    def epoch_data(epoch):
        return augment.augmented_epoch(splits.x_train, splits.y_train, policy, config.seed, epoch, config.batch_size)
    return epoch_data


def test_metrics(model, splits: Splits, tta_level: int) -> dict:
    """Test accuracy, loss and per-class accuracy of ``model``, and its accuracy at TTA levels 0 and ``tta_level``
    with their cost."""
    test = evaluate_arrays(model, splits.x_test, splits.y_test, splits.class_names)
    tta = tta_accuracies(model, splits.x_test, splits.y_test, (0, tta_level))
    return {"test_accuracy": test["accuracy"], "test_loss": test["loss"],
            "per_class_accuracy": test["per_class_accuracy"], "tta": tta}


def train(config: TrainConfig, run_dir: str | os.PathLike, splits: Splits | None = None, progress: bool = True,
          log=print) -> dict:
    """Train a from-scratch model and write the run directory; resume if it holds an unfinished run.

    Args:
        config: a :class:`~visiondl_keras.training.config.TrainConfig` (e.g. ``preset_config("fast")``).
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
    run = RunDir(run_dir).create()
    set_seed(config.seed, deterministic=config.deterministic)
    precision = resolve_precision(config.precision)
    keras.mixed_precision.set_dtype_policy(precision)
    try:
        if splits is None:
            splits = train_val_split(load_cifar10(config.data, progress=progress), config.val_size, config.seed,
                                     config.limit, config.test_limit)
        steps = steps_per_epoch(len(splits.y_train), config.batch_size)
        saved = run.read("config.json")
        if saved and set(saved) < set(config.to_dict()):  # written before newer fields existed: their defaults
            run.write("config.json", TrainConfig.from_dict(saved).to_dict())
        model, start_epoch, history, elapsed = resume_state(run, config.to_dict(), steps, log)
        if run.is_completed():
            log(f"{run.path}: run already completed; metrics from metrics.json.")
            return run.read("metrics.json")
        if model is None:
            model = build_model(config, splits)
            compile_model(model, config, steps, precision)
            run.write("config.json", config.to_dict())
        env = environment_info()
        env.update({"cpu": cpu_info(), "seed": config.seed, "deterministic": config.deterministic,
                    "precision": precision, "dataset_fingerprint": splits.fingerprint, "data": describe_data(splits)})
        run.write("environment.json", env)
        metrics = _fit_and_evaluate(config, run, splits, model, start_epoch, history, elapsed, precision,
                                    progress, log)
        return metrics
    finally:
        keras.mixed_precision.set_dtype_policy("float32")


def _fit_and_evaluate(config, run, splits, model, start_epoch, history, elapsed, precision, progress, log) -> dict:
    num_classes = len(splits.class_names)
    steps = steps_per_epoch(len(splits.y_train), config.batch_size)
    y_val = augment.one_hot(splits.y_val, num_classes)
    has_val = len(splits.y_val) > 0
    probe_x = splits.x_val[:64] if has_val else splits.x_train[:64]
    probe_y = augment.one_hot(splits.y_val[:64] if has_val else splits.y_train[:64], num_classes)
    callbacks = []
    if config.lookahead:  # before the Checkpointer: its state belongs to the checkpoint
        callbacks.append(Lookahead(config.epochs * steps, state_dir=run.path))
    checkpointer = Checkpointer(run, history)
    callbacks += [checkpointer, TensorBoardLogger(run.tensorboard)]
    wb = wandb_run(config, run.path)
    run_epochs(model, epoch_data_fn(config, splits), epochs=config.epochs, batch_size=config.batch_size,
               start_epoch=start_epoch, elapsed=elapsed,
               validate=(lambda m: evaluate_loss_accuracy(m, splits.x_val, y_val)) if has_val else None,
               callbacks=callbacks, monitor=StabilityMonitor(config.spike_factor, log=log),
               probe=(probe_x, probe_y), run=run, progress=progress, log=log)
    if wb is not None:
        for row in history:
            wb.log(row, step=int(row["epoch"]))
    elapsed = float(history[-1]["time_s"]) if history else 0.0
    best = keras.saving.load_model(run.best, compile=False)
    test = test_metrics(best, splits, config.tta_level)
    val = evaluate_arrays(best, splits.x_val, splits.y_val, splits.class_names) if has_val else None
    n_train = min(TRAIN_ACCURACY_IMAGES, len(splits.y_train))
    train_acc = evaluate_arrays(best, splits.x_train[:n_train], splits.y_train[:n_train], splits.class_names)
    metrics = {
        **test,
        "val_accuracy": val["accuracy"] if val else None,
        "val_loss": val["loss"] if val else None,
        # accuracy on un-augmented training images: train_accuracy - test_accuracy is the generalisation gap
        "train_accuracy": train_acc["accuracy"],
        "train_accuracy_images": n_train,
        "best_epoch": checkpointer.best_epoch,
        "epochs": config.epochs,
        "train_time_s": round(elapsed, 1),
        "images_per_second": round(config.epochs * len(splits.y_train) / elapsed, 1) if elapsed else None,
        "model": model_summary(best),
        "precision": precision,
        "data": describe_data(splits),
    }
    run.write("metrics.json", metrics)
    save_figure(training_curves(history, title=f"{best.name}: test accuracy {test['test_accuracy']:.4f}"),
                run.figures / "curves.png")
    run.write_state("completed", epochs_done=config.epochs, best_epoch=checkpointer.best_epoch,
                    best_val_accuracy=checkpointer.best, time_s=elapsed)
    if wb is not None:
        wb.summary.update({"test_accuracy": test["test_accuracy"]})
        wb.finish()
    return metrics
