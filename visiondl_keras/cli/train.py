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

import numpy as np

from visiondl_keras.data.cifar10 import load_cifar10
from visiondl_keras.data.splits import stratified_subset, train_val_split
from visiondl_keras.errors import ConfigError
from visiondl_keras.evaluation.calibration import load_temperature
from visiondl_keras.evaluation.gradients import predict_logits
from visiondl_keras.evaluation.metrics import evaluate_logits
from visiondl_keras.io import write_json
from visiondl_keras.models import load_checkpoint
from visiondl_keras.models.scratch import build_scratch_model
from visiondl_keras.reporting.plots import save_figure
from visiondl_keras.runs import checkpoint_file, publish_run
from visiondl_keras.training.ablation import DEFAULT_POLICIES, ablate_augment, markdown_table
from visiondl_keras.training.config import PRESETS, TrainConfig, preset_config, quick_config
from visiondl_keras.training.lr_finder import lr_find
from visiondl_keras.training.scratch import train


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
    model = load_checkpoint(args.checkpoint)
    ds = load_cifar10(args.data, progress=not args.quiet)
    x, y = ds.x_test, ds.y_test
    if args.limit:
        idx = stratified_subset(y, args.limit)
        x, y = x[idx], y[idx]
    logits = predict_logits(model, x, 1000)
    result = evaluate_logits(logits, y, ds.class_names)
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


def register(sub):
    """Add train, evaluate, publish, lr-find and ablate-augment."""
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



    _register_ablation(sub)


def _cmd_ablate_augment(args) -> int:
    base = quick_config() if args.quick else TrainConfig(width=16, epochs=6, limit=10000, val_size=1000,
                                                          batch_size=256, warmup_epochs=1.0)
    overrides = {k: getattr(args, k) for k in ("arch", "width", "epochs", "limit", "test_limit", "batch_size", "data")
                 if getattr(args, k) is not None}
    base = TrainConfig.from_dict({**base.to_dict(), **overrides})
    report = ablate_augment(base, args.policies, args.seeds, args.runs_dir, args.out, progress=not args.quiet,
                            log=(lambda *a, **k: None) if args.quiet else print)
    print(markdown_table(report["rows"], report["data"]["description"], report["budget"]))
    return 0


def _register_ablation(sub):
    p = sub.add_parser("ablate-augment", help="train the same model under each augmentation policy (several seeds)",
                       formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--policies", nargs="+", default=list(DEFAULT_POLICIES), help="policies to compare")
    p.add_argument("--seeds", nargs="+", type=int, default=[0, 1], help="seeds per policy")
    p.add_argument("--quick", action="store_true", help="tiny budget (2,000 images, 2 epochs, width 16)")
    p.add_argument("--arch")
    p.add_argument("--width", type=int)
    p.add_argument("--epochs", type=int)
    p.add_argument("--limit", type=int, help="training images (stratified subset)")
    p.add_argument("--test-limit", type=int)
    p.add_argument("--batch-size", type=int)
    p.add_argument("--data", help="CIFAR-10 source")
    p.add_argument("--runs-dir", default="runs/ablation")
    p.add_argument("--out", default="artifacts", help="metrics/ and figures/ go below it")
    p.add_argument("--quiet", action="store_true")
    p.set_defaults(func=_cmd_ablate_augment)
