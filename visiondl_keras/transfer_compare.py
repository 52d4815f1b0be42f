"""``python -m visiondl_keras transfer-compare``: frozen vs partial vs full fine-tuning, on one budget.

Every strategy of every backbone trains on the same stratified subset, for the same number of
epochs, with the same batch size and head learning rate. For each run the command records the
validation accuracy after every epoch together with the wall-clock seconds since the run started,
the time (and epoch) at which it first reached each target accuracy, the trainable parameters and
the final test accuracy (on a stratified test subset). Strategies:

* ``frozen``: the head trains on cached backbone features (:mod:`visiondl_keras.features`); the
  clock includes the one-off feature extraction (its original duration on a cache hit);
* ``partial`` / ``full``: end-to-end, the backbone learning rate scaled by ``--backbone-lr-multiplier``;
* ``two_stage``: ``--warmup-epochs`` of head training on cached features, then ``partial`` for the
  remaining epochs (same total epoch budget).

Outputs (``--artifacts``, default ``artifacts/``): ``metrics/transfer_<name>.json`` and ``.md``
(the table), ``figures/transfer_<name>_accuracy_vs_epoch.png`` and ``..._vs_time.png``; the scratch
reference run (``runs/scratch_reference/history.csv``: epoch, val_accuracy, time_s) is drawn on the
same axes when it exists.

Example:
    python -m visiondl_keras transfer-compare --quick
    python -m visiondl_keras transfer-compare --backbones mobilenet_v2:0.35,mobilenet:0.25 --limit 10000 --epochs 5
"""

from __future__ import annotations

import logging
import shlex
import time
from pathlib import Path

import numpy as np

from .artifacts import atomic_write_text, read_csv, read_json, write_json
from .errors import ConfigError, DataError
from .gradients import predict_logits

STRATEGY_CHOICES = ("frozen", "partial", "full", "two_stage")
QUICK = {"limit": 500, "test_limit": 500, "epochs": 2, "warmup_epochs": 1}


def parse_backbones(text: str) -> list[tuple[str, float | None]]:
    """``"mobilenet_v2:0.35,mobilenet:0.25,resnet50"`` -> ``[("mobilenet_v2", 0.35), ...]``."""
    from .models.transfer import BACKBONES

    out = []
    for item in (t.strip() for t in text.split(",") if t.strip()):
        name, _, alpha = item.partition(":")
        if name not in BACKBONES:
            raise ConfigError(f"unknown backbone {name!r} in --backbones; choose from {', '.join(BACKBONES)}.")
        try:
            out.append((name, float(alpha) if alpha else None))
        except ValueError as exc:
            raise ConfigError(f"bad alpha {alpha!r} in --backbones item {item!r}; write name:alpha, e.g. mobilenet_v2:0.35.") from exc
    if not out:
        raise ConfigError("--backbones is empty; name at least one, e.g. mobilenet_v2:0.35.")
    return out


def time_to_targets(rows: list[dict], targets) -> dict:
    """First epoch and wall-clock seconds at which ``val_accuracy`` reached each target (None if never)."""
    out = {}
    for t in targets:
        hit = next((r for r in rows if r["val_accuracy"] >= t), None)
        out[f"{t:g}"] = None if hit is None else {"epoch": int(hit["epoch"]), "time_s": round(float(hit["time_s"]), 2)}
    return out


def _features(model, splits, cache, progress):
    from .features import extract_features

    f_train, i_train = extract_features(model, splits.x_train, cache=cache, progress=progress, return_info=True)
    f_val, i_val = extract_features(model, splits.x_val, cache=cache, progress=progress, return_info=True)
    seconds = (i_train["seconds"] + i_val["seconds"], i_train["cpu_seconds"] + i_val["cpu_seconds"])
    return f_train, f_val, seconds, i_train["cache_hit"] and i_val["cache_hit"]


def run_strategy(splits, backbone: str, alpha, strategy: str, cfg: dict, progress: bool = True) -> dict:
    """Train one backbone with one strategy under the budget ``cfg``; return its result row."""
    import keras

    from .models.transfer import (
        EpochClock,
        build_transfer_model,
        fit_transfer,
        head_model,
        trainable_params,
        two_stage_fine_tune,
    )

    keras.utils.set_random_seed(cfg["seed"])
    build_as = "frozen" if strategy == "two_stage" else strategy
    model = build_transfer_model(
        backbone, build_as, input_size=cfg["input_size"], alpha=alpha, weights=cfg["weights"],
        dropout=cfg["dropout"], unfreeze=cfg["unfreeze"],
    )
    verbose = "auto" if progress else 0
    row = {"backbone": backbone, "alpha": alpha, "strategy": strategy, "model": model.name}
    (feature_seconds, feature_cpu), cache_hit = (0.0, 0.0), None
    if strategy in ("frozen", "two_stage"):
        f_train, f_val, (feature_seconds, feature_cpu), cache_hit = _features(model, splits, cfg["cache"], progress)
    start, start_cpu = time.perf_counter(), time.process_time()
    if strategy == "frozen":
        clock = EpochClock(start - feature_seconds, start_cpu=start_cpu - feature_cpu)
        fit_transfer(head_model(model), f_train, splits.y_train, (f_val, splits.y_val), cfg["epochs"],
                     cfg["batch_size"], cfg["lr"], seed=cfg["seed"], callbacks=[clock], verbose=verbose)
        history = clock.rows
    elif strategy == "two_stage":
        warm = min(cfg["warmup_epochs"], cfg["epochs"])
        history = two_stage_fine_tune(
            model, splits.x_train, splits.y_train, (splits.x_val, splits.y_val), warm, cfg["epochs"] - warm,
            cfg["batch_size"], cfg["lr"], cfg["lr"], cfg["backbone_lr_multiplier"], cfg["unfreeze"],
            warmup_features=(f_train, f_val), seed=cfg["seed"], verbose=verbose,
        )
        for r in history:
            r["time_s"] += feature_seconds
            r["cpu_s"] += feature_cpu
    else:
        clock = EpochClock(start, start_cpu=start_cpu)
        fit_transfer(model, splits.x_train, splits.y_train, (splits.x_val, splits.y_val), cfg["epochs"],
                     cfg["batch_size"], cfg["lr"], cfg["backbone_lr_multiplier"], seed=cfg["seed"],
                     callbacks=[clock], verbose=verbose)
        history = clock.rows
    trainable = trainable_params(model)  # for two_stage: the fine-tuning stage's
    logits = predict_logits(model, splits.x_test, 256)
    test_acc = float(np.mean(np.argmax(logits, axis=1) == splits.y_test))
    accs = [r["val_accuracy"] for r in history]
    total = history[-1]["time_s"] if history else 0.0
    row.update(
        {
            "label": f"{model.name} {strategy}",
            "params": int(model.count_params()),
            "trainable_params": int(trainable),
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
    )
    return row


def compare_transfer(splits, backbones, strategies=STRATEGY_CHOICES, progress: bool = True, on_run=None, **budget) -> dict:
    """Run every strategy of every backbone on ``splits`` under one budget.

    Args:
        splits: :class:`visiondl_keras.data.Splits`.
        backbones: ``[(name, alpha), ...]``.
        strategies: a subset of ``("frozen", "partial", "full", "two_stage")``.
        progress: Keras progress bars.
        on_run: optional ``callable(result_so_far)`` called after every run (e.g. to save partial results).
        **budget: ``input_size`` (96), ``epochs`` (5), ``batch_size`` (64), ``lr`` (1e-3),
            ``backbone_lr_multiplier`` (0.1), ``unfreeze`` (0.25), ``warmup_epochs`` (1),
            ``dropout`` (0.2), ``weights`` ("imagenet"), ``targets`` ((0.6, 0.7, 0.8)), ``seed`` (0),
            ``cache`` (True).

    Returns:
        A dict with the budget, the data description and one row per run (see :func:`run_strategy`).
    """
    cfg = {
        "input_size": 96, "epochs": 5, "batch_size": 64, "lr": 1e-3, "backbone_lr_multiplier": 0.1,
        "unfreeze": 0.25, "warmup_epochs": 1, "dropout": 0.2, "weights": "imagenet",
        "targets": (0.6, 0.7, 0.8), "seed": 0, "cache": True,
    }
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
        "data": {
            "source": splits.source,
            "fingerprint": splits.fingerprint,
            "jpeg_mirror": "jpeg" in splits.source.lower() or "jpg" in splits.source.lower(),
            "train_images": int(len(splits.y_train)),
            "val_images": int(len(splits.y_val)),
            "test_images": int(len(splits.y_test)),
            "seed": splits.seed,
        },
        "runs": runs,
    }
    for backbone, alpha in backbones:
        for strategy in strategies:
            logging.getLogger(__name__).info("transfer-compare: %s (alpha %s) %s", backbone, alpha, strategy)
            runs.append(run_strategy(splits, backbone, alpha, strategy, cfg, progress))
            if on_run is not None:
                on_run(result)
    return result


def load_reference_history(path) -> dict | None:
    """The scratch reference run's curve (``history.csv`` with epoch, val_accuracy, time_s), or None."""
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
    """The comparison as a markdown document (budget line, table, notes)."""
    b, d = result["budget"], result["data"]
    targets = [f"{t:g}" for t in b["targets"]]
    data_kind = "JPEG q75 mirror of CIFAR-10" if d["jpeg_mirror"] else "CIFAR-10"
    lines = [
        f"# Transfer learning: strategies compared ({result.get('name', '')})",
        "",
        f"Data: {data_kind}, stratified subset of {d['train_images']} training images, {d['val_images']} validation "
        f"images (from the training set), {d['test_images']} test images (fingerprint {d['fingerprint'][:12]}).",
        f"Budget per run: {b['epochs']} epochs, batch {b['batch_size']}, Adam lr {b['lr']:g} "
        f"(backbone x{b['backbone_lr_multiplier']:g} for partial/full/two-stage), input {b['input_size']} px, "
        f"partial unfreezes {b['unfreeze']} of the weighted backbone layers (BatchNorm frozen), "
        f"two-stage = {b['warmup_epochs']} warm-up epoch(s) on cached features + partial, no augmentation, seed {b['seed']}.",
        f"Wall-clock (and this process's CPU seconds, all threads) include validation and, for frozen/two-stage, "
        f"the one-off feature extraction. "
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
    """Write ``metrics/transfer_<name>.json``/``.md`` and the two figures; return their paths."""
    from .plots import save_figure, transfer_accuracy_curves

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
    title = f"Transfer strategies, {result['data']['train_images']} training images"
    for x, suffix in (("epoch", "epoch"), ("time_s", "time")):
        fig = transfer_accuracy_curves(runs, x=x, reference=ref, targets=targets, title=title, styles=styles)
        paths[f"figure_{suffix}"] = save_figure(fig, figures / f"transfer_{name}_accuracy_vs_{suffix}.png")
        result[f"figure_{suffix}"] = Path("..", "figures", paths[f"figure_{suffix}"].name).as_posix()
    paths["json"] = write_json(metrics / f"transfer_{name}.json", result)
    paths["markdown"] = atomic_write_text(metrics / f"transfer_{name}.md", markdown_table(result))
    return paths


def _machine() -> str:
    import os
    import platform

    return f"{os.cpu_count()} CPU cores ({platform.machine()}), shared with other jobs"


def _command(args) -> int:
    from .data import load_cifar10, train_val_split
    from .reproducibility import environment_info, set_seed

    if not args.quiet:
        logging.basicConfig(level=logging.INFO, format="%(message)s")
    if args.quick:
        for key, value in QUICK.items():
            if getattr(args, key) is None:
                setattr(args, key, value)
    epochs = args.epochs if args.epochs is not None else 5
    warmup = args.warmup_epochs if args.warmup_epochs is not None else 1
    try:
        targets = tuple(float(t) for t in args.targets.split(",") if t.strip())
    except ValueError as exc:
        raise ConfigError(f"--targets must be comma-separated accuracies, e.g. 0.6,0.7,0.8; got {args.targets!r}.") from exc
    strategies = tuple(s.strip() for s in args.strategies.split(",") if s.strip())
    backbones = parse_backbones(args.backbones)
    try:
        unfreeze = float(args.unfreeze) if "." in args.unfreeze else int(args.unfreeze)
    except ValueError as exc:
        raise ConfigError(f"--unfreeze must be a layer count (13) or a fraction (0.25), got {args.unfreeze!r}.") from exc
    set_seed(args.seed)
    ds = load_cifar10(args.data, progress=not args.quiet)
    splits = train_val_split(ds, val_size=args.val_size, seed=args.seed, limit=args.limit, test_limit=args.test_limit)
    start = time.perf_counter()
    name = args.name or ("quick" if args.quick else "compare")

    def finish(result, complete=False):
        result["arguments"] = {k: v for k, v in vars(args).items() if k != "func"}
        result["complete"] = complete
        result["wall_clock_seconds"] = round(time.perf_counter() - start, 1)
        result["machine"] = _machine()
        result["environment"] = environment_info()
        return write_outputs(result, args.artifacts, name, args.scratch_history)

    result = compare_transfer(
        splits, backbones, strategies, progress=not args.quiet, input_size=args.input_size, epochs=epochs,
        batch_size=args.batch_size, lr=args.lr, backbone_lr_multiplier=args.backbone_lr_multiplier, unfreeze=unfreeze,
        warmup_epochs=warmup, weights=None if args.weights == "none" else args.weights, targets=targets,
        seed=args.seed, cache=not args.no_cache, on_run=finish,
    )
    paths = finish(result, complete=True)
    if not args.quiet:
        print(markdown_table(read_json(paths["json"])))
    for key, path in paths.items():
        print(f"{key}: {path}")
    return 0


def train_reference(splits, run_dir, backbone="mobilenet_v2", alpha=None, input_size=96, strategy="full",
                    warmup_epochs=3, max_epochs=12, budget_minutes=None, batch_size=64, lr=1e-3,
                    backbone_lr_multiplier=0.2, unfreeze=0.25, flip=True, crop_pad=4, seed=0, progress=True,
                    command: str | None = None, weights="imagenet") -> dict:
    """The reference transfer recipe: cached-feature head warm-up, then fine-tuning with augmentation.

    Stage 1: ``warmup_epochs`` of head training on cached features of the (unaugmented) training
    images (with ``strategy="frozen"`` that is all, with a cosine decay over those epochs). Stage 2: ``strategy`` (``full`` or ``partial``) end-to-end with random flips and pad-crops,
    discriminative learning rates and a per-epoch cosine decay over ``max_epochs`` epochs, or fewer
    when ``budget_minutes`` (for stage 2) runs out. The weights with the best validation accuracy are
    kept and saved as ``best.keras`` (uncompiled, no optimizer state).

    Writes ``config.json``, ``history.csv``, ``metrics.json``, ``environment.json`` and ``best.keras``
    into ``run_dir``; returns the metrics.
    """
    import keras

    from .artifacts import write_csv
    from .features import extract_features
    from .models.transfer import (
        CosineToBudget,
        EpochClock,
        apply_strategy,
        build_transfer_model,
        describe_transfer_model,
        fit_transfer,
        head_model,
    )
    from .reproducibility import environment_info

    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    config = dict(backbone=backbone, alpha=alpha, input_size=input_size, strategy=strategy, warmup_epochs=warmup_epochs,
                  max_epochs=max_epochs, budget_minutes=budget_minutes, batch_size=batch_size, lr=lr,
                  backbone_lr_multiplier=backbone_lr_multiplier, unfreeze=unfreeze, flip=flip, crop_pad=crop_pad,
                  seed=seed, optimizer="adam", val_size=len(splits.y_val), train_size=len(splits.y_train), command=command,
                  weights=weights if weights is None or isinstance(weights, str) else str(weights))
    if strategy == "frozen":  # no stage 2: its settings do not apply
        config.update(max_epochs=0, budget_minutes=None, backbone_lr_multiplier=None, unfreeze=None, flip=False, crop_pad=0)
    write_json(run_dir / "config.json", config)
    write_json(run_dir / "environment.json", {**environment_info(), "dataset_fingerprint": splits.fingerprint})
    keras.utils.set_random_seed(seed)
    build = dict(backbone=backbone, input_size=input_size, alpha=alpha, dropout=0.2, unfreeze=unfreeze)
    model = build_transfer_model(strategy="frozen", weights=weights, **build)
    verbose = "auto" if progress else 0
    start = time.perf_counter()
    f_train = extract_features(model, splits.x_train, progress=progress)
    f_val = extract_features(model, splits.x_val, progress=progress)
    weights_path = run_dir / "best.weights.h5"
    best = {"val_accuracy": -1.0}

    class _KeepBest(keras.callbacks.Callback):  # saves the whole transfer model, whichever sub-model trains
        def __init__(self, offset):
            super().__init__()
            self.offset = offset

        def on_epoch_end(self, epoch, logs=None):
            if logs and logs.get("val_accuracy", -1) > best["val_accuracy"]:
                best.update(val_accuracy=float(logs["val_accuracy"]), epoch=self.offset + epoch + 1)
                model.save_weights(weights_path)

    clock = EpochClock(start, 0, "head")
    head_callbacks = [clock, _KeepBest(0)] + ([CosineToBudget(lr, warmup_epochs)] if strategy == "frozen" else [])
    fit_transfer(head_model(model), f_train, splits.y_train, (f_val, splits.y_val), warmup_epochs, 256, lr,
                 seed=seed, callbacks=head_callbacks, verbose=verbose)
    history = list(clock.rows)
    if strategy != "frozen":
        apply_strategy(model, strategy, unfreeze=unfreeze)
        clock = EpochClock(start, warmup_epochs, strategy)
        schedule = CosineToBudget(lr, max_epochs, budget_minutes * 60 if budget_minutes else None)
        fit_transfer(model, splits.x_train, splits.y_train, (splits.x_val, splits.y_val), max_epochs, batch_size, lr,
                     backbone_lr_multiplier, flip=flip, crop_pad=crop_pad, seed=seed + 1,
                     callbacks=[schedule, clock, _KeepBest(warmup_epochs)], verbose=verbose)
        history += clock.rows
    train_time = time.perf_counter() - start
    write_csv(run_dir / "history.csv", history)

    final = build_transfer_model(strategy="frozen", weights=None, **build)  # clean, uncompiled copy
    final.load_weights(weights_path)
    final.save(run_dir / "best.keras")
    eval_start = time.perf_counter()
    logits = predict_logits(final, splits.x_test, 256)
    pred = np.argmax(logits, axis=1)
    info = describe_transfer_model(model)
    metrics = {
        "test_accuracy": float(np.mean(pred == splits.y_test)),
        "per_class_accuracy": {name: float(np.mean(pred[splits.y_test == i] == i)) for i, name in enumerate(splits.class_names)},
        "best_epoch": best.get("epoch"),
        "best_val_accuracy": best["val_accuracy"],
        "train_time_s": round(train_time, 1),
        "test_eval_time_s": round(time.perf_counter() - eval_start, 1),
        "epochs_run": len(history),
        "input_size": input_size,
        "model": info["name"],
        "params": info["params"],
        "trainable_params_finetune": info["trainable_params"],
        "checkpoint_bytes": (run_dir / "best.keras").stat().st_size,
        "data": {
            "source": splits.source,
            "fingerprint": splits.fingerprint,
            "is_jpeg_mirror": "jpeg" in splits.source.lower(),
            "train_images": int(len(splits.y_train)),
            "val_images": int(len(splits.y_val)),
            "test_images": int(len(splits.y_test)),
        },
    }
    write_json(run_dir / "metrics.json", metrics)
    return metrics


def _train_command(args) -> int:
    from .data import load_cifar10, train_val_split
    from .reproducibility import set_seed

    if not args.quiet:
        logging.basicConfig(level=logging.INFO, format="%(message)s")
    if args.strategy not in ("frozen", "partial", "full"):
        raise ConfigError(f"--strategy must be frozen, partial or full, got {args.strategy!r}.")
    set_seed(args.seed)
    ds = load_cifar10(args.data, progress=not args.quiet)
    splits = train_val_split(ds, val_size=args.val_size, seed=args.seed, limit=args.limit, test_limit=args.test_limit)
    metrics = train_reference(
        splits, args.run_dir, args.backbone, args.alpha, args.input_size, args.strategy, args.warmup_epochs,
        args.epochs, args.budget_minutes, args.batch_size, args.lr, args.backbone_lr_multiplier, args.unfreeze,
        not args.no_flip, args.crop_pad, args.seed, progress=not args.quiet,
        weights=None if args.weights == "none" else args.weights,
        command="python -m visiondl_keras " + " ".join(shlex.quote(a) for a in (args.argv or [])),
    )
    print(f"test accuracy {metrics['test_accuracy']:.4f} ({metrics['data']['test_images']} test images), "
          f"best val {metrics['best_val_accuracy']:.4f}, {metrics['train_time_s'] / 60:.1f} min; run: {args.run_dir}")
    if args.publish:
        published = publish_transfer_run(args.run_dir, args.publish, artifacts=args.artifacts)
        print(f"published {published['checkpoint']} ({published['checkpoint_bytes'] / 1e6:.1f} MB) and "
              f"{args.artifacts}/metrics/transfer_reference.json")
    return 0


TRANSFER_TARGET = 0.92  # issue target for the reference transfer model on the mirror's test split


def describe_recipe(config: dict, history: list[dict]) -> str:
    """One paragraph describing a ``transfer-train`` run, from its ``config.json`` and ``history.csv``."""
    head = sum(1 for r in history if r.get("stage") == "head")
    tuned = sum(1 for r in history if r.get("stage") == config["strategy"])
    alpha = f" alpha {config['alpha']:g}" if config.get("alpha") else ""
    w = config.get("weights", "imagenet")
    weights = ("ImageNet weights" if w == "imagenet" else "random initial weights" if w is None else f"weights from {w}")
    text = (f"{config['backbone']}{alpha}, {weights}, images resized to {config['input_size']} px; "
            f"{config['train_size']:,} training and {config['val_size']:,} validation images. "
            f"Stage 1: {head} epochs of head training on cached pooled features (Adam {config['lr']:g}, batch 256).")
    if config["strategy"] != "frozen":
        what = (f"the top {config['unfreeze']:.0%} of the weighted backbone layers unfrozen, BatchNorm frozen"
                if config["strategy"] == "partial" else "the whole backbone trainable, BatchNorm included")
        cut = ""
        if tuned < config["max_epochs"] and config.get("budget_minutes"):
            cut = f" (of {config['max_epochs']} planned: the {config['budget_minutes']:g}-minute budget ran out)"
        aug = " and ".join(a for a in (("random flips" if config.get("flip") else ""),
                                       (f"reflect-pad-{config['crop_pad']} crops" if config.get("crop_pad") else "")) if a)
        text += (f" Stage 2: {config['strategy']} fine-tuning ({what}) for {tuned} epochs{cut}"
                 f"{' with ' + aug if aug else ''}, Adam {config['lr']:g} head / "
                 f"{config['lr'] * config['backbone_lr_multiplier']:g} backbone, per-epoch cosine decay, "
                 f"batch {config['batch_size']}.")
    return text + " The weights of the best validation epoch are kept."


def publish_transfer_run(run_dir, checkpoint_name: str, run_name: str = "transfer_reference",
                         artifacts: str | Path = "artifacts") -> dict:
    """Ship a finished ``transfer-train`` run as the reference transfer model.

    Copies ``best.keras`` to ``ARTIFACTS/checkpoints/CHECKPOINT_NAME.keras``, the run's small files to
    ``ARTIFACTS/runs/RUN_NAME/`` and writes ``ARTIFACTS/metrics/RUN_NAME.json``: the run's metrics plus
    its recipe (generated from ``config.json`` and ``history.csv``), the command that trained it and
    the target.

    Returns:
        The metrics dict that was written.
    """
    import shutil

    run_dir, art = Path(run_dir), Path(artifacts)
    for f in ("best.keras", "config.json", "history.csv", "metrics.json"):
        if not (run_dir / f).is_file():
            raise ConfigError(f"{run_dir}: no {f}; is it a finished transfer-train run directory?")
    config, metrics, history = read_json(run_dir / "config.json"), read_json(run_dir / "metrics.json"), read_csv(run_dir / "history.csv")
    ckpt = art / "checkpoints" / f"{checkpoint_name}.keras"
    ckpt.parent.mkdir(parents=True, exist_ok=True)
    shutil.copy2(run_dir / "best.keras", ckpt)
    dest = art / "runs" / run_name
    dest.mkdir(parents=True, exist_ok=True)
    for f in ("config.json", "history.csv", "metrics.json", "environment.json"):
        if (run_dir / f).is_file():
            shutil.copy2(run_dir / f, dest / f)
    result = dict(metrics)
    result.update(
        checkpoint=ckpt.as_posix(),
        checkpoint_bytes=ckpt.stat().st_size,
        run_dir_files=dest.as_posix() + "/",
        recipe=describe_recipe(config, history),
        test_split=(f"{metrics['data']['test_images']:,} test images of the "
                    + ("JPEG q75 mirror of CIFAR-10" if metrics["data"].get("is_jpeg_mirror") else "CIFAR-10")),
        command=config.get("command"),
        target_test_accuracy=TRANSFER_TARGET,
        target_reached=bool(metrics["test_accuracy"] >= TRANSFER_TARGET),
    )
    write_json(art / "metrics" / f"{run_name}.json", result)
    return result


def register_commands(subparsers) -> None:
    """Add ``transfer-compare`` to the command line."""
    p = subparsers.add_parser(
        "transfer-compare",
        help="frozen vs partial vs full fine-tuning of pretrained backbones, on one budget",
        description=__doc__.split("\n\n")[0],
    )
    p.add_argument("--data", help="CIFAR-10 source (default: see load_cifar10)")
    p.add_argument("--backbones", default="mobilenet_v2:0.35,mobilenet:0.25", help="name[:alpha],... (default %(default)s)")
    p.add_argument("--strategies", default=",".join(STRATEGY_CHOICES), help="comma-separated (default %(default)s)")
    p.add_argument("--weights", default="imagenet", help="imagenet, none, or a weights file (default %(default)s)")
    p.add_argument("--input-size", type=int, default=96, help="pixels the 32 px images are resized to (default %(default)s)")
    p.add_argument("--limit", type=int, default=None, help="stratified training subset (default: all; --quick: 500)")
    p.add_argument("--val-size", type=int, default=5000, help="validation images before --limit scaling (default %(default)s)")
    p.add_argument("--test-limit", type=int, default=None, help="stratified test subset (default: all; --quick: 500)")
    p.add_argument("--epochs", type=int, default=None, help="epochs per run (default 5; --quick: 2)")
    p.add_argument("--warmup-epochs", type=int, default=None, help="two-stage warm-up epochs (default 1)")
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--lr", type=float, default=1e-3, help="head learning rate (Adam)")
    p.add_argument("--backbone-lr-multiplier", type=float, default=0.1, help="backbone lr = lr x this (default %(default)s)")
    p.add_argument("--unfreeze", default="0.25", help="partial: layer count (int) or fraction (float) (default %(default)s)")
    p.add_argument("--targets", default="0.6,0.7,0.8", help="accuracies for time-to-accuracy (default %(default)s)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--name", help="output name: transfer_<name>.json (default compare; --quick: quick)")
    p.add_argument("--artifacts", default="artifacts", help="folder with metrics/ and figures/ (default %(default)s)")
    p.add_argument("--scratch-history", default=None, help="history.csv of the scratch reference run "
                   "(default <artifacts>/runs/scratch_reference/history.csv)")
    p.add_argument("--no-cache", action="store_true", help="recompute frozen features instead of using the cache")
    p.add_argument("--quick", action="store_true", help="500-image subset, 2 epochs (for tests and live demos)")
    p.add_argument("--quiet", action="store_true", help="no progress bars or logs")
    p.set_defaults(func=_command)

    p = subparsers.add_parser(
        "transfer-train",
        help="the reference transfer recipe: cached-feature warm-up, then fine-tuning (a run directory)",
        description=train_reference.__doc__.split("\n\n")[0],
    )
    p.add_argument("--data", help="CIFAR-10 source (default: see load_cifar10)")
    p.add_argument("--run-dir", required=True, help="output run directory")
    p.add_argument("--backbone", default="mobilenet_v2")
    p.add_argument("--alpha", type=float, default=None)
    p.add_argument("--input-size", type=int, default=96)
    p.add_argument("--strategy", default="full", help="frozen (head on cached features only), partial or full "
                   "(default %(default)s)")
    p.add_argument("--warmup-epochs", type=int, default=3, help="head epochs on cached features (stage 1)")
    p.add_argument("--epochs", type=int, default=12, help="maximum fine-tuning epochs (cosine decay over them)")
    p.add_argument("--budget-minutes", type=float, default=None, help="fine-tuning time budget; fewer epochs if short")
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--backbone-lr-multiplier", type=float, default=0.2)
    p.add_argument("--unfreeze", type=float, default=0.25, help="partial: fraction of weighted layers")
    p.add_argument("--crop-pad", type=int, default=4)
    p.add_argument("--no-flip", action="store_true")
    p.add_argument("--limit", type=int, default=None)
    p.add_argument("--val-size", type=int, default=5000)
    p.add_argument("--test-limit", type=int, default=None)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--weights", default="imagenet", help="imagenet, none, or a weights file (default %(default)s)")
    p.add_argument("--publish", metavar="CHECKPOINT_NAME", default=None,
                   help="then ship the run: ARTIFACTS/checkpoints/CHECKPOINT_NAME.keras, ARTIFACTS/runs/transfer_reference/ "
                        "and ARTIFACTS/metrics/transfer_reference.json")
    p.add_argument("--artifacts", default="artifacts", help="where --publish writes (default %(default)s)")
    p.add_argument("--quiet", action="store_true")
    p.set_defaults(func=_train_command)
