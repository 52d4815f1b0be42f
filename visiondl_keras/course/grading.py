"""Instructor tools for the graded exercises: grade a class, reset ``exercises/`` to the stubs.

The command line is ``python -m visiondl_keras grade`` (:mod:`visiondl_keras.cli.grade`); the
exercise, solution and test folders are arguments, by default ``exercises/`` and ``solutions/``
under the current directory. The pristine stubs are package data (``visiondl_keras/course/stubs/``),
so an installed package can reset a student's folder.

Usage::

    python -m visiondl_keras grade SUBMISSIONS_DIR --out gradebook.csv   # grade every student
    python -m visiondl_keras grade --reset                                # exercises/ back to the stubs
    python -m visiondl_keras grade --reset --only ex03_schedules          # just one exercise

**Grading.** ``SUBMISSIONS_DIR`` holds one entry per student: a folder (their copy of ``exercises/``,
or of the whole repository, or any folder that contains the ``exNN_*.py`` modules) or a ``.zip`` of
one. Each student is graded by a pytest process of its own running the *instructor's* graded tests
(``exercises/test_*.py`` of the course folder, never the student's copies) with ``--sandbox``: that
process never imports the student's code. The student's functions run in a separate worker process
(:mod:`visiondl_keras.course.sandbox`) with limits on CPU time per call (``--timeout``), memory,
processes and file size, no writes outside a scratch folder, no reads of the tests or the solutions,
no new processes or sockets; it only returns values, and every pass/fail decision and point is made
in the grading process. A rewritten grades file, an early exit, a patched pytest or numpy, a printed
score table or a returned object that claims to equal anything therefore changes nothing
(``tests/test_grading_security.py`` tries each). Functions that import or call the package's own
implementation of the exercise score 0 (:mod:`visiondl_keras.course.checks`). An infinite loop, a
crash, a syntax error or a missing file costs that student the affected points and shows in the
``notes`` column; a wall-clock limit for the whole submission (``--submission-timeout``) stops the
rest. The gradebook has one row per student: status, total, maximum, percent, one column per
exercise and notes; ``gradebook.json`` beside it keeps every test's outcome.

The worker runs as your user, fenced by a Python audit hook and resource limits: for a class you
do not trust, grade in a container or a throw-away account as well.

**Reset.** ``--reset`` copies the pristine stubs shipped in ``visiondl_keras/course/stubs/`` over
``exercises/exNN_*.py``; a file that differs from its stub is first copied to
``exercises/.backup/<time>/`` (``--no-backup`` skips that).

**Maintainers.** The stubs are generated from ``solutions/`` (same docstrings, bodies replaced by
``raise NotImplementedError``): edit a solution, then run ``python -m visiondl_keras grade
--write-stubs`` in the repository; a meta-test checks that ``exercises/``, the pristine copy and ``solutions/`` agree.
"""

from __future__ import annotations

import ast
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import zipfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from visiondl_keras.errors import ConfigError, VisionDLError
from visiondl_keras.io import atomic_write_text, write_csv, write_json

STUBS_DIR = Path(__file__).resolve().parent / "stubs"
EXERCISE_PATTERN = re.compile(r"^ex\d\d_\w+\.py$")
STUB_MESSAGE = "replace this line with your code; the docstring above gives the contract and hints."


# --------------------------------------------------------------------------------------------
# Stubs
# --------------------------------------------------------------------------------------------


def exercise_files(folder: str | os.PathLike) -> list[Path]:
    """The ``exNN_*.py`` modules of a folder, sorted."""
    folder = Path(folder)
    return sorted(p for p in folder.glob("ex*.py") if EXERCISE_PATTERN.match(p.name)) if folder.is_dir() else []


def stub_source(solution_source: str) -> str:
    """The student stub of a solution module: same text, each public function's body replaced.

    Every public top-level function, and every method of a public class, keeps its signature and
    docstring and gets the body ``raise NotImplementedError(STUB_MESSAGE)``; private helpers
    (``_name``) are dropped; imports stay
    (an import the stub no longer uses is marked ``# noqa: F401``, since the student will need it).
    """
    tree = ast.parse(solution_source)
    lines = solution_source.splitlines()
    replacements: list[tuple[int, int, list[str]]] = []  # (first line, last line) 1-based inclusive
    for node in tree.body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            replacements.append(_stub_function(node, lines))
        elif isinstance(node, ast.ClassDef) and not node.name.startswith("_"):
            # a public class (a Keras layer or callback to write): every method is stubbed, private
            # helpers are dropped, the class statement, docstring and signatures stay
            replacements += [_stub_function(m, lines) for m in node.body
                             if isinstance(m, (ast.FunctionDef, ast.AsyncFunctionDef))]
    for first, last, new in sorted(replacements, reverse=True):
        lines[first - 1 : last] = new
    text = "\n".join(lines).rstrip() + "\n"
    return _mark_unused_imports(text)


def _stub_function(node, lines: list[str]) -> tuple[int, int, list[str]]:
    """The replacement for one function or method: its body becomes ``raise NotImplementedError``
    (docstring kept); a private helper (``_name``, not ``__dunder__``) disappears with its blank lines."""
    first = min([node.lineno] + [d.lineno for d in node.decorator_list])
    if node.name.startswith("_") and not (node.name.startswith("__") and node.name.endswith("__")):
        last = node.end_lineno
        while last < len(lines) and not lines[last].strip():  # and the blank lines after it
            last += 1
        return first, last, []
    body = node.body
    has_doc = isinstance(body[0], ast.Expr) and isinstance(getattr(body[0], "value", None), ast.Constant)
    if has_doc and len(body) == 1:
        start = body[0].end_lineno + 1
    else:
        start = body[1].lineno if has_doc else body[0].lineno
    indent = " " * (body[0].col_offset)
    return start, node.end_lineno, [f'{indent}raise NotImplementedError("{STUB_MESSAGE}")']


def _mark_unused_imports(text: str) -> str:
    tree = ast.parse(text)
    used = {n.id for n in ast.walk(tree) if isinstance(n, ast.Name)}
    lines = text.splitlines()
    for node in tree.body:
        if isinstance(node, (ast.Import, ast.ImportFrom)) and not (isinstance(node, ast.ImportFrom) and node.module == "__future__"):
            names = [(a.asname or a.name).split(".")[0] for a in node.names]
            if not any(name in used for name in names) and "noqa" not in lines[node.lineno - 1]:
                lines[node.lineno - 1] += "  # noqa: F401 (you will need it)"
    return "\n".join(lines) + "\n"


def write_stubs(solutions_dir: str | os.PathLike, targets: list[str | os.PathLike]) -> list[Path]:
    """Regenerate the stub of every solution module into each target folder.

    Args:
        solutions_dir: the folder of the reference solutions ``exNN_*.py``.
        targets: folders to write the stubs into (e.g. ``exercises/`` and :data:`STUBS_DIR`).

    Returns:
        The files written.

    Raises:
        ConfigError: ``solutions_dir`` holds no ``exNN_*.py`` module.
    """
    solutions = exercise_files(solutions_dir)
    if not solutions:
        raise ConfigError(f"{solutions_dir}: no exNN_*.py solutions there; pass the solutions/ folder.")
    written = []
    for solution in solutions:
        text = stub_source(solution.read_text())
        for target in targets:
            path = Path(target) / solution.name
            path.parent.mkdir(parents=True, exist_ok=True)
            atomic_write_text(path, text)
            written.append(path)
    return written


def reset_exercises(exercises_dir: str | os.PathLike, only: list[str] | None = None, backup: bool = True) -> list[Path]:
    """Copy the pristine stubs over ``exercises_dir/exNN_*.py``; returns the files that changed.

    Args:
        exercises_dir: the student's ``exercises/`` folder.
        only: exercise names (``"ex03_schedules"`` or ``"ex03"``) to reset; None resets all.
        backup: copy each file that differs from its stub to ``exercises_dir/.backup/<time>/`` first.

    Raises:
        ConfigError: no stubs are installed, or a name in ``only`` matches no exercise.
    """
    stubs = exercise_files(STUBS_DIR)
    if not stubs:
        raise ConfigError(f"no exercise stubs found in {STUBS_DIR}; reinstall the package.")
    if only:
        wanted = [s for s in stubs if any(s.stem == name or s.stem.startswith(f"{name}_") for name in only)]
        unknown = [name for name in only if not any(s.stem == name or s.stem.startswith(f"{name}_") for s in stubs)]
        if unknown:
            raise ConfigError(f"unknown exercise {', '.join(unknown)}; choose from {', '.join(s.stem for s in stubs)}.")
        stubs = wanted
    exercises_dir = Path(exercises_dir)
    exercises_dir.mkdir(parents=True, exist_ok=True)
    backup_dir = exercises_dir / ".backup" / time.strftime("%Y%m%d-%H%M%S")
    changed = []
    for stub in stubs:
        target = exercises_dir / stub.name
        if target.is_file() and target.read_bytes() == stub.read_bytes():
            continue
        if backup and target.is_file():
            backup_dir.mkdir(parents=True, exist_ok=True)
            shutil.copy2(target, backup_dir / stub.name)
        shutil.copyfile(stub, target)
        changed.append(target)
    return changed


# --------------------------------------------------------------------------------------------
# Points, read from the graded tests
# --------------------------------------------------------------------------------------------

TABLE_START = "<!-- points table: written by `python -m visiondl_keras grade --write-stubs`; do not edit -->"
TABLE_END = "<!-- end of the points table -->"


def _test_points(node: ast.FunctionDef) -> float:
    """What one graded test is worth: its ``@pytest.mark.points(n)`` (1 without a marker)."""
    for deco in node.decorator_list:
        func = deco.func if isinstance(deco, ast.Call) else deco
        if isinstance(func, ast.Attribute) and func.attr == "points" and isinstance(deco, ast.Call) and deco.args:
            value = deco.args[0]
            if isinstance(value, ast.Constant) and isinstance(value.value, (int, float)):
                return float(value.value)
    return 1.0


def exercise_points(tests_dir: str | os.PathLike) -> dict[str, float]:
    """The maximum points of every exercise, summed from the ``points`` markers of its graded tests.

    Read from the test files (nothing is run), so the tables in the documentation and the score
    table of ``pytest exercises`` cannot disagree.

    Args:
        tests_dir: the folder of the graded tests (``exercises/``).

    Returns:
        ``{"ex01_augmentation": 27.0, ...}``, sorted by exercise.
    """
    points = {}
    for path in sorted(Path(tests_dir).glob("test_ex*.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        tests = [n for n in tree.body if isinstance(n, ast.FunctionDef) and n.name.startswith("test_")]
        points[path.stem[len("test_"):]] = sum(_test_points(n) for n in tests)
    return points


def _exercise_summary(stub: Path) -> tuple[str, str]:
    """``("01 data and baseline augmentation", "`random_crop`, ...")`` from a stub's docstring and names."""
    tree = ast.parse(stub.read_text(encoding="utf-8"))
    doc = (ast.get_docstring(tree) or "").splitlines()[0] if ast.get_docstring(tree) else ""
    match = re.search(r"\(lesson (\d+), ([^)]*)\)", doc)
    lesson = f"{match.group(1)} {match.group(2)}" if match else ""
    names = []
    for node in tree.body:
        if isinstance(node, ast.FunctionDef) and not node.name.startswith("_"):
            builds_a_model = node.returns is not None and "Model" in ast.unparse(node.returns)
            names.append(f"`{node.name}`" + (" (Keras model)" if builds_a_model else ""))
        elif isinstance(node, ast.ClassDef) and not node.name.startswith("_"):
            bases = " ".join(ast.unparse(b) for b in node.bases)
            kind = "Keras layer" if "Layer" in bases else "Keras callback" if "Callback" in bases else "class"
            names.append(f"`{node.name}` ({kind})")
    return lesson, ", ".join(names)


def points_table(tests_dir: str | os.PathLike, stubs_dir: str | os.PathLike = STUBS_DIR) -> str:
    """The Markdown table of exercises, functions to write and points (``exercises/README.md`` holds it).

    Args:
        tests_dir: the folder of the graded tests.
        stubs_dir: the exercise stubs (their docstrings name the lesson, their definitions the functions).

    Returns:
        The table, one row per exercise and a total row, ending with a newline.
    """
    points = exercise_points(tests_dir)
    rows = ["| lesson | exercise module | functions to write | points |", "|---|---|---|---:|"]
    for stub in exercise_files(stubs_dir):
        lesson, names = _exercise_summary(stub)
        rows.append(f"| {lesson} | `{stub.name}` | {names} | {_num(points.get(stub.stem, 0.0))} |")
    rows.append(f"| | | **total** | **{_num(sum(points.values()))}** |")
    return "\n".join(rows) + "\n"


def write_points_table(readme: str | os.PathLike, tests_dir: str | os.PathLike,
                       stubs_dir: str | os.PathLike = STUBS_DIR) -> bool:
    """Replace the table between :data:`TABLE_START` and :data:`TABLE_END` in ``readme``.

    Returns:
        True when the file changed.

    Raises:
        ConfigError: ``readme`` has no such markers.
    """
    readme = Path(readme)
    text = readme.read_text(encoding="utf-8")
    if TABLE_START not in text or TABLE_END not in text:
        raise ConfigError(f"{readme}: no points table markers ({TABLE_START!r} ... {TABLE_END!r}).")
    head, rest = text.split(TABLE_START, 1)
    _, tail = rest.split(TABLE_END, 1)
    new = f"{head}{TABLE_START}\n{points_table(tests_dir, stubs_dir)}{TABLE_END}{tail}"
    if new != text:
        atomic_write_text(readme, new)
    return new != text


# --------------------------------------------------------------------------------------------
# Grading
# --------------------------------------------------------------------------------------------


def default_tests_dir() -> Path:
    """The graded tests: ``./exercises`` of the current directory.

    Returns:
        The absolute path of ``./exercises``.

    Raises:
        ConfigError: there is no ``./exercises/conftest.py``.
    """
    candidate = Path.cwd() / "exercises"
    if not (candidate / "conftest.py").is_file():
        raise ConfigError(f"cannot find the graded tests ({candidate / 'conftest.py'}); run from the course folder "
                          "or pass the tests folder (--tests).")
    return candidate


def find_submission(path: str | os.PathLike) -> Path | None:
    """The folder of a student's entry that holds the ``exNN_*.py`` modules (the shallowest one), or None."""
    path = Path(path)
    if exercise_files(path / "exercises"):
        return path / "exercises"
    if exercise_files(path):
        return path
    found = sorted((p.parent for p in path.rglob("ex*.py") if EXERCISE_PATTERN.match(p.name)), key=lambda p: (len(p.parts), str(p)))
    return found[0] if found else None


def _safe_extract(archive: Path, dest: Path) -> None:
    with zipfile.ZipFile(archive) as zf:
        for member in zf.namelist():
            target = (dest / member).resolve()
            if not target.is_relative_to(dest.resolve()):
                raise ConfigError(f"{archive}: unsafe path {member!r} in the archive.")
        zf.extractall(dest)


def _kill(proc: subprocess.Popen) -> None:
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError, AttributeError):
        proc.kill()


def grade_submission(
    submission: str | os.PathLike,
    tests_dir: str | os.PathLike | None = None,
    timeout: float = 20.0,
    submission_timeout: float = 600.0,
    select: list[str] | None = None,
    extra_args: list[str] | None = None,
) -> dict:
    """Grade one folder of exercise modules in a subprocess; never raises for the submission's faults.

    Args:
        submission: folder holding the student's ``exNN_*.py``.
        tests_dir: folder of the graded tests (default: :func:`default_tests_dir`).
        timeout: CPU seconds per test.
        submission_timeout: seconds for the whole run; past it the process is killed and the scores
            of the tests that finished are kept.
        select: test files to run (names inside ``tests_dir``); default all ``test_*.py``.
        extra_args: more pytest arguments (e.g. ``["-k", "not package"]``).

    Returns:
        The ``grades.json`` content (``total``, ``max``, ``exercises``, ``tests``) plus ``status``
        (``ok``, ``timeout`` or ``crashed``), ``returncode`` and ``output`` (the last lines of pytest's output).
    """
    tests_dir = Path(tests_dir).resolve() if tests_dir else default_tests_dir()
    targets = [str(tests_dir / name) for name in select] if select else [str(tests_dir)]
    with tempfile.TemporaryDirectory(prefix="visiondl-grade-") as tmp:
        grades_path = Path(tmp) / "grades.json"
        cmd = [
            sys.executable, "-m", "pytest", *targets, "-q", "-p", "no:cacheprovider", "--color=no",
            "--submission-dir", str(Path(submission).resolve()), "--grades-json", str(grades_path), "--sandbox",
            "--exercise-timeout", str(timeout), "--rootdir", str(tests_dir.parent), *(extra_args or []),
        ]  # fmt: skip
        env = dict(os.environ, PYTHONDONTWRITEBYTECODE="1", TF_CPP_MIN_LOG_LEVEL="2")
        proc = subprocess.Popen(cmd, cwd=tmp, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True)
        killed = False
        try:
            output, _ = proc.communicate(timeout=submission_timeout)
        except subprocess.TimeoutExpired:
            killed = True
            _kill(proc)
            output, _ = proc.communicate()
        try:
            grades = json.loads(grades_path.read_text())
        except (OSError, ValueError):
            grades = {"total": 0.0, "max": 0.0, "exercises": {}, "tests": [], "complete": False}
    if killed:
        status = "timeout"
    elif grades.get("complete") and proc.returncode in (0, 1):
        status = "ok"
    else:
        status = "crashed"
    grades.update(status=status, returncode=proc.returncode, output="\n".join((output or "").splitlines()[-40:]))
    return grades


def _notes(grades: dict) -> str:
    notes = []
    if grades["status"] == "timeout":
        notes.append("whole submission killed after the time limit")
    elif grades["status"] == "crashed":
        notes.append(f"pytest crashed (exit status {grades['returncode']})")
    for name, row in grades.get("exercises", {}).items():
        reasons = [r for r in row.get("reasons", []) if r != "not implemented"]
        if reasons == ["missing file"]:
            notes.append(f"{name}: file missing")
        elif reasons:
            messages = {t.get("message", "") for t in grades.get("tests", []) if t["exercise"] == name and t.get("reason") in reasons}
            detail = next((m for m in sorted(messages) if m), "")
            notes.append(f"{name}: {', '.join(reasons)}" + (f" ({detail})" if detail else ""))
        if row.get("not_run"):
            notes.append(f"{name}: {row['not_run']} tests not run")
    return "; ".join(notes)


def grade_class(
    submissions_dir: str | os.PathLike,
    out: str | os.PathLike = "gradebook.csv",
    tests_dir: str | os.PathLike | None = None,
    timeout: float = 20.0,
    submission_timeout: float = 600.0,
    jobs: int = 1,
    quiet: bool = False,
) -> list[dict]:
    """Grade every student of ``submissions_dir``; writes ``out`` (CSV) and its ``.json`` twin.

    Args:
        submissions_dir: one folder or ``.zip`` per student.
        out: the gradebook CSV (every test's outcome goes to the ``.json`` beside it).
        tests_dir: folder of the graded tests (default: :func:`default_tests_dir`).
        timeout: CPU seconds per test.
        submission_timeout: wall-clock seconds for one student's whole run.
        jobs: students graded in parallel.
        quiet: print nothing (else one line per student).

    Returns:
        The gradebook rows: ``student``, ``status``, ``total``, ``max``, ``percent``, one column
        per exercise and ``notes``.

    Raises:
        ConfigError: ``submissions_dir`` is not a folder or holds no submissions, or the tests
            cannot be found.

    Example:
        >>> grade_class("submissions", "gradebook.csv", jobs=2)  # doctest: +SKIP
    """
    submissions_dir = Path(submissions_dir)
    if not submissions_dir.is_dir():
        raise ConfigError(f"{submissions_dir}: not a folder; pass the folder that holds one folder or .zip per student.")
    tests_dir = Path(tests_dir).resolve() if tests_dir else default_tests_dir()
    names = sorted(p.stem for p in tests_dir.glob("test_ex*.py"))
    exercises = [n[len("test_") :] for n in names]
    entries = sorted(p for p in submissions_dir.iterdir() if not p.name.startswith(".") and (p.is_dir() or p.suffix == ".zip"))
    if not entries:
        raise ConfigError(f"{submissions_dir}: no student folders or .zip files in it.")

    def grade_one(entry: Path) -> tuple[dict, dict]:
        student = entry.stem if entry.suffix == ".zip" else entry.name
        with tempfile.TemporaryDirectory(prefix="visiondl-submission-") as tmp:
            folder = entry
            try:
                if entry.suffix == ".zip":
                    folder = Path(tmp)
                    _safe_extract(entry, folder)
                found, problem = find_submission(folder), f"no exNN_*.py modules found in {entry.name}"
            except (OSError, zipfile.BadZipFile, VisionDLError) as exc:
                found, problem = None, f"cannot read the submission: {exc}"
            if found is None:
                grades = {"status": "missing", "total": 0.0, "max": 0.0, "exercises": {}, "tests": [], "returncode": None}
                note = problem
            else:
                grades = grade_submission(found, tests_dir, timeout, submission_timeout)
                note = _notes(grades)
        row = {"student": student, "status": grades["status"], "total": _num(grades["total"]), "max": _num(grades["max"])}
        row["percent"] = f"{100 * grades['total'] / grades['max']:.1f}" if grades["max"] else "0.0"
        for name in exercises:
            ex = grades["exercises"].get(name)
            row[name] = _num(ex["points"]) if ex else "0"
        row["notes"] = note
        if not quiet:
            print(f"{student:<24} {row['total']:>6} / {row['max']:<6} {row['status']:<8} {note}", flush=True)
        return row, {"student": student, "output": "", **grades}

    with ThreadPoolExecutor(max_workers=max(1, jobs)) as pool:
        results = list(pool.map(grade_one, entries))
    rows = [r for r, _ in results]
    fieldnames = ["student", "status", "total", "max", "percent", *exercises, "notes"]
    out = Path(out)
    write_csv(out, rows, fieldnames=fieldnames)
    write_json(out.with_suffix(".json"), {"tests_dir": str(tests_dir), "timeout_s": timeout, "students": [d for _, d in results]})
    return rows


def _num(x) -> str:
    return f"{float(x):g}"
