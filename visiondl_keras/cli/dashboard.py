"""``python -m visiondl_keras dashboard``: the interactive classroom dashboard (a local web page).

Thin translation of the command line into :func:`visiondl_keras.dashboard.app.serve`; see the
:mod:`visiondl_keras.dashboard` package for the tabs. Gradio is imported only when the command runs
(``--help`` stays fast), and it is an optional dependency: ``pip install -e .[dashboard]``.
"""

from __future__ import annotations

import argparse

from visiondl_keras.cli.common import data_parent, quiet_parent
from visiondl_keras.errors import ConfigError


def _port(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a port number, got {text!r}") from None
    if not 0 < value < 65536:
        raise argparse.ArgumentTypeError(f"a port is between 1 and 65535, got {value}")
    return value


def _subset(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number of images, got {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be 0 (all) or a positive number, got {value}")
    return value


def run(args: argparse.Namespace) -> int:
    """Run ``dashboard`` (until interrupted); returns the exit status."""
    try:
        import gradio  # noqa: F401
    except ImportError:
        raise ConfigError("the dashboard needs Gradio: pip install -e '.[dashboard]' (or pip install gradio).") from None
    from visiondl_keras.dashboard.app import serve

    if args.host not in ("127.0.0.1", "localhost", "::1") and not args.quiet:
        print(f"note: serving on {args.host}: other computers on the network can open the dashboard")
    serve(models=args.model, host=args.host, port=args.port, data=args.data, subset=args.subset, quiet=args.quiet,
          preload=not args.no_preload)
    return 0


def register(subparsers) -> None:
    """Add the ``dashboard`` command."""
    p = subparsers.add_parser(
        "dashboard", parents=[data_parent(), quiet_parent()],
        help="an interactive web page: predictions, errors, calibration, robustness and training curves",
        description="Serve the classroom dashboard on this computer (Gradio; nothing is fetched from the internet). "
        "Tabs: Predict (upload or pick a test image; calibrated top-k of every model, TTA, Grad-CAM, "
        "out-of-distribution caution), Errors, Calibration, Robustness, Runs.",
    )
    p.add_argument("--host", default="127.0.0.1",
                   help="interface to bind (default 127.0.0.1: this computer only; 0.0.0.0 opens it to the network)")
    p.add_argument("--port", type=_port, default=7860, help="TCP port (default 7860)")
    p.add_argument("--model", action="append", metavar="PATH",
                   help="a .keras checkpoint, SavedModel folder or .tflite file to compare (repeatable; default: "
                   "the shipped scratch model and its .tflite, transfer*.keras and *int8*.tflite under "
                   "artifacts/checkpoints)")
    p.add_argument("--subset", type=_subset, default=1000,
                   help="test images (a stratified subset) for the confusion matrix and calibration "
                   "(default 1000; 0 = all 10,000)")
    p.add_argument("--no-preload", action="store_true",
                   help="load each model when first used (default: load them in the background once the page is up)")
    p.set_defaults(func=run)
