"""The package's layer rule and size limits, checked by parsing the source (nothing is imported).

Layers, from the top down (a module may import from its own layer or any layer below it)::

    cli/                                                   top
    training/ evaluation/ deploy/ reporting/ course/       upper
    models/ data/                                          middle
    errors, io, runs, reproducibility, names               bottom

Also:

* ``argparse`` is imported only in ``visiondl_keras/cli/``;
* ``visiondl_keras.cli`` is imported only by ``cli/`` itself and by the entry points
  ``visiondl_keras/__main__.py`` and ``visiondl_keras/infer.py``;
* ``visiondl_keras/__init__.py`` (the public API) imports from the bottom and middle layers only;
* a module has at most 600 lines, a function at most 80 lines unless a comment containing
  ``long:`` (the reason) sits on the line just above its ``def`` (or its decorators), on the ``def``
  line, or on the first line of its body.

Every import statement counts, including imports inside functions and under ``TYPE_CHECKING``,
and ``importlib.import_module("...")`` calls with a literal name. Relative imports are resolved.
"""

from __future__ import annotations

import ast
import io
import tokenize
from dataclasses import dataclass
from pathlib import Path

import pytest

PACKAGE = "visiondl_keras"
PACKAGE_DIR = Path(__file__).resolve().parents[1] / PACKAGE

BOTTOM, MIDDLE, UPPER, TOP = 0, 1, 2, 3
LAYER_NAMES = {BOTTOM: "bottom", MIDDLE: "middle", UPPER: "upper", TOP: "top"}
# First name under visiondl_keras -> layer.
LAYERS = {
    "errors": BOTTOM,
    "io": BOTTOM,
    "runs": BOTTOM,
    "reproducibility": BOTTOM,
    "names": BOTTOM,
    "models": MIDDLE,
    "data": MIDDLE,
    "training": UPPER,
    "evaluation": UPPER,
    "deploy": UPPER,
    "reporting": UPPER,
    "course": UPPER,
    "dashboard": UPPER,
    "cli": TOP,
}
# Entry points: they exist only to call the command line.
ENTRY_POINTS = {"__main__", "infer"}
# visiondl_keras/__init__.py (the public API) may import bottom and middle; importing a name from it
# (``from visiondl_keras import load_cifar10``) counts as importing the middle layer.
API_LAYER = MIDDLE

MAX_MODULE_LINES = 600
MAX_FUNCTION_LINES = 80
LONG_MARKER = "long:"


@dataclass(frozen=True)
class Violation:
    path: str
    line: int
    kind: str  # "layer", "argparse", "cli", "unknown", "module-length", "function-length"
    message: str

    def __str__(self) -> str:
        return f"{self.path}:{self.line}: [{self.kind}] {self.message}"


# --- locating modules -----------------------------------------------------------------------------


def module_name(relpath: str) -> str:
    """``visiondl_keras/data/cifar10.py`` -> ``visiondl_keras.data.cifar10`` (``__init__`` -> the package)."""
    parts = list(Path(relpath).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def is_package(relpath: str) -> bool:
    return Path(relpath).name == "__init__.py"


def layer_of_module(relpath: str) -> tuple[int | None, str]:
    """The layer of the module at ``relpath`` and a label for messages; None when unassigned."""
    parts = Path(relpath).with_suffix("").parts
    if len(parts) == 2 and parts[1] == "__init__":
        return API_LAYER, "the public API (visiondl_keras/__init__.py)"
    if len(parts) == 2 and parts[1] in ENTRY_POINTS:
        return TOP, f"entry point {parts[1]}"
    first = parts[1]
    if first in LAYERS:
        return LAYERS[first], first
    return None, first


def layer_of_target(target: str) -> tuple[int | None, str]:
    """The layer of an absolute module name inside the package; None when unassigned."""
    parts = target.split(".")
    if len(parts) == 1:
        return API_LAYER, "visiondl_keras (the public API)"
    first = parts[1]
    if first in LAYERS:
        return LAYERS[first], first
    if first in ENTRY_POINTS:
        return TOP, f"entry point {first}"
    return None, first


def resolve_relative(importer: str, importer_is_package: bool, module: str | None, level: int) -> str:
    """The absolute module of ``from <level dots><module> import ...`` written in ``importer``."""
    base = importer.split(".")
    if not importer_is_package:
        base = base[:-1]
    if level - 1 > 0:
        if level - 1 >= len(base):
            raise ValueError(f"relative import beyond the top-level package (level {level})")
        base = base[: len(base) - (level - 1)]
    return ".".join([*base, module] if module else base)


# --- collecting imports ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Import:
    line: int
    target: str  # absolute module name (inside or outside the package)
    text: str  # the statement as written, for messages


def imports_of(tree: ast.AST, relpath: str) -> list[Import]:
    """Every import in ``tree`` (at any depth), relative ones resolved to absolute names."""
    importer = module_name(relpath)
    package = is_package(relpath)
    found: list[Import] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                found.append(Import(node.lineno, alias.name, f"import {alias.name}"))
        elif isinstance(node, ast.ImportFrom):
            dots = "." * node.level
            names = ", ".join(a.name for a in node.names)
            text = f"from {dots}{node.module or ''} import {names}"
            if node.level:
                try:
                    base = resolve_relative(importer, package, node.module, node.level)
                except ValueError as exc:
                    found.append(Import(node.lineno, f"<unresolvable: {exc}>", text))
                    continue
            else:
                base = node.module or ""
            if base == PACKAGE:
                # `from visiondl_keras import training` imports the subpackage; any other name comes
                # from the public API.
                for alias in node.names:
                    sub = alias.name in LAYERS or alias.name in ENTRY_POINTS
                    found.append(Import(node.lineno, f"{PACKAGE}.{alias.name}" if sub else PACKAGE, text))
            else:
                found.append(Import(node.lineno, base, text))
        elif (
            isinstance(node, ast.Call)
            and _call_name(node.func) in {"import_module", "importlib.import_module", "__import__"}
            and node.args
            and isinstance(node.args[0], ast.Constant)
            and isinstance(node.args[0].value, str)
        ):
            name = node.args[0].value
            found.append(Import(node.lineno, name, f"{_call_name(node.func)}({name!r})"))
    return sorted(found, key=lambda i: i.line)


def _call_name(func: ast.expr) -> str:
    if isinstance(func, ast.Name):
        return func.id
    if isinstance(func, ast.Attribute) and isinstance(func.value, ast.Name):
        return f"{func.value.id}.{func.attr}"
    return ""


def _in_package(target: str) -> bool:
    return target == PACKAGE or target.startswith(PACKAGE + ".")


# --- the checks -----------------------------------------------------------------------------------


def check_imports(source: str, relpath: str) -> list[Violation]:
    """Layer, argparse and cli violations of one module; ``relpath`` like ``visiondl_keras/data/x.py``."""
    tree = ast.parse(source, filename=relpath)
    rel = Path(relpath)
    in_cli = len(rel.parts) > 2 and rel.parts[1] == "cli"
    is_entry_point = len(rel.parts) == 2 and rel.stem in ENTRY_POINTS
    own_layer, own_label = layer_of_module(relpath)
    out: list[Violation] = []
    if own_layer is None:
        out.append(
            Violation(
                relpath,
                1,
                "unknown",
                f"module {own_label!r} belongs to no layer; add it to LAYERS in tests/test_architecture.py "
                "(and to the Architecture section of CONTRIBUTING.md)",
            )
        )
    for imp in imports_of(tree, relpath):
        root = imp.target.split(".")[0]
        if root == "argparse" and not in_cli:
            out.append(
                Violation(
                    relpath,
                    imp.line,
                    "argparse",
                    f"`{imp.text}`: argparse belongs in visiondl_keras/cli/ only; "
                    "take plain arguments here and parse them in a cli module",
                )
            )
            continue
        if imp.target.startswith("<unresolvable"):
            out.append(Violation(relpath, imp.line, "layer", f"`{imp.text}`: {imp.target}"))
            continue
        if not _in_package(imp.target):
            continue
        target_layer, target_label = layer_of_target(imp.target)
        if target_label == "cli":
            if not (in_cli or is_entry_point):
                out.append(
                    Violation(
                        relpath,
                        imp.line,
                        "cli",
                        f"`{imp.text}`: only the cli package and the entry points "
                        "(visiondl_keras/__main__.py, visiondl_keras/infer.py) may import visiondl_keras.cli",
                    )
                )
            continue
        if target_layer is None:
            out.append(
                Violation(
                    relpath,
                    imp.line,
                    "unknown",
                    f"`{imp.text}`: {imp.target} belongs to no layer; add {target_label!r} to LAYERS "
                    "in tests/test_architecture.py",
                )
            )
            continue
        if own_layer is not None and target_layer > own_layer:
            out.append(
                Violation(
                    relpath,
                    imp.line,
                    "layer",
                    f"`{imp.text}`: upward import, {own_label} ({LAYER_NAMES[own_layer]} layer) imports "
                    f"{imp.target} ({target_label}, {LAYER_NAMES[target_layer]} layer)",
                )
            )
    return out


def _comments_by_line(source: str) -> dict[int, str]:
    comments: dict[int, str] = {}
    try:
        for tok in tokenize.generate_tokens(io.StringIO(source).readline):
            if tok.type == tokenize.COMMENT:
                comments[tok.start[0]] = tok.string
    except (tokenize.TokenError, SyntaxError):
        pass
    return comments


def check_lengths(
    source: str,
    relpath: str,
    max_module_lines: int = MAX_MODULE_LINES,
    max_function_lines: int = MAX_FUNCTION_LINES,
) -> list[Violation]:
    """Module and function length violations of one module."""
    out: list[Violation] = []
    n_lines = len(source.splitlines())
    if n_lines > max_module_lines:
        out.append(
            Violation(
                relpath, 1, "module-length", f"{n_lines} lines (limit {max_module_lines}); split the module"
            )
        )
    tree = ast.parse(source, filename=relpath)
    comments = _comments_by_line(source)
    for node in ast.walk(tree):
        if not isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            continue
        length = node.end_lineno - node.lineno + 1
        if length <= max_function_lines:
            continue
        first = min([node.lineno, *(d.lineno for d in node.decorator_list)])
        allowed_lines = {first - 1, node.lineno - 1, *range(node.lineno, node.body[0].lineno + 1)}
        if any(LONG_MARKER in comments.get(line, "") for line in allowed_lines):
            continue
        out.append(
            Violation(
                relpath,
                node.lineno,
                "function-length",
                f"function {node.name}() has {length} lines (limit {max_function_lines}); split it, or "
                f"say why it must be long in a `# {LONG_MARKER} ...` comment just above the def",
            )
        )
    return out


# --- running over the package ---------------------------------------------------------------------


def package_modules() -> list[tuple[str, str]]:
    """(relpath, source) of every module of the package."""
    root = PACKAGE_DIR.parent
    return [
        (path.relative_to(root).as_posix(), path.read_text(encoding="utf-8"))
        for path in sorted(PACKAGE_DIR.rglob("*.py"))
        if "__pycache__" not in path.parts
    ]


def _report(violations: list[Violation], what: str) -> str:
    return f"{len(violations)} {what}:\n" + "\n".join(f"  {v}" for v in violations)


def test_package_is_found():
    modules = package_modules()
    assert len(modules) > 10, f"found only {len(modules)} modules under {PACKAGE_DIR}"
    assert any(rel == f"{PACKAGE}/__init__.py" for rel, _ in modules)


def test_layer_rule():
    found = [
        v for rel, src in package_modules() for v in check_imports(src, rel) if v.kind in ("layer", "unknown")
    ]
    if found:
        pytest.fail(
            _report(found, "layer violation(s) (a module may import only its own layer or below)"),
            pytrace=False,
        )


def test_argparse_only_in_cli():
    found = [v for rel, src in package_modules() for v in check_imports(src, rel) if v.kind == "argparse"]
    if found:
        pytest.fail(_report(found, "argparse import(s) outside visiondl_keras/cli/"), pytrace=False)


def test_cli_imported_only_by_entry_points():
    found = [v for rel, src in package_modules() for v in check_imports(src, rel) if v.kind == "cli"]
    if found:
        pytest.fail(_report(found, "import(s) of visiondl_keras.cli from library code"), pytrace=False)


def test_module_lengths():
    found = [
        v for rel, src in package_modules() for v in check_lengths(src, rel) if v.kind == "module-length"
    ]
    if found:
        pytest.fail(_report(found, f"module(s) over {MAX_MODULE_LINES} lines"), pytrace=False)


def test_function_lengths():
    found = [
        v for rel, src in package_modules() for v in check_lengths(src, rel) if v.kind == "function-length"
    ]
    if found:
        pytest.fail(
            _report(found, f"function(s) over {MAX_FUNCTION_LINES} lines without a `long:` comment"),
            pytrace=False,
        )


# --- self-tests: the checker finds what it must find ---------------------------------------------

BAD_DATA_MODULE = """\
import argparse
from argparse import ArgumentParser
import numpy as np
from visiondl_keras.errors import DataError
from visiondl_keras.models.scratch import build_scratch_model
from visiondl_keras.training.engine import fit_epoch
from ..evaluation import metrics
from ..cli.main import main


def lazy():
    import visiondl_keras.reporting.plots
    from .. import deploy
    from visiondl_keras import load_cifar10
    importlib.import_module("visiondl_keras.course.grading")
"""


def test_checker_reports_upward_argparse_and_cli_imports():
    found = check_imports(BAD_DATA_MODULE, "visiondl_keras/data/bad.py")
    by_kind = {}
    for v in found:
        by_kind.setdefault(v.kind, []).append(v.line)
    assert by_kind.get("argparse") == [1, 2], found
    # training (absolute), evaluation (relative), reporting and deploy (lazy, relative), course (importlib);
    # errors and models (own layer) and `from visiondl_keras import load_cifar10` (middle) are allowed.
    assert by_kind.get("layer") == [6, 7, 12, 13, 15], found
    assert by_kind.get("cli") == [8], found
    assert "unknown" not in by_kind, found
    msg = str(next(v for v in found if v.line == 7))
    assert msg.startswith("visiondl_keras/data/bad.py:7: [layer]")
    assert "from ..evaluation import metrics" in msg and "visiondl_keras.evaluation" in msg


def test_checker_allows_same_layer_and_downward_imports():
    src = (
        "import argparse\n"
        "from visiondl_keras.evaluation.metrics import accuracy\n"  # upper -> upper
        "from ..data import augment\n"  # upper -> middle
        "from . import callbacks\n"
        "from visiondl_keras import runs\n"
    )
    found = check_imports(src, "visiondl_keras/training/new.py")
    assert [v.kind for v in found] == ["argparse"], found
    assert check_imports(src.replace("import argparse\n", ""), "visiondl_keras/cli/new.py") == []
    # the entry points may import the cli; the public API may not, nor anything above the middle layer
    assert check_imports("from visiondl_keras.cli.main import main\n", "visiondl_keras/__main__.py") == []
    api = check_imports(
        "from visiondl_keras.data.cifar10 import load_cifar10\nfrom .training.scratch import train\n"
        "from .cli import main\n",
        "visiondl_keras/__init__.py",
    )
    assert [(v.kind, v.line) for v in api] == [("layer", 2), ("cli", 3)], api
    # a bottom module importing the public API imports the data layer
    assert [
        v.kind for v in check_imports("from visiondl_keras import load_cifar10\n", "visiondl_keras/io.py")
    ] == ["layer"]


def test_checker_reports_modules_outside_every_layer():
    found = check_imports("x = 1\n", "visiondl_keras/helpers.py")
    assert [v.kind for v in found] == ["unknown"]
    found = check_imports("from visiondl_keras.utils import x\n", "visiondl_keras/data/y.py")
    assert [v.kind for v in found] == ["unknown"]


@pytest.mark.parametrize(
    ("importer", "module", "level", "expected"),
    [
        ("visiondl_keras.data.cifar10", "augment", 1, "visiondl_keras.data.augment"),
        ("visiondl_keras.data.cifar10", "training.engine", 2, "visiondl_keras.training.engine"),
        ("visiondl_keras.data.cifar10", None, 2, "visiondl_keras"),
        ("visiondl_keras.io", "errors", 1, "visiondl_keras.errors"),
    ],
)
def test_resolve_relative(importer, module, level, expected):
    assert resolve_relative(importer, False, module, level) == expected


def test_resolve_relative_in_a_package_init():
    assert resolve_relative("visiondl_keras.models", True, "scratch", 1) == "visiondl_keras.models.scratch"
    assert resolve_relative("visiondl_keras.models", True, "runs", 2) == "visiondl_keras.runs"
    with pytest.raises(ValueError, match="beyond the top-level package"):
        resolve_relative("visiondl_keras.io", False, "x", 3)


def test_checker_reports_long_functions_and_modules():
    body = "".join(f"    x{i} = {i}\n" for i in range(85))
    src = f"def too_long():\n{body}\n\n# long: a flat table of cases reads better in one piece\ndef ok():\n{body}"
    src += f"\n\n@staticmethod\ndef also_ok():  # long: one step per line of the paper\n{body}"
    src += f"\n\ndef ok_too():\n    # long: generated\n{body}"
    method_body = "".join(f"        x{i} = {i}\n" for i in range(85))
    src += f"\n\nclass C:\n    def method(self):\n{method_body}"
    found = check_lengths(src, "visiondl_keras/x.py", max_module_lines=10_000)
    assert [(v.kind, v.message.split("()")[0]) for v in found] == [
        ("function-length", "function too_long"),
        ("function-length", "function method"),
    ], found
    assert found[0].line == 1
    short = check_lengths("def f():\n    return 1\n", "visiondl_keras/x.py")
    assert short == []
    long_module = check_lengths("x = 1\n" * 601, "visiondl_keras/x.py")
    assert [v.kind for v in long_module] == ["module-length"]
    assert "601 lines" in long_module[0].message
