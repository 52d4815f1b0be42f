"""Transfer-learning commands: ``transfer-compare`` and ``transfer-train``.

``transfer-compare`` translates its arguments into :func:`visiondl_keras.training.transfer_compare.compare_transfer`
and :func:`~visiondl_keras.training.transfer_compare.write_outputs`; ``transfer-train`` into
:func:`visiondl_keras.training.transfer.train_reference` and, with ``--publish``,
:func:`visiondl_keras.runs.publish_run`. Both write only under the folders their flags name
(by default under ``runs/``). Taught in lesson 4.

Example:
    python -m visiondl_keras transfer-compare --quick
    python -m visiondl_keras transfer-compare --backbones mobilenet_v2:0.35,mobilenet:0.25 --limit 10000 --epochs 5
    python -m visiondl_keras transfer-train --run-dir runs/tl --strategy partial --budget-minutes 20
"""

from __future__ import annotations

import argparse
import logging
import shlex
import time
from pathlib import Path

from visiondl_keras.cli.common import data_parent, float_list, name_list, quiet_parent
from visiondl_keras.errors import ConfigError
from visiondl_keras.names import TRANSFER_QUICK as QUICK
from visiondl_keras.names import TRANSFER_STRATEGIES as STRATEGY_CHOICES

# The library modules that need Keras are imported inside the commands (fast --help).

SCRATCH_HISTORY = "artifacts/runs/scratch_airbench94/history.csv"


def _unfreeze(text: str) -> int | float:
    try:
        return float(text) if "." in text else int(text)
    except ValueError as exc:
        raise ConfigError(f"--unfreeze must be a layer count (13) or a fraction (0.25), got {text!r}.") from exc


def _weights(text: str):
    return None if text == "none" else text


def _compare(args) -> int:
    """Run ``transfer-compare``; returns the exit status."""
    from visiondl_keras.data import load_cifar10, train_val_split
    from visiondl_keras.io import read_json
    from visiondl_keras.reproducibility import environment_info, set_seed
    from visiondl_keras.training.transfer_compare import (
        compare_transfer,
        machine,
        markdown_table,
        parse_backbones,
        write_outputs,
    )

    if not args.quiet:
        logging.basicConfig(level=logging.INFO, format="%(message)s")
    if args.quick:
        for key, value in QUICK.items():
            if getattr(args, key) is None:
                setattr(args, key, value)
    strategies = tuple(args.strategies)
    backbones = parse_backbones(args.backbones)
    unfreeze = _unfreeze(args.unfreeze)
    name = args.name or ("quick" if args.quick else "compare")
    out = Path(args.artifacts or f"runs/transfer-{name}")
    set_seed(args.seed)
    ds = load_cifar10(args.data, progress=not args.quiet)
    splits = train_val_split(ds, val_size=args.val_size, seed=args.seed, limit=args.limit, test_limit=args.test_limit)
    start = time.perf_counter()

    def finish(result, complete=False):
        result["arguments"] = {k: v for k, v in vars(args).items() if k != "func"}
        result["complete"] = complete
        result["wall_clock_seconds"] = round(time.perf_counter() - start, 1)
        result["machine"] = machine()
        result["environment"] = environment_info()
        return write_outputs(result, out, name, args.scratch_history)

    result = compare_transfer(
        splits, backbones, strategies, progress=not args.quiet, on_run=finish,
        run_root=args.run_dir or f"runs/transfer-{name}/train", input_size=args.input_size,
        epochs=args.epochs if args.epochs is not None else 5, batch_size=args.batch_size, lr=args.lr,
        backbone_lr_multiplier=args.backbone_lr_multiplier, unfreeze=unfreeze,
        warmup_epochs=args.warmup_epochs if args.warmup_epochs is not None else 1, weights=_weights(args.weights),
        targets=tuple(args.targets), seed=args.seed, cache=not args.no_cache,
    )
    paths = finish(result, complete=True)
    if not args.quiet:
        print(markdown_table(read_json(paths["json"])))
    for key, path in paths.items():
        print(f"{key}: {path}")
    return 0


def _train(args) -> int:
    """Run ``transfer-train`` (and ``--publish``); returns the exit status."""
    from visiondl_keras.data import load_cifar10, train_val_split
    from visiondl_keras.io import write_json
    from visiondl_keras.reproducibility import set_seed
    from visiondl_keras.runs import publish_run
    from visiondl_keras.training.transfer import train_reference
    from visiondl_keras.training.transfer_compare import reference_summary

    if not args.quiet:
        logging.basicConfig(level=logging.INFO, format="%(message)s")
    set_seed(args.seed)
    ds = load_cifar10(args.data, progress=not args.quiet)
    splits = train_val_split(ds, val_size=args.val_size, seed=args.seed, limit=args.limit, test_limit=args.test_limit)
    metrics = train_reference(
        splits, args.run_dir, args.backbone, args.alpha, args.input_size, args.strategy, args.warmup_epochs,
        args.epochs, args.budget_minutes, args.batch_size, args.lr, args.backbone_lr_multiplier, args.unfreeze,
        not args.no_flip, args.crop_pad, args.seed, progress=not args.quiet, weights=_weights(args.weights),
        label_smoothing=args.label_smoothing, tta_level=args.tta_level, freeze_bottom=args.freeze_bottom,
        command="python -m visiondl_keras " + " ".join(shlex.quote(a) for a in (args.argv or [])),
        log=(lambda *a, **k: None) if args.quiet else print,
    )
    tta = (f", with TTA level {metrics['tta_level']} {metrics['test_accuracy_tta']:.4f}"
           if metrics.get("tta_level") else "")
    print(f"test accuracy {metrics['test_accuracy']:.4f}{tta} ({metrics['data']['n_test']} test images), "
          f"best val {metrics['best_val_accuracy']:.4f}, {metrics['train_time_s'] / 60:.1f} min; run: {args.run_dir}")
    if args.publish:
        published = publish_run(args.run_dir, args.publish, out=args.artifacts, run_name="transfer_reference")
        summary = write_json(Path(args.artifacts) / "metrics" / "transfer_reference.json",
                             reference_summary(args.run_dir, published))
        print(f"published {published['checkpoint']} ({published['bytes'] / 1e6:.1f} MB) and {summary}")
    return 0


def _strategies(text: str) -> list[str]:
    """``"frozen,partial"`` -> ``["frozen", "partial"]`` (an argparse ``type``)."""
    names = name_list(text)
    bad = [s for s in names if s not in STRATEGY_CHOICES]
    if bad or not names:
        raise argparse.ArgumentTypeError(f"unknown strategies {bad or text!r}; choose from {', '.join(STRATEGY_CHOICES)}")
    return names


def _add_model_args(p, weights_help: str) -> None:
    p.add_argument("--input-size", type=int, default=96,
                   help="pixels the 32 px images are resized to inside the model (default %(default)s)")
    p.add_argument("--weights", default="imagenet", help=weights_help)
    p.add_argument("--batch-size", type=int, default=64, help="images per training step (default %(default)s)")
    p.add_argument("--val-size", type=int, default=5000,
                   help="validation images taken from the training set, before --limit scaling (default %(default)s)")
    p.add_argument("--seed", type=int, default=0, help="seed of the split, the initial weights and the data order "
                   "(default %(default)s)")


def _add_finetune_args(p) -> None:
    """``transfer-train``'s options of what stage 2 trains and how (and how the result is reported)."""
    p.add_argument("--unfreeze", type=float, default=0.25,
                   help="partial: fraction of the weighted backbone layers (default %(default)s)")
    p.add_argument("--freeze-bottom", type=int, default=0, metavar="N",
                   help="full: keep the bottom N weighted backbone layers frozen while fine-tuning; faster epochs "
                        "(default %(default)s)")
    p.add_argument("--crop-pad", type=int, default=4, help="reflect-padding of the random crops, 0: none "
                   "(default %(default)s)")
    p.add_argument("--no-flip", action="store_true", help="no random horizontal flips")
    p.add_argument("--label-smoothing", type=float, default=0.0,
                   help="label smoothing of both stages' cross-entropy (default %(default)s)")
    p.add_argument("--tta-level", type=int, choices=(0, 1, 2), default=0,
                   help="also report the test accuracy with test-time augmentation: 1 mirror, 2 mirror + "
                        "1-px translations (default %(default)s: none)")


def register(subparsers) -> None:
    """Add ``transfer-compare`` and ``transfer-train`` to the command line.

    Example:
        >>> register(parser.add_subparsers())  # doctest: +SKIP

    Taught in lesson 4.
    """
    common = [data_parent(), quiet_parent()]
    weights_help = "imagenet, none (random initial weights) or a weights file (default %(default)s)"
    p = subparsers.add_parser(
        "transfer-compare", parents=common,
        help="frozen vs partial vs full fine-tuning of pretrained backbones, on one budget",
        description="Frozen vs partial vs full fine-tuning vs two-stage, on one budget; writes "
                    "OUT/metrics/transfer_NAME.json/.md and OUT/figures/transfer_NAME_accuracy_vs_*.png.")
    p.add_argument("--backbones", default="mobilenet_v2:0.35,mobilenet:0.25",
                   help="comma-separated name[:alpha] (default %(default)s)")
    p.add_argument("--strategies", type=_strategies, default=list(STRATEGY_CHOICES),
                   help=f"comma-separated, of {','.join(STRATEGY_CHOICES)} (default: all)")
    _add_model_args(p, weights_help)
    p.add_argument("--limit", type=int, default=None, help="stratified training subset (default: all; --quick: 500)")
    p.add_argument("--test-limit", type=int, default=None, help="stratified test subset (default: all; --quick: 500)")
    p.add_argument("--epochs", type=int, default=None, help="epochs per run (default 5; --quick: 2)")
    p.add_argument("--warmup-epochs", type=int, default=None, help="two-stage: head epochs on cached features "
                   "(default 1)")
    p.add_argument("--lr", type=float, default=1e-3, help="head learning rate, Adam (default %(default)s)")
    p.add_argument("--backbone-lr-multiplier", type=float, default=0.1,
                   help="backbone learning rate = lr x this (default %(default)s)")
    p.add_argument("--unfreeze", default="0.25",
                   help="partial: layer count (int) or fraction (float) of weighted layers (default %(default)s)")
    p.add_argument("--targets", type=float_list, default=[0.6, 0.7, 0.8],
                   help="accuracies for time-to-accuracy (default 0.6,0.7,0.8)")
    p.add_argument("--name", help="output name: transfer_NAME.json (default compare; --quick: quick)")
    p.add_argument("--artifacts", default=None, help="output folder for metrics/ and figures/ "
                   "(default runs/transfer-NAME; pass artifacts to update the shipped comparison)")
    p.add_argument("--run-dir", default=None, help="folder of the runs' resumable directories "
                   "(default runs/transfer-NAME/train)")
    p.add_argument("--scratch-history", default=SCRATCH_HISTORY,
                   help="history.csv of the scratch reference run, drawn for comparison (default %(default)s)")
    p.add_argument("--no-cache", action="store_true", help="recompute frozen features instead of using the cache")
    p.add_argument("--quick", action="store_true", help="500-image subset, 2 epochs (for tests and live demos)")
    p.set_defaults(func=_compare)

    p = subparsers.add_parser(
        "transfer-train", parents=common,
        help="the reference transfer recipe: cached-feature head, then fine-tuning (a resumable run directory)",
        description="The reference transfer recipe: head epochs on cached features, then fine-tuning with "
                    "augmentation; an interrupted run resumes when started again with the same command.")
    p.add_argument("--run-dir", required=True, help="the run directory (written; resumed when unfinished)")
    p.add_argument("--backbone", default="mobilenet_v2", help="backbone name (default %(default)s)")
    p.add_argument("--alpha", type=float, default=None, help="MobileNet width multiplier (default: the backbone's)")
    _add_model_args(p, weights_help)
    p.add_argument("--strategy", choices=("frozen", "partial", "full"), default="full",
                   help="frozen (head on cached features only), partial or full (default %(default)s)")
    p.add_argument("--warmup-epochs", type=int, default=3, help="head epochs on cached features, stage 1 "
                   "(default %(default)s)")
    p.add_argument("--epochs", type=int, default=12, help="maximum fine-tuning epochs, cosine decay over them "
                   "(default %(default)s)")
    p.add_argument("--budget-minutes", type=float, default=None,
                   help="fine-tuning time budget; fewer epochs if short (default: none)")
    p.add_argument("--lr", type=float, default=1e-3, help="head learning rate, Adam (default %(default)s)")
    p.add_argument("--backbone-lr-multiplier", type=float, default=0.2,
                   help="backbone learning rate = lr x this (default %(default)s)")
    _add_finetune_args(p)
    p.add_argument("--limit", type=int, default=None, help="stratified training subset (default: all)")
    p.add_argument("--test-limit", type=int, default=None, help="stratified test subset (default: all)")
    p.add_argument("--publish", metavar="CHECKPOINT_NAME", default=None,
                   help="then ship the run: ARTIFACTS/checkpoints/CHECKPOINT_NAME.keras, "
                        "ARTIFACTS/runs/transfer_reference/ and ARTIFACTS/metrics/transfer_reference.json")
    p.add_argument("--artifacts", default="artifacts", help="where --publish writes (default %(default)s)")
    p.set_defaults(func=_train)
