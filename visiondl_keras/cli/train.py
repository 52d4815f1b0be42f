"""Training commands: ``train``, ``evaluate``, ``publish``, ``lr-find`` and ``ablate-augment``.

Each command translates its arguments into one library call (:func:`visiondl_keras.training.scratch.train`,
:func:`visiondl_keras.runs.publish_run`, :func:`visiondl_keras.training.lr_finder.lr_find`, ...).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import time
from pathlib import Path

from visiondl_keras.errors import ConfigError
from visiondl_keras.names import STORAGE_DTYPES
from visiondl_keras.training.config import (
    ABLATION_POLICIES,
    FAST_ABLATION_BUDGET,
    FAST_ABLATION_POLICIES,
    PRESETS,
    RECIPE_PIECES,
    TrainConfig,
    preset_config,
    quick_config,
)

# The library modules that need Keras are imported inside the commands, so that --help and
# argument errors answer without loading Keras or TensorFlow.

FIELD_HELP = {
    "arch": "network: airbench (the fast recipe), resnet9 or simple",
    "width": "channels of the first stage (resnet9, simple)",
    "widths": "channels of the three conv groups of airbench, e.g. 64,256,256",
    "epochs": "training epochs",
    "batch_size": "images per step",
    "optimizer": "sgd (Nesterov, OneCycle momentum), scaled_sgd (the fast recipe's) or adamw",
    "lr": "peak learning rate (scaled_sgd: per 1024 examples, as in airbench)",
    "momentum": "SGD momentum",
    "weight_decay": "weight decay (sgd/adamw: decoupled; scaled_sgd: per 1024 examples, coupled)",
    "label_smoothing": "label smoothing of the cross-entropy",
    "schedule": "learning-rate schedule: onecycle, cosine, triangular or constant",
    "warmup_epochs": "warm-up epochs of the cosine schedule",
    "pct_start": "fraction of the steps spent rising (onecycle, triangular)",
    "policy": "augmentation: altflip+translate, baseline, randaugment, mixup, cutmix, ... or none",
    "precision": "float32, mixed_bfloat16, mixed_float16 or auto (bfloat16 on CPUs with bf16 instructions)",
    "seed": "seed of the split, the initialisation and the augmentation",
    "deterministic": "ask the backend for deterministic kernels (slower)",
    "val_size": "validation images held out of the training set",
    "limit": "train on a stratified subset of this many images",
    "test_limit": "evaluate on a stratified subset of the test set",
    "data": "CIFAR-10 source (default: $VISIONDL_DATA, ./data, the Keras cache, a download)",
    "spike_factor": "a batch loss this many times the running average counts as a spike",
    "bias_scaler": "learning-rate multiplier of BatchNorm offsets (scaled_sgd)",
    "whiten_bias_epochs": "epochs during which the whitening layer's bias trains (airbench)",
    "lookahead": "average the weights during training (airbench's lookahead)",
    "tta_level": "test-time augmentation for the reported test accuracy: 0, 1 (mirror) or 2 (+ translations)",
    "wandb": "also log to Weights & Biases (offline)",
}


def _add_config_args(p: argparse.ArgumentParser):
    """One flag per TrainConfig field (``--batch-size`` for ``batch_size``), each with a help text."""
    for f in dataclasses.fields(TrainConfig):
        if f.name == "notes":
            continue
        flag = "--" + f.name.replace("_", "-")
        default = "" if f.default is dataclasses.MISSING else f" (ResNet-9 default {f.default})"
        help_text = FIELD_HELP.get(f.name, f.name.replace("_", " ")) + default
        if f.type in ("bool", bool):
            p.add_argument(flag, action="store_true", default=None, help=help_text)
        else:
            typ = {"int": int, "float": float, "str": str, "int | None": int, "str | None": str}.get(str(f.type), str)
            p.add_argument(flag, type=typ, default=None, help=help_text)


QUICK_KEYS = ("width", "epochs", "batch_size", "limit", "val_size", "test_limit", "warmup_epochs")


def config_from_args(args) -> TrainConfig:
    """The TrainConfig that the flags describe: ``--config`` JSON, else the ``--preset`` (default ``94``),
    then ``--quick``'s small budget, then explicit flags."""
    if getattr(args, "config", None):
        path = Path(args.config)
        if not path.is_file():
            raise ConfigError(f"{path}: configuration file not found.")
        try:
            base = json.loads(path.read_text())
        except json.JSONDecodeError as exc:
            raise ConfigError(f"{path}: not valid JSON ({exc.msg} at line {exc.lineno}).") from exc
    else:
        base = preset_config(getattr(args, "preset", None) or "94").to_dict()
    if getattr(args, "quick", False):
        quick = quick_config().to_dict()
        base.update({k: quick[k] for k in QUICK_KEYS})
    for f in dataclasses.fields(TrainConfig):
        v = getattr(args, f.name, None)
        if v is not None:
            if f.name == "widths" and isinstance(v, str):
                try:
                    v = [int(w) for w in v.split(",")]
                except ValueError:
                    raise ConfigError(f"--widths takes three comma-separated integers such as 64,256,256, got {v!r}."
                                      ) from None
            base[f.name] = v
    return TrainConfig.from_dict(base)


def _cmd_train(args) -> int:
    from visiondl_keras.training.scratch import train

    config = config_from_args(args)
    if args.quick:
        print(f"quick mode: {config.limit:,} training images, {config.epochs} epochs, {config.val_size} validation "
              "images: a smoke run whose accuracy shows that training works (well above the 10% of guessing), "
              "not what the recipe reaches (see artifacts/runs/scratch_airbench94/metrics.json)")
    run_dir = args.run_dir or os.path.join("runs", time.strftime("%Y%m%d-%H%M%S"))
    metrics = train(config, run_dir, progress=not args.quiet, log=(lambda *a, **k: None) if args.quiet else print)
    print(f"{run_dir}: test accuracy {metrics['test_accuracy']:.4f} ({metrics['data']['description']}, "
          f"{metrics['data']['n_test']} test images), best epoch {metrics['best_epoch']}, "
          f"{metrics['train_time_s']:.0f}s of training")
    return 0


def _cmd_evaluate(args) -> int:
    from visiondl_keras.evaluation.evaluate import evaluate_checkpoint

    result = evaluate_checkpoint(args.checkpoint, args.data, args.limit, args.tta, progress=not args.quiet)
    temperature = result["temperature"]
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        calibrated = (f", calibrated loss {result['calibrated_loss']:.4f} (T = {temperature:.3f})"
                      if "calibrated_loss" in result else "")
        print(f"{args.checkpoint}: test accuracy {result['accuracy']:.4f}, loss {result['loss']:.4f}{calibrated} "
              f"on {result['n']} images of the {result['data']}" + (f", TTA level {args.tta}" if args.tta else ""))
        for name, acc in result["per_class_accuracy"].items():
            print(f"  {name:<11} {acc:.4f}")
    return 0


def _cmd_lr_find(args) -> int:
    from visiondl_keras.data import load_cifar10, train_val_split
    from visiondl_keras.io import write_json
    from visiondl_keras.reporting.plots import save_figure
    from visiondl_keras.training.lr_finder import lr_find
    from visiondl_keras.training.scratch import build_model

    config = config_from_args(args)
    splits = train_val_split(load_cifar10(config.data, progress=not args.quiet), config.val_size, config.seed,
                             config.limit)
    model = build_model(config, splits)
    res = lr_find(model, splits.x_train, splits.y_train, steps=args.steps, batch_size=config.batch_size)
    out = Path(args.out)
    save_figure(res.plot(), out / "lr_find.png")
    write_json(out / "lr_find.json", {"lrs": res.lrs, "losses": res.losses, "suggested_lr": res.suggested_lr,
                                      "config": config.to_dict()})
    print(f"suggested learning rate: {res.suggested_lr:.4g} (plot: {out / 'lr_find.png'})")
    return 0


def _cmd_publish(args) -> int:
    from visiondl_keras.runs import publish_run

    model = None
    if args.weights_dtype != "float32":
        from visiondl_keras.models import load_checkpoint
        from visiondl_keras.models.storage import cast_model

        model = cast_model(load_checkpoint(args.run_dir), args.weights_dtype)
    info = publish_run(args.run_dir, args.name, args.out, args.run_name, model=model)
    print(f"{info['checkpoint']} ({info['bytes'] / 1e6:.2f} MB) and run files in {info['run_dir']}")
    return 0


def register(sub):
    """Add train, evaluate, publish, lr-find and ablate-augment."""
    p = sub.add_parser("train", help="train a CNN from scratch (resumes an unfinished run directory)",
                       description="Train a CNN from scratch into a run directory. Start from a preset (default 94: "
                       "the fast recipe) or a --config JSON; flags override single settings. Rerunning the same "
                       "command resumes an interrupted run.")
    p.add_argument("--config", help="JSON file with TrainConfig keys (instead of a preset); flags override it")
    p.add_argument("--run-dir", help="run directory (default runs/<timestamp>)")
    p.add_argument("--preset", choices=sorted(PRESETS), help="a named recipe: 94 (default), fast or resnet9")
    p.add_argument("--quick", action="store_true", help="a small budget for trying things: a stratified 2,000-image "
                   "subset, 2 epochs, 500 validation and 1,000 test images (expect an accuracy well below the "
                   "full recipe's)")
    p.add_argument("--quiet", action="store_true", help="no progress bars or per-epoch lines")
    _add_config_args(p)
    p.set_defaults(func=_cmd_train)

    p = sub.add_parser("evaluate", help="test accuracy, loss and per-class accuracy of a checkpoint")
    p.add_argument("checkpoint", help=".keras file or run directory")
    p.add_argument("--data", help="CIFAR-10 source (default: see load_cifar10)")
    p.add_argument("--limit", type=int, help="stratified subset of the test set")
    p.add_argument("--tta", type=int, choices=(0, 1, 2), default=0,
                   help="test-time augmentation: 0 none, 1 mirror, 2 mirror + 1-pixel translations (default 0)")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    p.set_defaults(func=_cmd_evaluate)

    p = sub.add_parser("publish", help="copy a finished run's best checkpoint and small files into artifacts/")
    p.add_argument("run_dir", help="a completed run directory")
    p.add_argument("--name", required=True, help="checkpoint name, e.g. scratch_fast94")
    p.add_argument("--run-name", help="folder under OUT/runs/ for the run files (default: --name)")
    p.add_argument("--out", default="artifacts", help="the artifacts folder (default artifacts)")
    p.add_argument("--weights-dtype", default="float32", choices=STORAGE_DTYPES,
                   help="store the shipped weights in this dtype (bfloat16 halves the file; the output stays "
                   "float32 logits; default float32)")
    p.set_defaults(func=_cmd_publish)

    p = sub.add_parser("lr-find", help="LR range test: plot and suggested learning rate")
    p.add_argument("--config", help="JSON file with TrainConfig keys")
    p.add_argument("--preset", choices=sorted(PRESETS), help="the recipe whose network is tested (default 94)")
    p.add_argument("--quick", action="store_true", help="a 2,000-image subset")
    p.add_argument("--steps", type=int, default=60, help="steps of the sweep (default 60)")
    p.add_argument("--out", default="runs/lr-find", help="folder for lr_find.png and lr_find.json (default runs/lr-find)")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    _add_config_args(p)
    p.set_defaults(func=_cmd_lr_find)
    _register_ablation(sub)
    _register_recipe_ablation(sub)


def _cmd_ablate_augment(args) -> int:
    from visiondl_keras.training.ablation import ablate_augment, markdown_table

    if args.recipe == "fast":
        base = preset_config("fast", **FAST_ABLATION_BUDGET)
        if args.quick:
            base = TrainConfig.from_dict({**base.to_dict(), "epochs": 2, "limit": 2000, "val_size": 500,
                                          "test_limit": 1000, "batch_size": 256})
    else:
        base = quick_config() if args.quick else TrainConfig(width=16, epochs=6, limit=10000, val_size=1000,
                                                              batch_size=256, warmup_epochs=1.0)
    overrides = {k: getattr(args, k) for k in ("arch", "width", "widths", "epochs", "limit", "test_limit",
                                               "batch_size", "data") if getattr(args, k) is not None}
    base = TrainConfig.from_dict({**base.to_dict(), **overrides})
    policies = args.policies or list(FAST_ABLATION_POLICIES if args.recipe == "fast" else ABLATION_POLICIES)
    name = "augment_ablation_fast" if args.recipe == "fast" else "augment_ablation"
    runs_dir = args.runs_dir or ("runs/ablation-fast" if args.recipe == "fast" else "runs/ablation")
    report = ablate_augment(base, policies, args.seeds, runs_dir, args.out, progress=not args.quiet,
                            log=(lambda *a, **k: None) if args.quiet else print, name=name)
    print(markdown_table(report["rows"], report["data"]["description"], report["budget"]))
    return 0


def _register_ablation(sub):
    p = sub.add_parser("ablate-augment", help="train the same model under each augmentation policy (several seeds)",
                       formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--recipe", choices=("resnet9", "fast"), default="resnet9",
                   help="resnet9: a small ResNet-9 budget (10,000 images, 6 epochs; writes augment_ablation.*); "
                        "fast: the fast recipe at half width, 10 epochs, full training split (augment_ablation_fast.*)")
    p.add_argument("--policies", nargs="+", help="policies to compare (default: the recipe's list: "
                   f"{', '.join(ABLATION_POLICIES)} / {', '.join(FAST_ABLATION_POLICIES)})")
    p.add_argument("--seeds", nargs="+", type=int, default=[0, 1], help="seeds per policy")
    p.add_argument("--quick", action="store_true", help="tiny budget (2,000 images, 2 epochs)")
    p.add_argument("--arch", help="network: resnet9 or simple (default resnet9)")
    p.add_argument("--width", type=int, help="channels of the first stage")
    p.add_argument("--widths", type=lambda t: [int(v) for v in t.split(",")],
                   help="the fast recipe's three widths, e.g. 64,256,256 (default 32,128,128)")
    p.add_argument("--epochs", type=int, help="epochs per run")
    p.add_argument("--limit", type=int, help="training images (stratified subset)")
    p.add_argument("--test-limit", type=int, help="test images (stratified subset)")
    p.add_argument("--batch-size", type=int, help="images per step")
    p.add_argument("--data", help="CIFAR-10 source")
    p.add_argument("--runs-dir", help="where the runs go (resumable; default runs/ablation or runs/ablation-fast)")
    p.add_argument("--out", default="runs/ablation-augment", help="metrics/ and figures/ go below it "
                   "(default runs/ablation-augment; the shipped tables are in artifacts/)")
    p.add_argument("--quiet", action="store_true", help="no progress bars or per-epoch lines")
    p.set_defaults(func=_cmd_ablate_augment)


def _cmd_ablate_recipe(args) -> int:
    from visiondl_keras.training.ablation import ablate_recipe

    base = preset_config("fast", widths=args.widths, epochs=args.epochs, limit=args.limit,
                         test_limit=args.test_limit, precision=args.precision, data=args.data)
    report = ablate_recipe(base, args.pieces, args.seeds, args.runs_dir, args.out, progress=not args.quiet,
                           log=(lambda *a, **k: None) if args.quiet else print)
    print(f"{'removed':<18} test accuracy ({report['budget']})")
    for row in report["rows"]:
        print(f"{row['removed']:<18} {row['mean']:.4f} ± {row['std']:.4f} over {row['n']} seeds")
    return 0


def _register_recipe_ablation(sub):
    p = sub.add_parser("ablate-recipe", help="the fast recipe with one piece removed at a time (several seeds)",
                       description="Train the fast recipe on a short budget in full and without each piece "
                       "(whitening, identity init, alternating flip, lookahead, label smoothing, bias scaler, TTA).")
    p.add_argument("--pieces", nargs="+", default=list(RECIPE_PIECES), choices=list(RECIPE_PIECES),
                   help="pieces to remove, one at a time (default: all)")
    p.add_argument("--seeds", nargs="+", type=int, default=[0, 1], help="seeds per variant (default 0 1)")
    p.add_argument("--widths", type=lambda t: [int(v) for v in t.split(",")], default=[32, 128, 128],
                   help="conv-group widths (default 32,128,128: the half-width network)")
    p.add_argument("--epochs", type=int, default=4, help="epochs per run (default 4)")
    p.add_argument("--limit", type=int, help="train on a stratified subset of this many images")
    p.add_argument("--test-limit", type=int, help="evaluate on a stratified subset of the test set")
    p.add_argument("--precision", default="auto", help="float32, mixed_bfloat16 or auto (default auto)")
    p.add_argument("--data", help="CIFAR-10 source")
    p.add_argument("--runs-dir", default="runs/ablation-recipe", help="where the runs go (resumable)")
    p.add_argument("--out", default="runs/ablation-recipe", help="metrics/recipe_ablation.{json,md} go below it")
    p.add_argument("--quiet", action="store_true", help="no progress bars or per-epoch lines")
    p.set_defaults(func=_cmd_ablate_recipe)
