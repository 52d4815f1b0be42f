"""``python -m visiondl_keras export CHECKPOINT_OR_RUN_DIR --out OUT``: SavedModel / TFLite export.

Thin translation of the command line into :func:`visiondl_keras.deploy.export.export_checkpoint`.
"""

from __future__ import annotations

import argparse

from visiondl_keras.cli.common import checkpoint_parent, quiet_parent, run_split_parent
from visiondl_keras.names import EXPORT_FORMATS as FORMATS
from visiondl_keras.names import QUANTIZATIONS


def _silent(*_args, **_kwargs) -> None:
    return None


def run(args: argparse.Namespace) -> int:
    from visiondl_keras.deploy.export import export_checkpoint

    """Run ``export``; returns the exit status."""
    export_checkpoint(args.checkpoint, args.out, fmt=args.format, quantization=args.quantization,
                      calibrated=not args.no_calibration, run_dir=args.run_dir, data=args.data, seed=args.seed,
                      val_size=args.val_size, representative=args.representative, progress=not args.quiet,
                      log=_silent if args.quiet else print, tta=args.tta)
    return 0


def register(subparsers) -> None:
    """Add the ``export`` command."""
    p = subparsers.add_parser(
        "export",
        parents=[checkpoint_parent(), run_split_parent(), quiet_parent()],
        help="export a checkpoint as SavedModel / TFLite (temperature folded in)",
        description="Export a checkpoint as a SavedModel folder or a .tflite file that outputs calibrated "
        "probabilities. --format all writes saved_model/ and model_{float32,float16,dynamic,int8}.tflite into --out.",
    )
    p.add_argument("--tta", type=int, choices=(0, 1, 2), default=0,
                   help="wrap the model in test-time augmentation: 0 none (default), 1 mirror (2 passes), "
                   "2 mirror + translations (6 passes)")
    p.add_argument("--format", choices=FORMATS, default="tflite", help="what to write (default tflite)")
    p.add_argument("--quantization", choices=QUANTIZATIONS, default="none", help="TFLite quantization (default none)")
    p.add_argument("--out", required=True, help="output .tflite file, SavedModel folder, or folder for --format all")
    p.add_argument("--no-calibration", action="store_true", help="ignore the temperature sidecar (T = 1)")
    p.add_argument("--representative", type=int, default=2000,
                   help="training images that calibrate int8 (default 2000)")
    p.set_defaults(func=run)
