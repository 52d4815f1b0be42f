"""The command line starts fast and speaks only for itself: --help loads neither Keras nor TensorFlow,
every flag has a help text, and TensorFlow's start-up log lines stay hidden unless --verbose."""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
from pathlib import Path

import pytest

from visiondl_keras.cli.main import build_parser

ROOT = Path(__file__).resolve().parents[1]


def _subcommands(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            return dict(action.choices)
    return {}


def _run(*args, env=None):
    env = {**os.environ, **(env or {})}
    env.pop("TF_CPP_MIN_LOG_LEVEL", None)
    return subprocess.run([sys.executable, *args], capture_output=True, text=True, cwd=ROOT, env=env, timeout=300)


def test_help_of_every_command_imports_neither_keras_nor_tensorflow():
    names = sorted(_subcommands(build_parser()))
    code = (
        "import sys, contextlib, io\n"
        "from visiondl_keras.cli.main import build_parser\n"
        f"for name in {names!r} + [None]:\n"
        "    with contextlib.redirect_stdout(io.StringIO()):\n"
        "        try:\n"
        "            build_parser().parse_args([name, '--help'] if name else ['--help'])\n"
        "        except SystemExit:\n"
        "            pass\n"
        "print(sorted(m for m in ('keras', 'tensorflow', 'jax', 'torch', 'matplotlib') if m in sys.modules))\n"
    )
    r = _run("-c", code)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "[]", r.stdout


def test_every_flag_of_every_command_has_a_help_text():
    missing = []
    for name, sub in _subcommands(build_parser()).items():
        for action in sub._actions:
            if isinstance(action, argparse._HelpAction):
                continue
            if not (action.help or "").strip() or action.help == argparse.SUPPRESS:
                missing.append(f"{name} {'/'.join(action.option_strings) or action.dest}")
    assert not missing, missing


def test_config_architectures_match_the_models():
    from visiondl_keras.models.scratch import ARCHITECTURES
    from visiondl_keras.training.config import ALL_ARCHITECTURES

    assert ALL_ARCHITECTURES == (*ARCHITECTURES, "airbench")


@pytest.mark.slow
def test_backend_log_lines_are_hidden_unless_verbose(tmp_path):
    missing = str(tmp_path / "missing.keras")
    quiet = _run("-m", "visiondl_keras", "evaluate", missing)
    assert quiet.returncode == 1
    assert quiet.stderr.strip().splitlines() == [f"error: {missing}: checkpoint not found; pass a .keras file or a run "
                                                 "directory."], quiet.stderr
    loud = _run("-m", "visiondl_keras", "evaluate", missing, "--verbose")
    assert loud.returncode == 1 and loud.stderr.strip().splitlines()[-1].startswith("error: ")
