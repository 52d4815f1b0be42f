"""CONTRIBUTORS: read CONTRIBUTING.md at the repository root first (venv, nice -n 15, commit rules, run-dir format).

Command-line layer: ``python -m visiondl_keras COMMAND ...`` (also installed as ``visiondl``).

Each command lives in the module that implements it; that module exposes
``register_commands(subparsers)``, which adds its sub-parsers with ``set_defaults(func=...)``.
``func(args)`` returns the exit status (0 success, 1 some work failed).

Errors a user can cause (:class:`~visiondl_keras.errors.VisionDLError`) print one line on
stderr and exit 1; usage errors exit 2 (argparse's convention). Other exceptions are bugs
and keep their traceback.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys

# Modules that contribute commands, in the order they appear in --help.
COMMAND_MODULES = (
    "visiondl_keras.train",
    "visiondl_keras.ablation",
    "visiondl_keras.transfer_compare",
    "visiondl_keras.diagnose",
    "visiondl_keras.calibrate",
    "visiondl_keras.export",
    "visiondl_keras.model_card",
)


class _Parser(argparse.ArgumentParser):
    def error(self, message):  # one line, exit 2
        self.print_usage(sys.stderr)
        print(f"{self.prog}: error: {message}", file=sys.stderr)
        raise SystemExit(2)


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="python -m visiondl_keras", description="visiondl-keras: CIFAR-10 with Keras 3.")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    for name in COMMAND_MODULES:
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError as exc:
            if exc.name == name:  # not written yet
                continue
            raise
        module.register_commands(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run the command line; returns the exit status."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    from .errors import VisionDLError

    parser = build_parser()
    argv = list(sys.argv[1:] if argv is None else argv)
    args = parser.parse_args(argv)
    args.argv = argv  # the command line as given, recorded by commands that write run directories
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        return int(args.func(args) or 0)
    except VisionDLError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
