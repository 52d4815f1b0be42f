"""``python -m visiondl_keras COMMAND ...`` (also installed as ``visiondl``).

The command layer is the only place argparse lives. Each module of ``visiondl_keras.cli`` exposes
``register(subparsers)``, which adds its sub-parsers with ``set_defaults(func=...)``; ``func(args)``
translates the arguments into one library call and returns the exit status (0 success, 1 some
work failed).

Errors a user can cause (:class:`~visiondl_keras.errors.VisionDLError`) print one line on
stderr and exit 1; usage errors exit 2 (argparse's convention). Other exceptions are bugs
and keep their traceback.
"""

from __future__ import annotations

import argparse
import importlib
import sys

from visiondl_keras.cli.common import Parser, quiet_backend_import
from visiondl_keras.errors import VisionDLError

# Commands that never need Keras up front (the TFLite inference path, writing samples, grading,
# the dashboard, which loads its models on first use): nothing is imported for them up front.
LIGHT_COMMANDS = ("infer", "samples", "grade", "dashboard")

# Command modules, in the order their commands appear in --help.
COMMAND_MODULES = (
    "visiondl_keras.cli.train",
    "visiondl_keras.cli.transfer",
    "visiondl_keras.cli.diagnose",
    "visiondl_keras.cli.calibrate",
    "visiondl_keras.cli.export",
    "visiondl_keras.cli.infer",
    "visiondl_keras.cli.model_card",
    "visiondl_keras.cli.grade",
    "visiondl_keras.cli.dashboard",
)


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(prog="python -m visiondl_keras", description="visiondl-keras: CIFAR-10 with Keras 3.")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=Parser)
    for name in COMMAND_MODULES:
        module = importlib.import_module(name)
        module.register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run the command line; returns the exit status."""
    parser = build_parser()
    argv = list(sys.argv[1:] if argv is None else argv)
    args = parser.parse_args(argv)
    args.argv = argv  # the command line as given, recorded by commands that write run directories
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        if args.command not in LIGHT_COMMANDS:
            quiet_backend_import(args.verbose)
        return int(args.func(args) or 0)
    except VisionDLError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
