"""Every command the README shows parses with the real command-line parsers (flags, choices, required
arguments), so no README command fails as written because of its arguments."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest

from visiondl_keras.cli import infer as infer_cli
from visiondl_keras.cli.main import build_parser

README = Path(__file__).resolve().parents[1] / "README.md"


def readme_commands() -> list[str]:
    blocks = re.findall(r"```bash\n(.*?)```", README.read_text(encoding="utf-8"), flags=re.S)
    lines = [line.split("  #")[0].strip() for block in blocks for line in block.splitlines()]
    return [line for line in lines if line.startswith("python -m visiondl_keras")]


def _argv(command: str) -> list[str]:
    # optional parts written as [--flag VALUE] or [a.png folder/] are dropped
    return shlex.split(re.sub(r"\[[^\]]*\]", "", command))[2:]


def test_readme_shows_commands():
    commands = readme_commands()
    assert len(commands) >= 10
    assert any(c.startswith("python -m visiondl_keras.infer") for c in commands)


@pytest.mark.parametrize("command", readme_commands())
def test_readme_command_parses(command):
    argv = _argv(command)
    if argv[0] == "visiondl_keras.infer":
        args = infer_cli.build_parser().parse_args(argv[1:])
        assert args.paths
        return
    parser = build_parser()
    args = parser.parse_args(argv[1:])
    assert callable(args.func), command


def lesson_commands() -> list[str]:
    """The shell commands of the lessons' ``bash`` blocks."""
    root = README.parent / "lessons"
    blocks = [b for p in sorted(root.glob("*.md")) for b in re.findall(r"```bash\n(.*?)```", p.read_text(), flags=re.S)]
    return [line.split("  #")[0].strip() for block in blocks for line in block.splitlines() if line.strip()]


def test_lesson_commands_need_no_activation_and_name_real_files():
    """Each lesson's exercise command runs from a fresh checkout as written: the project's own pytest
    (no activated environment needed) on a graded test file that exists."""
    commands = lesson_commands()
    assert len(commands) >= 9
    for command in commands:
        argv = shlex.split(command)
        assert argv[0] in (".venv/bin/pytest", "make"), command
        for arg in argv[1:]:
            if arg.startswith("exercises/"):
                assert (README.parent / arg).exists(), command
