"""Static checks of a submission: which exercise functions use the package's own implementation.

An exercise asks the student to write a function the package already has (``confusion_matrix``,
``mixup``, ...). A submission that imports ``visiondl_keras`` and calls that code would pass every
test without any work, so both ``pytest exercises`` and the grader refuse such functions: each one
scores 0 with a one-line message. The check reads the source with :mod:`ast` (nothing is run); the
grader's worker process also refuses to import ``visiondl_keras`` at run time, which catches
imports hidden from the parser (``importlib.import_module(name)`` with a computed name).
"""

from __future__ import annotations

import ast

PACKAGE = "visiondl_keras"


def _is_package(name: str | None) -> bool:
    return bool(name) and (name == PACKAGE or name.startswith(PACKAGE + "."))


def _package_bindings(tree: ast.AST) -> dict[str, str]:
    """Names bound anywhere by an import of the package (``name -> "line N: statement"``)."""
    bound = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if _is_package(alias.name):
                    bound[alias.asname or alias.name.split(".")[0]] = f"line {node.lineno}: import {alias.name}"
        elif isinstance(node, ast.ImportFrom) and not node.level and _is_package(node.module):
            for alias in node.names:
                bound[alias.asname or alias.name] = f"line {node.lineno}: from {node.module} import {alias.name}"
        elif isinstance(node, ast.Call) and _dynamic_import(node):
            why = f"line {node.lineno}: imports {_dynamic_import(node)}"
            bound[f"<dynamic import at line {node.lineno}>"] = why
        if isinstance(node, ast.Assign) and isinstance(node.value, ast.Call) and _dynamic_import(node.value):
            for target in node.targets:
                for n in ast.walk(target):
                    if isinstance(n, ast.Name):
                        bound[n.id] = f"line {node.lineno}: imports {_dynamic_import(node.value)}"
    return bound


def _dynamic_import(call: ast.Call) -> str:
    """The package module a call like ``importlib.import_module("visiondl_keras...")`` imports, or ``""``."""
    func = call.func
    called = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")
    literal = next((a.value for a in call.args[:1] if isinstance(a, ast.Constant) and isinstance(a.value, str)), "")
    return literal if called in ("import_module", "__import__") and _is_package(literal) else ""


def _referenced_names(node: ast.AST) -> set[str]:
    return {n.id for n in ast.walk(node) if isinstance(n, ast.Name)}


def package_users(source: str) -> dict[str, str]:
    """The module-level functions of ``source`` that use the package, with the import that shows it.

    A function uses the package when it *is* a name imported from it, when its body refers to such
    a name or imports the package itself, or when it calls another function that does.

    Returns:
        ``{function name: "line N: from visiondl_keras... import ..."}`` (empty for a clean module or
        one that does not parse).

    Example:
        >>> package_users("from visiondl_keras.evaluation.diagnostics import confusion_matrix\\n"
        ...               "def per_class_recall(cm):\\n    return cm")
        {'confusion_matrix': 'line 1: from visiondl_keras.evaluation.diagnostics import confusion_matrix'}
    """
    try:
        tree = ast.parse(source)
    except (SyntaxError, ValueError):
        return {}
    bound = _package_bindings(tree)
    if not bound:
        return {}
    functions = {n.name: n for n in tree.body if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef))}
    users = {name: why for name, why in bound.items() if not name.startswith("<")}
    for name, node in functions.items():
        inner = _package_bindings(node)
        if inner:
            users[name] = next(iter(inner.values()))
    changed = True
    while changed:
        changed = False
        for name, node in functions.items():
            if name in users:
                continue
            hit = next((r for r in sorted(_referenced_names(node)) if r in users or r in bound), None)
            if hit is not None:
                users[name] = users.get(hit) or bound[hit]
                changed = True
    return users
