"""``python -m visiondl_keras calibrate CHECKPOINT_OR_RUN_DIR``: fit and store a temperature.

Thin translation of the command line into
:func:`visiondl_keras.evaluation.calibrate.calibrate_checkpoint`; see that module for the files it writes.
"""

from __future__ import annotations

import argparse

from visiondl_keras.cli.common import batch_size_parent, checkpoint_parent, quiet_parent, run_split_parent


def run(args: argparse.Namespace) -> int:
    from visiondl_keras.evaluation.calibrate import calibrate_checkpoint, markdown_table

    """Run ``calibrate``; returns the exit status."""
    result = calibrate_checkpoint(args.checkpoint, run_dir=args.run_dir, out_dir=args.out_dir,
                                  figures_dir=args.figures_dir, data=args.data, seed=args.seed,
                                  val_size=args.val_size, n_bins=args.n_bins, batch_size=args.batch_size,
                                  progress=not args.quiet)
    if not args.quiet:
        print(markdown_table(result))
        print(f"temperature written to {result['sidecar']}")
    return 0


def register(subparsers) -> None:
    """Add the ``calibrate`` command."""
    p = subparsers.add_parser(
        "calibrate",
        parents=[checkpoint_parent(), run_split_parent(), batch_size_parent(500), quiet_parent()],
        help="fit a temperature on the validation split; write the sidecar, tables and reliability diagrams",
        description="Fit a temperature on the run's validation split (reproduced from its config.json) and write "
        "the sidecar <checkpoint>.calibration.json, calibration_<name>.json/.md and reliability diagrams.",
    )
    p.add_argument("--out-dir", help="folder for calibration_<name>.json/.md (default: the run directory)")
    p.add_argument("--figures-dir", help="folder for the reliability diagrams (default: OUT_DIR/figures)")
    p.add_argument("--n-bins", type=int, default=15, help="bins of ECE/MCE and the diagrams (default 15)")
    p.set_defaults(func=run)
