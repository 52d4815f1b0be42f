"""``python -m visiondl_keras model-card RUN_DIR [--out model_card.md]``: a model card from run artifacts.

Thin translation of the command line into :func:`visiondl_keras.reporting.model_card.write_model_card`.
"""

from __future__ import annotations

import argparse

from visiondl_keras.cli.common import quiet_parent


def run(args: argparse.Namespace) -> int:
    """Run ``model-card``; returns the exit status."""
    from visiondl_keras.reporting.model_card import write_model_card

    command = "python -m visiondl_keras model-card " + " ".join(
        [args.run_dir] + ([f"--checkpoint {args.checkpoint}"] if args.checkpoint else [])
        + ([f"--out {args.out}"] if args.out != "model_card.md" else []))
    path = write_model_card(args.run_dir, args.out, checkpoint=args.checkpoint, artifacts_dir=args.artifacts_dir,
                            command=command)
    if not args.quiet:
        print(f"wrote {path}")
    return 0


def register(subparsers) -> None:
    """Add the ``model-card`` command."""
    p = subparsers.add_parser(
        "model-card",
        parents=[quiet_parent()],
        help="write model_card.md from a run's artifacts",
        description="Write a model card from a run's config.json, metrics.json, calibration and (when present) "
        "diagnostics and export-benchmark JSON.",
    )
    p.add_argument("run_dir", metavar="RUN_DIR", help="the training run's directory (config.json, metrics.json)")
    p.add_argument("--out", default="model_card.md", help="output file (default model_card.md)")
    p.add_argument("--checkpoint", help="the model file (default: the one RUN_DIR/published.json names, written by "
                   "publish; else RUN_DIR/best.keras)")
    p.add_argument("--artifacts-dir", help="the artifacts/ folder (default: found above RUN_DIR)")
    p.set_defaults(func=run)
