"""Transfer strategies compared on one budget, and the report of the reference transfer run.

Every strategy of every backbone trains on the same stratified subset, for the same number of
epochs, with the same batch size and head learning rate, on the shared engine
(:func:`visiondl_keras.training.transfer.fit_two_stages`, one resumable run directory per run).
For each run the comparison records the validation accuracy after every epoch with the training
seconds so far, the time (and epoch) at which it first reached each target accuracy, the trainable
parameters and the final test accuracy (on a stratified test subset). Strategies:

* ``frozen``: the head trains on cached backbone features (:mod:`visiondl_keras.models.features`); the
  clock includes the one-off feature extraction (its original duration on a cache hit);
* ``partial`` / ``full``: end-to-end, the backbone learning rate scaled by ``backbone_lr_multiplier``;
* ``two_stage``: ``warmup_epochs`` of head training on cached features, then ``partial`` for the
  remaining epochs (same total epoch budget).

:func:`write_outputs` writes ``metrics/transfer_<name>.json`` and ``.md`` (the table) and
``figures/transfer_<name>_accuracy_vs_epoch.png`` and ``..._vs_time.png``, with the scratch
reference run's curve (``history.csv``: epoch, val_accuracy, time_s) on the same axes when it exists.
:func:`reference_summary` describes a finished ``transfer-train`` run for ``metrics/transfer_reference.json``.
The command line is in :mod:`visiondl_keras.cli.transfer`. Taught in lesson 4.
"""

from __future__ import annotations

import logging
import os
import platform
import tempfile
from pathlib import Path

import keras

from visiondl_keras.data.cifar10 import data_kind, describe_data
from visiondl_keras.errors import ConfigError, DataError
from visiondl_keras.evaluation.gradients import predict_logits
from visiondl_keras.evaluation.metrics import accuracy
from visiondl_keras.io import atomic_write_text, read_csv, read_json, write_json
from visiondl_keras.models.backbones import BACKBONES, apply_strategy, build_transfer_model, trainable_params
from visiondl_keras.models.features import extract_features
from visiondl_keras.names import TRANSFER_STRATEGIES as STRATEGY_CHOICES
from visiondl_keras.reporting.plots import save_figure, transfer_accuracy_curves
from visiondl_keras.runs import RunDir, without_local_paths
from visiondl_keras.training.transfer import fit_two_stages

DEFAULT_BUDGET = {
    "input_size": 96, "epochs": 5, "batch_size": 64, "lr": 1e-3, "backbone_lr_multiplier": 0.1,
    "unfreeze": 0.25, "warmup_epochs": 1, "dropout": 0.2, "weights": "imagenet",
    "targets": (0.6, 0.7, 0.8), "seed": 0, "cache": True,
}
HISTORY_KEYS = ("epoch", "stage", "loss", "accuracy", "val_loss", "val_accuracy", "lr", "time_s", "cpu_s")
TRANSFER_TARGET = 0.91  # the test accuracy the reference transfer model aims at
TRANSFER_FLOOR = 0.90  # ... and the least it should reach


def parse_backbones(text: str) -> list[tuple[str, float | None]]:
    """``"mobilenet_v2:0.35,mobilenet:0.25,resnet50"`` -> ``[("mobilenet_v2", 0.35), ...]``.

    Raises:
        ConfigError: an unknown backbone, a bad alpha or an empty list.

    Example:
        >>> parse_backbones("mobilenet_v2:0.35,resnet50")
        [('mobilenet_v2', 0.35), ('resnet50', None)]

    Taught in lesson 4.
    """
    out = []
    for item in (t.strip() for t in text.split(",") if t.strip()):
        name, _, alpha = item.partition(":")
        if name not in BACKBONES:
            raise ConfigError(f"unknown backbone {name!r} in --backbones; choose from {', '.join(BACKBONES)}.")
        try:
            out.append((name, float(alpha) if alpha else None))
        except ValueError as exc:
            raise ConfigError(f"bad alpha {alpha!r} in --backbones item {item!r}; write name:alpha, "
                              "e.g. mobilenet_v2:0.35.") from exc
    if not out:
        raise ConfigError("--backbones is empty; name at least one, e.g. mobilenet_v2:0.35.")
    return out


def time_to_targets(rows: list[dict], targets) -> dict:
    """First epoch and seconds at which ``val_accuracy`` reached each target (None if never).

    Example:
        >>> time_to_targets([{"epoch": 1, "time_s": 9.0, "val_accuracy": 0.7}], (0.6, 0.8))
        {'0.6': {'epoch': 1, 'time_s': 9.0}, '0.8': None}

    Taught in lesson 4.
    """
    out = {}
    for t in targets:
        hit = next((r for r in rows if r["val_accuracy"] >= t), None)
        out[f"{t:g}"] = None if hit is None else {"epoch": int(hit["epoch"]), "time_s": round(float(hit["time_s"]), 2)}
    return out


def _features(model, splits, cache, progress):
    f_train, i_train = extract_features(model, splits.x_train, cache=cache, progress=progress, return_info=True)
    f_val, i_val = extract_features(model, splits.x_val, cache=cache, progress=progress, return_info=True)
    seconds = (i_train["seconds"] + i_val["seconds"], i_train["cpu_seconds"] + i_val["cpu_seconds"])
    return (f_train, f_val), seconds, i_train["cache_hit"] and i_val["cache_hit"]


def strategy_recipe(strategy: str, cfg: dict) -> dict:
    """The :func:`~visiondl_keras.training.transfer.fit_two_stages` recipe of one strategy under ``cfg``.

    Example:
        >>> strategy_recipe("two_stage", DEFAULT_BUDGET)["head_epochs"]
        1

    Taught in lesson 4.
    """
    warm = min(cfg["warmup_epochs"], cfg["epochs"])
    head_epochs, tune_epochs, tune_as = {
        "frozen": (cfg["epochs"], 0, "frozen"), "partial": (0, cfg["epochs"], "partial"),
        "full": (0, cfg["epochs"], "full"), "two_stage": (warm, cfg["epochs"] - warm, "partial"),
    }[strategy]
    return dict(strategy=tune_as, head_epochs=head_epochs, finetune_epochs=tune_epochs,
                head_batch_size=cfg["batch_size"], batch_size=cfg["batch_size"], lr=cfg["lr"],
                backbone_lr_multiplier=cfg["backbone_lr_multiplier"], unfreeze=cfg["unfreeze"], flip=False,
                crop_pad=0, head_cosine=False, finetune_cosine=False, budget_s=None, seed=cfg["seed"],
                weights=None if cfg["weights"] is None else str(cfg["weights"]))


def run_strategy(splits, backbone: str, alpha, strategy: str, cfg: dict, progress: bool = True,
                 run_dir=None) -> dict:
    """Train one backbone with one strategy under the budget ``cfg``; return its result row.

    Args:
        splits: :class:`~visiondl_keras.data.splits.Splits`.
        backbone, alpha: the backbone.
        strategy: one of ``STRATEGY_CHOICES``.
        cfg: the budget (:data:`DEFAULT_BUDGET` keys).
        progress: progress bars.
        run_dir: the run's directory (resumed when unfinished; default: a temporary folder).

    Returns:
        The row: model, strategy, parameter counts, feature extraction seconds, per-epoch
        ``history`` (seconds include the feature extraction), best/final validation accuracy,
        time to each target and the final model's test accuracy.

    Raises:
        ConfigError: unknown strategy, or ``run_dir`` holds another run.

    Example:
        >>> row = run_strategy(splits, "mobilenet_v2", 0.35, "frozen", DEFAULT_BUDGET)  # doctest: +SKIP

    Taught in lesson 4.
    """
    if strategy not in STRATEGY_CHOICES:
        raise ConfigError(f"unknown strategy {strategy!r}; choose from {', '.join(STRATEGY_CHOICES)}.")
    if run_dir is None:
        with tempfile.TemporaryDirectory() as tmp:
            return run_strategy(splits, backbone, alpha, strategy, cfg, progress, tmp)
    keras.utils.set_random_seed(cfg["seed"])
    model = build_transfer_model(backbone, "frozen", input_size=cfg["input_size"], alpha=alpha, weights=cfg["weights"],
                                 dropout=cfg["dropout"], unfreeze=cfg["unfreeze"])
    recipe = strategy_recipe(strategy, cfg)
    features, (feature_seconds, feature_cpu), cache_hit = None, (0.0, 0.0), None
    if recipe["head_epochs"]:
        features, (feature_seconds, feature_cpu), cache_hit = _features(model, splits, cfg["cache"], progress)
    log = logging.getLogger(__name__).info
    result = fit_two_stages(model, splits, RunDir(run_dir), recipe, features, progress=progress, log=log)
    history = [{k: h[k] for k in HISTORY_KEYS if k in h} for h in result["history"]]
    for h in history:
        h["time_s"] = float(h["time_s"]) + feature_seconds
        h["cpu_s"] = float(h.get("cpu_s", 0.0)) + feature_cpu
    trainable = trainable_params(apply_strategy(model, recipe["strategy"], unfreeze=cfg["unfreeze"]))
    test_acc = accuracy(predict_logits(result["model"], splits.x_test, 256), splits.y_test)
    accs = [float(r["val_accuracy"]) for r in history]
    total = history[-1]["time_s"] if history else 0.0
    return {
        "backbone": backbone, "alpha": alpha, "strategy": strategy, "model": model.name,
        "label": f"{model.name} {strategy}",
        "params": int(model.count_params()),
        "trainable_params": int(trainable),  # two_stage: the fine-tuning stage's
        "feature_seconds": round(feature_seconds, 2),
        "feature_cpu_seconds": round(feature_cpu, 2),
        "feature_cache_hit": cache_hit,
        "epochs": len(history),
        "best_val_accuracy": max(accs) if accs else None,
        "final_val_accuracy": accs[-1] if accs else None,
        "total_seconds": round(total, 2),
        "total_cpu_seconds": round(history[-1]["cpu_s"], 2) if history else 0.0,
        "seconds_per_epoch": round((total - feature_seconds) / max(1, len(history)), 2),
        "time_to": time_to_targets(history, cfg["targets"]),
        "test_accuracy": float(test_acc),
        "history": history,
    }


def compare_transfer(splits, backbones, strategies=STRATEGY_CHOICES, progress: bool = True, on_run=None,
                     run_root=None, **budget) -> dict:
    """Run every strategy of every backbone on ``splits`` under one budget.

    Args:
        splits: :class:`visiondl_keras.data.splits.Splits`.
        backbones: ``[(name, alpha), ...]``.
        strategies: a subset of ``("frozen", "partial", "full", "two_stage")``.
        progress: Keras progress bars.
        on_run: optional ``callable(result_so_far)`` called after every run (e.g. to save partial results).
        run_root: folder of the runs' directories (``<backbone>_<alpha>_<strategy>``), so that an
            interrupted comparison resumes; default: temporary folders.
        **budget: overrides of :data:`DEFAULT_BUDGET`: ``input_size`` (96), ``epochs`` (5),
            ``batch_size`` (64), ``lr`` (1e-3), ``backbone_lr_multiplier`` (0.1), ``unfreeze`` (0.25),
            ``warmup_epochs`` (1), ``dropout`` (0.2), ``weights`` ("imagenet"), ``targets``
            ((0.6, 0.7, 0.8)), ``seed`` (0), ``cache`` (True).

    Returns:
        A dict with the budget, the data description (:func:`~visiondl_keras.data.cifar10.describe_data`
        and the split seed) and one row per run (see :func:`run_strategy`).

    Raises:
        ConfigError: unknown budget keys or strategies, or fewer than one epoch.

    Example:
        >>> result = compare_transfer(splits, [("mobilenet_v2", 0.35)], epochs=2)  # doctest: +SKIP

    Taught in lesson 4.
    """
    cfg = dict(DEFAULT_BUDGET)
    unknown = set(budget) - set(cfg)
    if unknown:
        raise ConfigError(f"unknown budget keys {sorted(unknown)}; known: {sorted(cfg)}.")
    cfg.update(budget)
    bad = [s for s in strategies if s not in STRATEGY_CHOICES]
    if bad:
        raise ConfigError(f"unknown strategies {bad}; choose from {', '.join(STRATEGY_CHOICES)}.")
    if cfg["epochs"] < 1:
        raise ConfigError(f"epochs must be >= 1, got {cfg['epochs']}.")
    runs = []
    result = {
        "budget": {k: (list(v) if isinstance(v, tuple) else v) for k, v in cfg.items()},
        "data": {**describe_data(splits), "seed": splits.seed},
        "runs": runs,
    }
    for backbone, alpha in backbones:
        for strategy in strategies:
            logging.getLogger(__name__).info("transfer-compare: %s (alpha %s) %s", backbone, alpha, strategy)
            run_dir = None if run_root is None else Path(run_root) / f"{backbone}_{alpha}_{strategy}"
            runs.append(run_strategy(splits, backbone, alpha, strategy, cfg, progress, run_dir))
            if on_run is not None:
                on_run(result)
    return result


def load_reference_history(path) -> dict | None:
    """The scratch reference run's curve (``history.csv`` with epoch, val_accuracy, time_s), or None.

    Args:
        path: the run's ``history.csv`` (its ``config.json`` beside it names the model).

    Returns:
        ``{"label", "path", "rows"}``, or None when the file does not exist.

    Raises:
        DataError: the file lacks one of the columns.

    Example:
        >>> load_reference_history("no/such/history.csv") is None
        True

    Taught in lesson 4.
    """
    path = Path(path)
    if not path.is_file():
        return None
    rows = read_csv(path)
    needed = {"epoch", "val_accuracy", "time_s"}
    if not rows or not needed <= set(rows[0]):
        raise DataError(f"{path}: a scratch reference history needs the columns {sorted(needed)}.")
    label = "scratch reference"
    config = path.parent / "config.json"
    if config.is_file():
        cfg = read_json(config)
        arch = cfg.get("arch") or cfg.get("model")
        if arch:
            label += f" ({arch}" + (f" w{cfg['width']}" if cfg.get("width") else "") + ", full train set)"
    return {"label": label, "path": str(path), "rows": [{k: r[k] for k in needed} for r in rows]}


def _fmt_time(entry) -> str:
    return "-" if entry is None else f"{entry['time_s']:.0f} s (ep {entry['epoch']})"


def markdown_table(result: dict) -> str:
    """The comparison as a markdown document (budget line, table, notes).

    Args:
        result: what :func:`compare_transfer` returned (with ``name``, ``notes``, ``complete`` optional).

    Returns:
        The markdown text.

    Example:
        >>> markdown_table(result).splitlines()[0]  # doctest: +SKIP
        '# Transfer learning: strategies compared (quick)'

    Taught in lesson 4.
    """
    b, d = result["budget"], result["data"]
    targets = [f"{t:g}" for t in b["targets"]]
    lines = [
        f"# Transfer learning: strategies compared ({result.get('name', '')})",
        "",
        f"Data: {data_kind(d['source'])}, stratified subset of {d['n_train']} training images, {d['n_val']} "
        f"validation images (from the training set), {d['n_test']} test images (fingerprint {d['fingerprint'][:12]}).",
        f"Budget per run: {b['epochs']} epochs, batch {b['batch_size']}, Adam lr {b['lr']:g} "
        f"(backbone x{b['backbone_lr_multiplier']:g} for partial/full/two-stage), input {b['input_size']} px, "
        f"partial unfreezes {b['unfreeze']} of the weighted backbone layers (BatchNorm frozen), "
        f"two-stage = {b['warmup_epochs']} warm-up epoch(s) on cached features + partial, no augmentation, seed {b['seed']}.",
        f"Seconds are training time (validation excluded; and this process's CPU seconds, all threads), plus, "
        f"for frozen/two-stage, the one-off feature extraction. "
        f"Machine: {result.get('machine', 'see environment')}.",
        "",
        "| model | strategy | trainable params | best val acc | final val acc | test acc | s/epoch | total s | CPU s | "
        + " | ".join(f"time to {t}" for t in targets)
        + " |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|" + "---:|" * len(targets),
    ]
    for r in result["runs"]:
        lines.append(
            f"| {r['model']} | {r['strategy']} | {r['trainable_params']:,} | {r['best_val_accuracy']:.3f} | "
            f"{r['final_val_accuracy']:.3f} | {r['test_accuracy']:.3f} | {r['seconds_per_epoch']:.1f} | {r['total_seconds']:.0f} | "
            + (f"{r['total_cpu_seconds']:.0f} | " if "total_cpu_seconds" in r else "- | ")
            + " | ".join(_fmt_time(r["time_to"][t]) for t in targets)
            + " |"
        )
    for note in result.get("notes", []):
        lines += ["", f"Note: {note}"]
    if result.get("complete") is False:
        lines += ["", "**Partial results: the command was still running (or was stopped) when this was written.**"]
    ref = result.get("scratch_reference")
    lines += ["", f"Scratch reference curve: {ref['path']}" if ref else "Scratch reference curve: not available when this ran."]
    for key in ("figure_epoch", "figure_time"):
        if result.get(key):
            lines.append(f"![{key}]({result[key]})")
    return "\n".join(lines) + "\n"


def write_outputs(result: dict, artifacts_dir="artifacts", name: str = "compare", reference_history=None) -> dict:
    """Write ``metrics/transfer_<name>.json``/``.md`` and the two figures under ``artifacts_dir``.

    Args:
        result: what :func:`compare_transfer` returned.
        artifacts_dir: the output folder (``metrics/`` and ``figures/`` are created in it).
        name: the output name.
        reference_history: the scratch reference run's ``history.csv`` (default
            ``<artifacts_dir>/runs/scratch_reference/history.csv``; drawn when it exists).

    Returns:
        ``{"figure_epoch", "figure_time", "json", "markdown"}``: the paths written.

    Raises:
        DataError: the reference history lacks a column.

    Example:
        >>> paths = write_outputs(result, "runs/transfer-quick", "quick")  # doctest: +SKIP

    Taught in lesson 4.
    """
    artifacts_dir = Path(artifacts_dir)
    metrics, figures = artifacts_dir / "metrics", artifacts_dir / "figures"
    if reference_history is None:
        reference_history = artifacts_dir / "runs" / "scratch_reference" / "history.csv"
    ref = load_reference_history(reference_history)
    result = dict(result, name=name, scratch_reference=None if ref is None else {"label": ref["label"], "path": ref["path"]})
    runs = {r["label"]: r["history"] for r in result["runs"]}
    models = list(dict.fromkeys(r["model"] for r in result["runs"]))
    styles = {
        r["label"]: {"color": f"C{STRATEGY_CHOICES.index(r['strategy'])}", "ls": ("-", "-.", ":", (0, (5, 1)))[models.index(r["model"]) % 4]}
        for r in result["runs"]
    }
    targets = result["budget"]["targets"]
    paths = {}
    title = f"Transfer strategies, {result['data']['n_train']} training images"
    for x, suffix in (("epoch", "epoch"), ("time_s", "time")):
        fig = transfer_accuracy_curves(runs, x=x, reference=ref, targets=targets, title=title, styles=styles)
        paths[f"figure_{suffix}"] = save_figure(fig, figures / f"transfer_{name}_accuracy_vs_{suffix}.png")
        result[f"figure_{suffix}"] = Path("..", "figures", paths[f"figure_{suffix}"].name).as_posix()
    paths["json"] = write_json(metrics / f"transfer_{name}.json", result)
    paths["markdown"] = atomic_write_text(metrics / f"transfer_{name}.md", markdown_table(result))
    return paths


def machine() -> str:
    """The machine in a few words, for the comparison's table.

    Example:
        >>> "CPU cores" in machine()
        True

    Taught in lesson 4.
    """
    return f"{os.cpu_count()} CPU cores ({platform.machine()}), shared with other jobs"


# --------------------------------------------------------------------------------------------
# The reference transfer run, described
# --------------------------------------------------------------------------------------------


def describe_recipe(config: dict, history: list[dict]) -> str:
    """One paragraph describing a ``transfer-train`` run, from its ``config.json`` and ``history.csv``.

    Example:
        >>> describe_recipe(read_json("runs/tl/config.json"), read_csv("runs/tl/history.csv"))  # doctest: +SKIP

    Taught in lesson 4.
    """
    head = sum(1 for r in history if r.get("stage") == "head")
    tuned = sum(1 for r in history if r.get("stage") == config["strategy"])
    alpha = f" alpha {config['alpha']:g}" if config.get("alpha") else ""
    w = config.get("weights", "imagenet")
    weights = ("ImageNet weights" if w == "imagenet" else "random initial weights" if w is None else f"weights from {w}")
    text = (f"{config['backbone']}{alpha}, {weights}, images resized to {config['input_size']} px; "
            f"{config['train_size']:,} training and {config['val_size']:,} validation images. "
            f"Stage 1: {head} epochs of head training on cached pooled features (Adam {config['lr']:g}, "
            f"batch {config['head_batch_size']}).")
    if config.get("label_smoothing"):
        text += f" Both stages use label smoothing {config['label_smoothing']:g}."
    if config["strategy"] != "frozen":
        what = (f"the top {config['unfreeze']:.0%} of the weighted backbone layers unfrozen, BatchNorm frozen"
                if config["strategy"] == "partial" else "the whole backbone trainable, BatchNorm included")
        if config.get("freeze_bottom"):
            what = (f"the backbone trainable, BatchNorm included, except its bottom {config['freeze_bottom']} "
                    "weighted layers, which stay frozen")
        cut = ""
        if tuned < config["finetune_epochs"] and config.get("budget_s"):
            cut = (f" (at most {config['finetune_epochs']}: the cosine decay was planned over the epochs that fit "
                   f"the {config['budget_s'] / 60:g}-minute budget)")
        aug = " and ".join(a for a in (("random flips" if config.get("flip") else ""),
                                       (f"reflect-pad-{config['crop_pad']} crops" if config.get("crop_pad") else "")) if a)
        text += (f" Stage 2: {config['strategy']} fine-tuning ({what}) for {tuned} epochs{cut}"
                 f"{' with ' + aug if aug else ''}, Adam {config['lr']:g} head / "
                 f"{config['lr'] * config['backbone_lr_multiplier']:g} backbone, per-epoch cosine decay, "
                 f"batch {config['batch_size']}.")
    return text + " The weights of the best validation epoch are kept."


def reference_summary(run_dir, published: dict) -> dict:
    """The metrics of a finished ``transfer-train`` run, with its recipe and what was published.

    Args:
        run_dir: the completed run directory.
        published: what :func:`visiondl_keras.runs.publish_run` returned for it.

    Returns:
        ``metrics.json`` plus ``checkpoint``, ``checkpoint_bytes``, ``run_dir_files``, ``recipe``
        (:func:`describe_recipe`), ``test_split``, ``command``, ``target_test_accuracy``,
        ``floor_test_accuracy``, ``target_reached`` and ``floor_reached`` (the checkpoint alone) and, when
        the run measured test-time augmentation, ``target_reached_tta`` and ``floor_reached_tta``.

    Raises:
        ConfigError: the run has no ``metrics.json`` (it is not finished).

    Example:
        >>> summary = reference_summary("runs/tl", publish_run("runs/tl", "transfer_x"))  # doctest: +SKIP

    Taught in lesson 4.
    """
    run = RunDir(run_dir)
    if not run.is_completed():
        raise ConfigError(f"{run.path}: not a finished transfer-train run directory (no completed metrics.json).")
    config, metrics = run.read("config.json"), run.read("metrics.json")
    checkpoint = Path(published["checkpoint"])
    home = checkpoint.parent.parent.parent  # OUT/checkpoints/NAME.keras: paths as seen from OUT's folder
    return without_local_paths({
        **metrics,
        "checkpoint": checkpoint.relative_to(home).as_posix(),
        "checkpoint_bytes": int(published["bytes"]),
        "run_dir_files": Path(published["run_dir"]).relative_to(home).as_posix() + "/",
        "recipe": describe_recipe(config, run.read_history()),
        "test_split": f"{metrics['data']['n_test']:,} test images of the {data_kind(metrics['data']['source'])}",
        "command": config.get("command"),
        "target_test_accuracy": TRANSFER_TARGET,
        "floor_test_accuracy": TRANSFER_FLOOR,
        "target_reached": bool(metrics["test_accuracy"] >= TRANSFER_TARGET),
        "floor_reached": bool(metrics["test_accuracy"] >= TRANSFER_FLOOR),
        **({"target_reached_tta": bool(metrics["test_accuracy_tta"] >= TRANSFER_TARGET),
            "floor_reached_tta": bool(metrics["test_accuracy_tta"] >= TRANSFER_FLOOR)}
           if "test_accuracy_tta" in metrics else {}),
    })
