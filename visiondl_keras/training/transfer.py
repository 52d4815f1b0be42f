"""The transfer recipe on the shared engine: a head on cached features, then fine-tuning.

Stage 1 trains the head of a transfer model (:mod:`visiondl_keras.models.backbones`) on pooled
features of the frozen backbone, computed once and cached (:mod:`visiondl_keras.models.features`);
stage 2 unfreezes part (``partial``) or all (``full``) of the backbone and fine-tunes end to end
with random flips and pad-crops, a smaller learning rate for the backbone (discriminative learning
rates) and a per-epoch cosine decay that a time budget may shorten. Both stages run through
:func:`visiondl_keras.training.engine.run_epochs` with a
:class:`~visiondl_keras.training.callbacks.Checkpointer`, each in a run directory of its own::

    RUN/config.json, environment.json, history.csv (both stages, a "stage" column), metrics.json,
        state.json, best.keras (the best epoch of either stage, uncompiled)
    RUN/stage1_head/       the head model's checkpoints, history and state
    RUN/stage2_finetune/   the full model's checkpoints, history, state and schedule.json

An epoch's data is a pure function of (seed, epoch) (``np.random.default_rng([seed, epoch])``
shuffles and augments it), dropout masks are reseeded from (seed, epoch) at every epoch start, and
the time-budgeted schedule stores the epoch count it chose, so a run killed at any point (even
``kill -9``, in either stage) and started again with the same command ends with the same weights
and metrics as an uninterrupted one. Taught in lesson 4.
"""

from __future__ import annotations

import math
import time

import keras
import numpy as np

from visiondl_keras.data.augment import one_hot, random_crop, random_flip
from visiondl_keras.data.cifar10 import describe_data
from visiondl_keras.errors import ConfigError
from visiondl_keras.evaluation.gradients import predict_logits
from visiondl_keras.evaluation.metrics import accuracy, evaluate_logits
from visiondl_keras.evaluation.tta import tta_accuracies
from visiondl_keras.models.backbones import (
    apply_strategy,
    build_transfer_model,
    describe_transfer_model,
    head_model,
    is_transfer_model,
)
from visiondl_keras.models.features import extract_features
from visiondl_keras.reproducibility import environment_info
from visiondl_keras.runs import RunDir
from visiondl_keras.training.callbacks import (  # noqa: F401  (EpochCosine: taught here, lesson 4)
    Checkpointer,
    EpochCosine,
    StabilityMonitor,
    TensorBoardLogger,
    TimeBudget,
)
from visiondl_keras.training.engine import evaluate_loss_accuracy, resume_state, run_epochs, steps_per_epoch

HEAD_STAGE, FINETUNE_STAGE = "stage1_head", "stage2_finetune"
HEAD_LAYER_PREFIXES = ("logits", "head_")  # variables of these layers keep the base learning rate


class _DiscriminativeMixin:
    """Scales the learning rate of every variable outside the head by ``backbone_lr_multiplier``.

    The head is recognised by the first component of a variable's path (``logits/kernel``,
    ``head_dense/bias``), so the multipliers need no object identities and are restored with the
    optimizer when a checkpoint is loaded (the class is registered as serializable).
    """

    def __init__(self, *args, backbone_lr_multiplier: float = 1.0, **kwargs):
        super().__init__(*args, **kwargs)
        self.backbone_lr_multiplier = float(backbone_lr_multiplier)

    def build(self, variables):
        super().build(variables)
        self._lr_multipliers = [
            1.0 if v.path.split("/")[0].startswith(HEAD_LAYER_PREFIXES) else self.backbone_lr_multiplier
            for v in variables
        ]

    def update_step(self, gradient, variable, learning_rate):
        mult = self._lr_multipliers[self._get_variable_index(variable)]
        if mult != 1.0:
            learning_rate = learning_rate * mult
        return super().update_step(gradient, variable, learning_rate)

    def get_config(self):
        return {**super().get_config(), "backbone_lr_multiplier": self.backbone_lr_multiplier}


@keras.saving.register_keras_serializable(package="visiondl_keras")
class DiscriminativeAdam(_DiscriminativeMixin, keras.optimizers.Adam):
    """Adam with a learning-rate multiplier for the backbone (see :func:`discriminative_optimizer`). Taught in lesson 4.

    Example: ``DiscriminativeAdam(1e-3, backbone_lr_multiplier=0.1)``.
    """


@keras.saving.register_keras_serializable(package="visiondl_keras")
class DiscriminativeAdamW(_DiscriminativeMixin, keras.optimizers.AdamW):
    """AdamW with a learning-rate multiplier for the backbone (see :func:`discriminative_optimizer`). Taught in lesson 4.

    Example: ``DiscriminativeAdamW(1e-3, backbone_lr_multiplier=0.1)``.
    """


@keras.saving.register_keras_serializable(package="visiondl_keras")
class DiscriminativeSGD(_DiscriminativeMixin, keras.optimizers.SGD):
    """SGD with a learning-rate multiplier for the backbone (see :func:`discriminative_optimizer`). Taught in lesson 4.

    Example: ``DiscriminativeSGD(1e-3, backbone_lr_multiplier=0.1)``.
    """


_OPTIMIZERS = {"adam": DiscriminativeAdam, "adamw": DiscriminativeAdamW, "sgd": DiscriminativeSGD}


def discriminative_optimizer(optimizer: str = "adam", learning_rate: float = 1e-3, backbone_lr_multiplier: float = 1.0,
                             **kwargs) -> keras.optimizers.Optimizer:
    """An optimizer whose learning rate for the backbone's variables is ``learning_rate * multiplier``.

    Keras optimizers have one learning rate; these subclasses scale it in the update step of every
    variable outside the head (momentum and Adam moments are kept per variable as usual; AdamW's
    decoupled weight decay uses the base rate). Taught in lesson 4.

    Args:
        optimizer: ``"adam"``, ``"adamw"`` or ``"sgd"``.
        learning_rate: the head's learning rate.
        backbone_lr_multiplier: factor for the backbone (e.g. 0.1); 1.0 trains everything alike.
        **kwargs: passed to the optimizer (``weight_decay``, ``momentum``, ...).

    Returns:
        A ``keras.optimizers.Optimizer`` that a ``.keras`` checkpoint saves and restores.

    Raises:
        ConfigError: unknown optimizer or a multiplier that is not positive.

    Example:
        >>> opt = discriminative_optimizer("adam", 1e-3, backbone_lr_multiplier=0.1)
        >>> type(opt).__name__, opt.backbone_lr_multiplier
        ('DiscriminativeAdam', 0.1)
    """
    if optimizer not in _OPTIMIZERS:
        raise ConfigError(f"unknown optimizer {optimizer!r}; choose one of {', '.join(_OPTIMIZERS)}.")
    if not backbone_lr_multiplier > 0:
        raise ConfigError(f"backbone_lr_multiplier must be > 0, got {backbone_lr_multiplier!r}.")
    return _OPTIMIZERS[optimizer](learning_rate=learning_rate, backbone_lr_multiplier=backbone_lr_multiplier, **kwargs)


def compile_transfer_model(model: keras.Model, learning_rate: float = 1e-3, backbone_lr_multiplier: float = 1.0,
                           optimizer: str = "adam", label_smoothing: float = 0.0, **optimizer_kwargs) -> keras.Model:
    """Compile with categorical cross-entropy on logits (one-hot labels) and accuracy.

    Re-compile after changing trainable flags (Keras reads them at compile time). Taught in lesson 4.

    Args:
        model: a transfer model (after :func:`~visiondl_keras.models.backbones.apply_strategy`) or
            its head model (:func:`~visiondl_keras.models.backbones.head_model`).
        learning_rate: the head's learning rate.
        backbone_lr_multiplier: scales the backbone's learning rate (ignored for a head model).
        optimizer: ``"adam"``, ``"adamw"`` or ``"sgd"``.
        label_smoothing: the loss's targets become ``(1 - label_smoothing) * one_hot +
            label_smoothing / classes``; 0 is plain cross-entropy.
        **optimizer_kwargs: passed to the optimizer.

    Returns:
        The same model, compiled.

    Raises:
        ConfigError: unknown optimizer or bad multiplier.

    Example:
        >>> compile_transfer_model(model, 1e-3, backbone_lr_multiplier=0.2)  # doctest: +SKIP
    """
    mult = backbone_lr_multiplier if is_transfer_model(model) else 1.0
    model.compile(optimizer=discriminative_optimizer(optimizer, learning_rate, mult, **optimizer_kwargs),
                  loss=keras.losses.CategoricalCrossentropy(from_logits=True, label_smoothing=label_smoothing),
                  metrics=[keras.metrics.CategoricalAccuracy(name="accuracy")])
    return model


class ReseedRandomLayers(keras.callbacks.Callback):
    """Sets the state of every random layer (dropout) from (seed, epoch) at each epoch start.

    Keras does not save a seed generator's state in a checkpoint; reseeding makes the masks of an
    epoch the same in a resumed run as in an uninterrupted one. Taught in lesson 4.

    Example:
        >>> callbacks = [ReseedRandomLayers(seed=0)]  # passed to run_epochs
    """

    def __init__(self, seed: int):
        super().__init__()
        self.seed = int(seed)

    def on_epoch_begin(self, epoch, logs=None):
        states = [v for v in self.model.variables if v.path.endswith("seed_generator_state")]
        draws = np.random.default_rng([self.seed, epoch, 7]).integers(1, 2**31 - 1, size=len(states))
        for state, value in zip(states, draws):
            state.assign(np.array([value, 0], dtype=state.dtype))


class ProcessClock(keras.callbacks.Callback):
    """Adds ``cpu_s`` (this process's CPU seconds, all threads, since the stage began) to each epoch's row.

    Less sensitive to other jobs on a shared machine than wall-clock time; continues from the last
    row of ``history`` when a stage resumes. Taught in lesson 4.

    Example:
        >>> callbacks = [ProcessClock(history=[])]  # passed to run_epochs
    """

    def __init__(self, history: list[dict]):
        super().__init__()
        self.offset = float(history[-1].get("cpu_s", 0.0)) if history else 0.0

    def on_train_begin(self, logs=None):
        self.start = time.process_time()

    def on_epoch_end(self, epoch, logs=None):
        if logs is not None:
            logs["cpu_s"] = round(self.offset + time.process_time() - self.start, 3)


def feature_epochs(features: np.ndarray, y_onehot: np.ndarray, seed: int):
    """``epoch -> (features, labels)`` shuffled by ``default_rng([seed, epoch])`` (stage 1).

    Example:
        >>> data = feature_epochs(np.arange(6.0)[:, None], np.eye(2)[[0, 1, 0, 1, 0, 1]], seed=0)
        >>> np.array_equal(data(3)[0], data(3)[0])
        True

    Taught in lesson 4.
    """
    def epoch_data(epoch):
        order = np.random.default_rng([seed, epoch]).permutation(len(features))
        return features[order], y_onehot[order]
    return epoch_data


def image_epochs(x: np.ndarray, y_onehot: np.ndarray, seed: int, flip: bool = True, crop_pad: int = 4):
    """``epoch -> (images, labels)``: shuffled, flipped and pad-cropped by ``default_rng([seed, epoch])`` (stage 2).

    Args:
        x: uint8 training images (N, 32, 32, 3).
        y_onehot: one-hot labels.
        seed: the run's seed; the same (seed, epoch) gives the same arrays.
        flip: random horizontal flips (:func:`~visiondl_keras.data.augment.random_flip`).
        crop_pad: reflect-padding of the random crops (:func:`~visiondl_keras.data.augment.random_crop`); 0: none.

    Returns:
        The function of the epoch. Taught in lesson 4.

    Example:
        >>> data = image_epochs(np.zeros((4, 32, 32, 3), np.uint8), np.eye(4), seed=0)
        >>> data(0)[0].shape
        (4, 32, 32, 3)
    """
    def epoch_data(epoch):
        rng = np.random.default_rng([seed, epoch])
        order = rng.permutation(len(x))
        images = x[order]
        if flip:
            images = random_flip(images, rng)
        if crop_pad:
            images = random_crop(images, crop_pad, rng)
        return images, y_onehot[order]
    return epoch_data


def feature_loss_accuracy(head, features: np.ndarray, y_onehot: np.ndarray, batch_size: int = 1024):
    """The compiled loss and the accuracy of a head model on features (the stage-1 validation).

    Example:
        >>> loss, acc = feature_loss_accuracy(head, f_val, y_val_onehot)  # doctest: +SKIP

    Taught in lesson 4.
    """
    logits = np.concatenate([keras.ops.convert_to_numpy(head.predict_on_batch(features[i : i + batch_size]))
                             for i in range(0, len(features), batch_size)])
    loss = float(keras.ops.convert_to_numpy(head.loss(y_onehot, logits)))
    return loss, accuracy(logits, y_onehot.argmax(1))


def train_stage(run: RunDir, config: dict, build, epoch_data, n_train: int, *, epochs: int, batch_size: int,
                validate=None, lr: float = 1e-3, cosine: bool = False, budget_s: float | None = None, seed: int = 0,
                progress: bool = True, log=print) -> list[dict]:
    """Train one stage in its run directory with the shared engine, resuming it when unfinished.

    Args:
        run: the stage's run directory.
        config: the stage's configuration (``config.json`` of an existing stage must match it).
        build: ``() -> compiled model`` for a new stage (a resumed one loads ``last.keras``).
        epoch_data: ``epoch -> (x, y_onehot)``, a pure function of the epoch.
        n_train: training samples per epoch.
        epochs, batch_size: the stage's (maximum) epochs and its batch size.
        validate: ``model -> (val_loss, val_accuracy)`` after each epoch.
        lr, cosine: with ``cosine``, an :class:`EpochCosine` decay from ``lr``.
        budget_s: training seconds the stage may take (:class:`EpochCosine` plans with it and a
            :class:`~visiondl_keras.training.callbacks.TimeBudget` enforces it).
        seed: reseeds dropout each epoch (:class:`ReseedRandomLayers`).
        progress, log: progress bars; where one-line messages go.

    Returns:
        The stage's history rows (``state.json`` then says ``"completed"``; ``last.keras`` holds the
        final model, ``best.keras`` the best epoch's).

    Raises:
        ConfigError: the folder holds a stage with another configuration.
        TrainingDiverged: the loss or the weights became NaN/Inf.

    Example:
        >>> rows = train_stage(RunDir("runs/tl/stage1_head"), cfg, build, data, 45000, epochs=3, batch_size=256)  # doctest: +SKIP

    Taught in lesson 4.
    """
    run.create()
    model, start, history, elapsed = resume_state(run, config, steps_per_epoch(n_train, batch_size), log)
    state = run.state() or {}
    if state.get("status") == "completed":
        return history
    if model is None:
        model = build()
        run.write("config.json", config)
    schedule = EpochCosine(lr, epochs, budget_s, run.path / "schedule.json") if cosine else None
    total = min(epochs, schedule.total) if schedule is not None else epochs
    checkpointer = Checkpointer(run, history)
    callbacks = [ReseedRandomLayers(seed), ProcessClock(history), *([schedule] if schedule else []),
                 TimeBudget(budget_s), checkpointer, TensorBoardLogger(run.tensorboard)]
    if start < total and not (budget_s and elapsed >= budget_s):
        run_epochs(model, epoch_data, epochs=total, batch_size=batch_size, start_epoch=start, elapsed=elapsed,
                   validate=validate, callbacks=callbacks, monitor=StabilityMonitor(log=log), run=run,
                   progress=progress, log=log)
    run.write_state("completed", epochs_done=len(history), best_epoch=checkpointer.best_epoch,
                    best_val_accuracy=checkpointer.best, time_s=float(history[-1]["time_s"]) if history else 0.0)
    return history


def copy_weights(source: keras.Model, target: keras.Model) -> keras.Model:
    """Assign ``source``'s weights to the same-named weights of ``target`` (same architecture).

    Raises:
        ConfigError: the two models' weights differ in names or shapes.

    Example:
        >>> copy_weights(keras.saving.load_model("runs/tl/best.keras"), model)  # doctest: +SKIP

    Taught in lesson 4.
    """
    src = {w.path: w for w in source.weights}
    if set(src) != {w.path for w in target.weights}:
        raise ConfigError(f"models {source.name!r} and {target.name!r} have different weights; cannot copy.")
    for w in target.weights:
        w.assign(keras.ops.convert_to_numpy(src[w.path]))
    return target


def fit_two_stages(model: keras.Model, splits, run: RunDir, recipe: dict, features=None, progress: bool = True,
                   log=print) -> dict:
    """Stage 1 (head on cached features) then stage 2 (fine-tuning), each resumable, in ``run``.

    Args:
        model: a transfer model built with ``strategy="frozen"`` after ``keras.utils.set_random_seed``.
        splits: :class:`~visiondl_keras.data.splits.Splits`.
        run: the run directory; the stages go to ``RUN/stage1_head`` and ``RUN/stage2_finetune``.
        recipe: ``strategy`` (of stage 2: ``"partial"``/``"full"``; ``"frozen"`` skips it),
            ``head_epochs``, ``finetune_epochs``, ``head_batch_size``, ``batch_size``, ``lr``,
            ``backbone_lr_multiplier``, ``unfreeze``, ``flip``, ``crop_pad``, ``head_cosine``,
            ``finetune_cosine``, ``budget_s`` (of stage 2), ``seed`` and optionally ``label_smoothing``
            (both stages; default 0) and ``freeze_bottom`` (stage 2 ``full``: the bottom weighted
            backbone layers that stay frozen; default 0).
        features: ``(f_train, f_val)``, the pooled features (default: :func:`extract_features`).

    Returns:
        ``{"history": rows of both stages with a "stage" column and continuing epoch/time_s,
        "stages": {name: state.json}, "model": the final model (compiled; the last epoch's weights)}``.

    Raises:
        ConfigError: a stage folder holds another configuration.

    Taught in lesson 4.

    Example:
        >>> result = fit_two_stages(model, splits, RunDir("runs/tl"), reference_recipe("partial"))  # doctest: +SKIP
    """
    r = recipe
    num_classes = len(splits.class_names)
    y_train, y_val = one_hot(splits.y_train, num_classes), one_hot(splits.y_val, num_classes)
    has_val = len(splits.y_val) > 0
    smoothing = float(r.get("label_smoothing") or 0.0)  # in the stages' config only when used (older runs resume)
    base = {k: r[k] for k in ("seed", "lr")} | {"model": model.name, "train_size": int(len(y_train)),
                                                 "data_fingerprint": splits.fingerprint}
    if smoothing:
        base["label_smoothing"] = smoothing
    rows, stages, final = [], {}, model
    if r["head_epochs"]:
        stage = RunDir(run.path / HEAD_STAGE)
        if features is None and not (stage.state() or {}).get("status") == "completed":
            features = (extract_features(model, splits.x_train, progress=progress),
                        extract_features(model, splits.x_val, progress=progress) if has_val else None)
        head = head_model(model)
        hist = train_stage(
            stage, {**base, "stage": "head", "epochs": r["head_epochs"], "batch_size": r["head_batch_size"],
                    "cosine": r["head_cosine"]},
            lambda: compile_transfer_model(head, r["lr"], label_smoothing=smoothing),
            feature_epochs(features[0], y_train, r["seed"]) if features is not None else None, len(y_train),
            epochs=r["head_epochs"], batch_size=r["head_batch_size"], lr=r["lr"], cosine=r["head_cosine"],
            validate=(lambda m: feature_loss_accuracy(m, features[1], y_val)) if has_val else None,
            seed=r["seed"], progress=progress, log=log)
        copy_weights(keras.saving.load_model(stage.last, compile=False), head)  # the final head, resumed or not
        rows += [{**h, "stage": "head"} for h in hist]
        stages["head"] = stage.state()
    if r["strategy"] != "frozen" and r["finetune_epochs"]:
        stage = RunDir(run.path / FINETUNE_STAGE)
        freeze_bottom = int(r.get("freeze_bottom") or 0)  # in the stage's config only when used
        apply_strategy(model, r["strategy"], unfreeze=r["unfreeze"], freeze_bottom=freeze_bottom)
        keys = ("strategy", "batch_size", "backbone_lr_multiplier", "unfreeze", "flip", "crop_pad", "budget_s")
        hist = train_stage(
            stage, {**base, **{k: r[k] for k in keys}, "stage": "finetune", "epochs": r["finetune_epochs"],
                    "cosine": r["finetune_cosine"], "after_head_epochs": r["head_epochs"],
                    **({"freeze_bottom": freeze_bottom} if freeze_bottom else {})},
            lambda: compile_transfer_model(model, r["lr"], r["backbone_lr_multiplier"],
                                           label_smoothing=smoothing),
            image_epochs(splits.x_train, y_train, r["seed"], r["flip"], r["crop_pad"]), len(y_train),
            epochs=r["finetune_epochs"], batch_size=r["batch_size"], lr=r["lr"], cosine=r["finetune_cosine"],
            budget_s=r["budget_s"],
            validate=(lambda m: evaluate_loss_accuracy(m, splits.x_val, y_val, 256)) if has_val else None,
            seed=r["seed"], progress=progress, log=log)
        final = keras.saving.load_model(stage.last, compile=False)
        offset = {"epoch": len(rows), "time_s": float(rows[-1]["time_s"]) if rows else 0.0,
                  "cpu_s": float(rows[-1].get("cpu_s", 0.0)) if rows else 0.0}
        rows += [{**h, "stage": r["strategy"], **{k: float(h[k]) + v for k, v in offset.items() if k in h}}
                 for h in hist]
        stages["finetune"] = stage.state()
    for h in rows:
        h["epoch"] = int(h["epoch"])
    return {"history": rows, "stages": stages, "model": final}


def reference_recipe(strategy="full", warmup_epochs=3, max_epochs=12, budget_minutes=None, batch_size=64, lr=1e-3,
                     backbone_lr_multiplier=0.2, unfreeze=0.25, flip=True, crop_pad=4, seed=0, label_smoothing=0.0,
                     tta_level=0, freeze_bottom=0) -> dict:
    """The ``recipe`` of :func:`fit_two_stages` for :func:`train_reference`'s arguments.

    ``label_smoothing`` applies to both stages' loss; ``tta_level`` (0, 1 or 2, see
    :mod:`visiondl_keras.evaluation.tta`) adds the test accuracy with test-time augmentation to
    ``metrics.json`` (the accuracy without it is always reported); ``freeze_bottom`` (``full`` only,
    :func:`~visiondl_keras.models.backbones.freeze_bottom_layers`) makes fine-tuning epochs faster.

    Raises:
        ConfigError: unknown strategy, epoch counts below their minimum, label smoothing outside
            [0, 1), an unknown TTA level, or a negative ``freeze_bottom`` or one with another strategy.

    Example:
        >>> reference_recipe("frozen")["finetune_epochs"]
        0

    Taught in lesson 4.
    """
    if strategy not in ("frozen", "partial", "full"):
        raise ConfigError(f"strategy must be frozen, partial or full, got {strategy!r}.")
    if warmup_epochs < (1 if strategy == "frozen" else 0) or max_epochs < 0 or warmup_epochs + max_epochs < 1:
        raise ConfigError(f"need warmup_epochs >= {1 if strategy == 'frozen' else 0}, max_epochs >= 0 and at least "
                          f"one epoch in all, got {warmup_epochs} and {max_epochs}.")
    if not 0 <= label_smoothing < 1:
        raise ConfigError(f"label_smoothing must lie in [0, 1), got {label_smoothing!r}.")
    if tta_level not in (0, 1, 2):
        raise ConfigError(f"tta_level must be 0, 1 or 2, got {tta_level!r}.")
    if isinstance(freeze_bottom, bool) or not isinstance(freeze_bottom, (int, np.integer)) or freeze_bottom < 0:
        raise ConfigError(f"freeze_bottom must be a non-negative number of layers, got {freeze_bottom!r}.")
    if freeze_bottom and strategy != "full":
        raise ConfigError(f"freeze_bottom applies to the full strategy only, got strategy {strategy!r}.")
    recipe = dict(strategy=strategy, head_epochs=int(warmup_epochs), finetune_epochs=int(max_epochs),
                  head_batch_size=256, batch_size=int(batch_size), lr=float(lr),
                  backbone_lr_multiplier=float(backbone_lr_multiplier), unfreeze=unfreeze, flip=bool(flip),
                  crop_pad=int(crop_pad), head_cosine=strategy == "frozen", finetune_cosine=True,
                  budget_s=budget_minutes * 60 if budget_minutes else None, seed=int(seed),
                  label_smoothing=float(label_smoothing), tta_level=int(tta_level), freeze_bottom=int(freeze_bottom))
    if strategy == "frozen":  # no stage 2: its settings do not apply
        recipe.update(finetune_epochs=0, budget_s=None, backbone_lr_multiplier=None, unfreeze=None, flip=False,
                      crop_pad=0)
    return recipe


def train_reference(splits, run_dir, backbone="mobilenet_v2", alpha=None, input_size=96, strategy="full",
                    warmup_epochs=3, max_epochs=12, budget_minutes=None, batch_size=64, lr=1e-3,
                    backbone_lr_multiplier=0.2, unfreeze=0.25, flip=True, crop_pad=4, seed=0, progress=True,
                    command: str | None = None, weights="imagenet", log=print, label_smoothing=0.0,
                    tta_level=0, freeze_bottom=0) -> dict:
    """The reference transfer recipe: cached-feature head warm-up, then fine-tuning with augmentation.

    Stage 1: ``warmup_epochs`` of head training (batch 256) on cached features of the unaugmented
    training images (with ``strategy="frozen"`` that is all, with a cosine decay). Stage 2:
    ``strategy`` (``full`` or ``partial``) end to end with random flips and pad-crops, discriminative
    learning rates and a per-epoch cosine decay over ``max_epochs`` epochs, or fewer when
    ``budget_minutes`` (for stage 2) runs out. ``best.keras`` holds the best validation epoch of
    either stage (uncompiled). A run directory that holds an unfinished run is resumed (see
    :func:`fit_two_stages`). Taught in lesson 4.

    Args:
        splits: :class:`~visiondl_keras.data.splits.Splits`.
        run_dir: the run directory (created).
        backbone, alpha, input_size, weights: the model (see
            :func:`~visiondl_keras.models.backbones.build_transfer_model`).
        strategy, warmup_epochs, max_epochs, budget_minutes, batch_size, lr, backbone_lr_multiplier,
            unfreeze, flip, crop_pad, seed, label_smoothing, tta_level, freeze_bottom: the recipe
            (:func:`reference_recipe`).
        progress, log: progress bars; where one-line messages go.
        command: the command line, recorded in ``config.json``.

    Returns:
        The content of ``metrics.json``.

    Raises:
        ConfigError: bad recipe, or ``run_dir`` holds a run with another configuration.
        ModelError: the backbone's weights are missing.

    Example:
        >>> metrics = train_reference(splits, "runs/tl", strategy="partial", budget_minutes=20)  # doctest: +SKIP
    """
    run = RunDir(run_dir).create()
    recipe = reference_recipe(strategy, warmup_epochs, max_epochs, budget_minutes, batch_size, lr,
                              backbone_lr_multiplier, unfreeze, flip, crop_pad, seed, label_smoothing, tta_level,
                              freeze_bottom)
    build = dict(backbone=backbone, input_size=int(input_size), alpha=alpha, dropout=0.2,
                 unfreeze=unfreeze if unfreeze is not None else 0.25)
    config = {**build, **recipe, "weights": weights if weights is None or isinstance(weights, str) else str(weights),
              "val_size": int(len(splits.y_val)), "train_size": int(len(splits.y_train)), "command": command}
    saved = run.read("config.json")
    if saved:  # runs written before these settings existed used their defaults
        saved = {"label_smoothing": 0.0, "tta_level": 0, "freeze_bottom": 0, **saved}
    if saved and {k: v for k, v in saved.items() if k != "command"} != {k: v for k, v in config.items()
                                                                        if k != "command"}:
        raise ConfigError(f"{run.path} holds a run with a different configuration; pass another --run-dir or "
                          "delete that folder.")
    if run.is_completed():
        log(f"{run.path}: run already completed; metrics from metrics.json.")
        return run.read("metrics.json")
    run.write("config.json", saved or config)
    run.write("environment.json", {**environment_info(), "seed": seed, "dataset_fingerprint": splits.fingerprint,
                                   "data": describe_data(splits)})
    keras.utils.set_random_seed(seed)
    model = build_transfer_model(strategy="frozen", weights=weights, **build)
    info = describe_transfer_model(apply_strategy(model, strategy, unfreeze=build["unfreeze"],
                                                  freeze_bottom=recipe["freeze_bottom"]))
    apply_strategy(model, "frozen")
    result = fit_two_stages(model, splits, run, recipe, progress=progress, log=log)
    final = _best_of_stages(run, result["stages"], build)
    final.save(run.best)
    return _write_reference_metrics(run, splits, final, result, info, input_size, tta_level)


def _best_of_stages(run: RunDir, stages: dict, build: dict) -> keras.Model:
    """The uncompiled transfer model with the best validation epoch of either stage (stage 1 on ties)."""
    head_best = (stages.get("head") or {}).get("best_val_accuracy", -math.inf)
    tune_best = (stages.get("finetune") or {}).get("best_val_accuracy", -math.inf)
    final = build_transfer_model(strategy="frozen", weights=None, **build)  # clean: no optimizer, no compile
    if tune_best > head_best:
        return copy_weights(keras.saving.load_model(run.path / FINETUNE_STAGE / "best.keras", compile=False), final)
    keras.utils.set_random_seed(int(run.read("config.json")["seed"]))  # the backbone as stage 1 saw it
    frozen = build_transfer_model(strategy="frozen", weights=run.read("config.json")["weights"], **build)
    copy_weights(keras.saving.load_model(run.path / HEAD_STAGE / "best.keras", compile=False), head_model(frozen))
    return copy_weights(frozen, final)


def _write_reference_metrics(run: RunDir, splits, final, result: dict, info: dict, input_size: int,
                             tta_level: int = 0) -> dict:
    history = result["history"]
    run.write_history(history)
    stages = result["stages"]
    best_stage = max(stages.items(), key=lambda kv: kv[1].get("best_val_accuracy", -math.inf))
    head_rows = sum(1 for h in history if h["stage"] == "head")
    best_epoch = int(best_stage[1]["best_epoch"]) + (head_rows if best_stage[0] == "finetune" else 0)
    eval_start = time.perf_counter()
    test = evaluate_logits(predict_logits(final, splits.x_test, 256), splits.y_test, splits.class_names)
    train_time = float(history[-1]["time_s"]) if history else 0.0
    metrics = {
        "test_accuracy": test["accuracy"],
        "test_loss": test["loss"],
        "per_class_accuracy": test["per_class_accuracy"],
        "best_epoch": best_epoch,
        "best_stage": best_stage[0],
        "best_val_accuracy": float(best_stage[1]["best_val_accuracy"]),
        "train_time_s": round(train_time, 1),
        "test_eval_time_s": round(time.perf_counter() - eval_start, 1),
        "epochs_run": len(history),
        "input_size": int(input_size),
        "model": info["name"],
        "params": info["params"],
        "trainable_params_finetune": info["trainable_params"],
        "checkpoint_bytes": run.best.stat().st_size,
        "data": describe_data(splits),
    }
    if tta_level:
        metrics["tta"] = tta_accuracies(final, splits.x_test, splits.y_test, (0, tta_level))
        metrics["tta_level"] = int(tta_level)
        metrics["test_accuracy_tta"] = metrics["tta"][str(tta_level)]["test_accuracy"]
    run.write("metrics.json", metrics)
    run.write_state("completed", epochs_done=len(history), best_epoch=best_epoch,
                    best_val_accuracy=metrics["best_val_accuracy"], time_s=train_time)
    return metrics
