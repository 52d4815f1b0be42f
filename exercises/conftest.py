"""The pytest plugin behind the graded exercises.

What it adds to ``pytest exercises``:

* ``@pytest.mark.points(n)``: what a test is worth (1 when a test has no marker);
* the ``ex`` fixture: the module under test, loaded from ``exercises/`` (default),
  ``solutions/`` (``--solutions``) or any folder (``--submission-dir DIR``, used by the instructor's
  grader and by the mutation meta-tests);
* one friendly line instead of a traceback when a function is still a stub, when a module cannot be
  imported, or when a test uses more than ``--exercise-timeout`` seconds of CPU time (an infinite loop);
* a score table per exercise and in total at the end, and ``grades.json`` (``--grades-json PATH``),
  rewritten after every test so that a run killed half-way still leaves its partial scores.

Nothing here needs to be edited by students.
"""

from __future__ import annotations

import importlib.util
import json
import os
import signal
import sys
import threading
import time
from contextlib import contextmanager
from pathlib import Path

import pytest

from visiondl_keras.course.checks import package_users
from visiondl_keras.course.sandbox import SandboxError

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

HERE = Path(__file__).resolve().parent
SOLUTIONS = HERE.parent / "solutions"


class ExerciseTimeout(BaseException):
    """A test ran past --exercise-timeout. A BaseException so that ``except Exception`` cannot swallow it."""


class SubmissionImportError(Exception):
    """An exercise module raised while being imported."""


class SubmissionMissing(SubmissionImportError):
    """An exercise module is not in the graded folder."""


class PackageImplementationUsed(Exception):
    """A graded function imports or calls the package's own implementation instead of the student's."""


class _Guarded:
    """The student's module, except the functions that use the package's implementation: those raise."""

    def __init__(self, inner, refused: dict):
        self._inner, self._refused = inner, refused

    def probe(self, fn, *args, **kwargs):
        """Run ``fn(module, *args, **kwargs)``: here, or in the grader's worker process (``--sandbox``)."""
        if hasattr(type(self._inner), "probe"):
            return self._inner.probe(fn, *args, **kwargs)
        return fn(self, *args, **kwargs)

    def __getattr__(self, name):
        if name in self._refused:
            raise PackageImplementationUsed(
                f"{name} uses the package's own implementation ({self._refused[name]}): 0 points; write it yourself.")
        return getattr(self._inner, name)


# --------------------------------------------------------------------------------------------- options
def pytest_addoption(parser):
    group = parser.getgroup("exercises", "graded exercises")
    group.addoption("--solutions", action="store_true", help="grade the reference answers in solutions/ instead of exercises/")
    group.addoption("--submission-dir", default=None, metavar="DIR", help="grade the exercise modules found in DIR")
    group.addoption("--grades-json", default="grades.json", metavar="PATH", help="where to write the scores (default: ./grades.json)")
    group.addoption(
        "--sandbox", action="store_true",
        help="run the graded functions in a separate, restricted process (what the instructor's grader does)",
    )
    group.addoption(
        "--exercise-timeout", type=float, default=60.0, metavar="S", help="CPU seconds one test may use before it fails (0: no limit; default 60)"
    )


def submission_dir(config) -> Path:
    """The folder whose ``exNN_*.py`` modules are graded."""
    if config.getoption("submission_dir"):
        return Path(config.getoption("submission_dir")).resolve()
    if config.getoption("solutions"):
        return SOLUTIONS
    return HERE


def exercise_name(path) -> str:
    """``.../test_ex03_schedules.py`` -> ``ex03_schedules``."""
    stem = Path(str(path)).stem
    return stem[len("test_") :] if stem.startswith("test_") else stem


def pytest_configure(config):
    config.addinivalue_line("markers", "points(n): points of a graded exercise test")
    if getattr(config.option, "tbstyle", "auto") == "auto":
        config.option.tbstyle = "short"
    if getattr(config.option, "reportchars", None) == "fE":  # pytest's default: one FAILED line per test
        config.option.reportchars = "E"  # the score table lists the failed tests per exercise instead
    config.pluginmanager.register(Scoreboard(config), "exercise-scoreboard")


# --------------------------------------------------------------------------------------------- loading
def load_submission(name: str, folder: Path):
    """Import ``folder/name.py`` as a fresh module; one-line :class:`SubmissionImportError` if that fails."""
    path = folder / f"{name}.py"
    if not path.is_file():
        raise SubmissionMissing(f"{name}.py not found in {folder}.")
    module_name = f"_graded_{name}"
    spec = importlib.util.spec_from_file_location(module_name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[module_name] = module
    try:
        spec.loader.exec_module(module)
    except SyntaxError as exc:
        sys.modules.pop(module_name, None)
        raise SubmissionImportError(f"{name}.py does not compile: {exc.msg} (line {exc.lineno}).") from None
    except Exception as exc:
        sys.modules.pop(module_name, None)
        raise SubmissionImportError(f"{name}.py raised while being imported: {type(exc).__name__}: {exc}") from None
    return module


@pytest.fixture(scope="module")
def ex(request):
    """The module under test for this test file (test_exNN_x.py grades exNN_x.py).

    With ``--sandbox`` it is a proxy whose functions run in a separate, restricted process
    (:mod:`visiondl_keras.course.sandbox`): this process then never imports the student's code, so
    only the values the functions return can affect a score.
    """
    name, folder = exercise_name(request.path), submission_dir(request.config)
    path = folder / f"{name}.py"
    refused = package_users(path.read_text(encoding="utf-8", errors="replace")) if path.is_file() else {}
    if not request.config.getoption("sandbox"):
        yield _Guarded(load_submission(name, folder), refused)
        return
    import visiondl_keras
    from visiondl_keras.course.sandbox import RemoteModule

    timeout = request.config.getoption("exercise_timeout") or 600.0
    package_dir = Path(visiondl_keras.__file__).resolve().parent
    remote = RemoteModule(path, forbidden=[HERE, SOLUTIONS, package_dir], timeout=timeout,
                          errors={"missing": SubmissionMissing, "import": SubmissionImportError, "timeout": ExerciseTimeout})
    yield _Guarded(remote, refused)
    remote.close()


@pytest.fixture
def package_function():
    """``package_function("visiondl_keras.data.augment", "mixup")``: the package's implementation to compare with.

    Skips the test (it then counts for nothing, in the maximum too) when that part of the package
    cannot be imported.
    """

    def get(module: str, name: str):
        try:
            mod = importlib.import_module(module)
        except ImportError as exc:
            pytest.skip(f"{module} is not available ({exc}); comparison with the package skipped")
        if not hasattr(mod, name):
            pytest.skip(f"{module}.{name} is not available; comparison with the package skipped")
        return getattr(mod, name)

    return get


# --------------------------------------------------------------------------------------------- timeouts
@contextmanager
def _time_limit(seconds: float):
    """Raise ExerciseTimeout in the test once it has used ``seconds`` of CPU time (POSIX main thread only).

    CPU time, not wall-clock time: an infinite loop burns CPU and is stopped, while a test that is
    merely slow because the machine is busy (a class graded in parallel) is not.
    """
    usable = seconds > 0 and hasattr(signal, "setitimer") and threading.current_thread() is threading.main_thread()
    if not usable:
        yield
        return

    def _on_alarm(signum, frame):
        raise ExerciseTimeout(f"used more than {seconds:g} s of CPU time (an infinite loop?)")

    previous = signal.signal(signal.SIGPROF, _on_alarm)
    signal.setitimer(signal.ITIMER_PROF, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_PROF, 0)
        signal.signal(signal.SIGPROF, previous)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_setup(item):
    with _time_limit(item.config.getoption("exercise_timeout")):
        yield


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_call(item):
    with _time_limit(item.config.getoption("exercise_timeout")):
        yield


# --------------------------------------------------------------------------------------------- reports
def _stub_location(excinfo) -> str:
    """``ex01_augmentation.random_crop`` for the frame that raised, when it is in a graded module."""
    for entry in reversed(excinfo.traceback):
        stem = Path(str(entry.path)).stem
        if stem.startswith("ex") and not stem.startswith("test_"):
            owner = entry.frame.f_locals.get("self")  # a method of a class to write: name the class too
            return f"{stem}.{type(owner).__name__}.{entry.name}" if owner is not None else f"{stem}.{entry.name}"
    return "this function"


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    report = outcome.get_result()
    report.exercise_reason = ""
    if not report.failed or call.excinfo is None:
        return
    exc = call.excinfo
    if exc.errisinstance(NotImplementedError):
        report.exercise_reason = "not implemented"
        report.longrepr = f"{_stub_location(exc)} is not implemented yet: {exc.value}"
    elif exc.errisinstance(SubmissionMissing):
        report.exercise_reason = "missing file"
        report.longrepr = str(exc.value)
    elif exc.errisinstance(SubmissionImportError):
        report.exercise_reason = "import error"
        report.longrepr = str(exc.value)
    elif exc.errisinstance(SandboxError):
        report.exercise_reason = "crashed"
        report.longrepr = f"{item.name}: {exc.value}"
    elif exc.errisinstance(PackageImplementationUsed):
        report.exercise_reason = "uses the package"
        report.longrepr = str(exc.value)
    elif exc.errisinstance(ExerciseTimeout):
        report.exercise_reason = "timeout"
        report.longrepr = f"{item.name}: {exc.value}"
    else:
        report.exercise_reason = "failed"


class Scoreboard:
    """Collects points per test and exercise; prints the table and writes grades.json."""

    def __init__(self, config):
        self.config = config
        self.tests: dict[str, dict] = {}
        self.started = time.time()
        self.complete = False

    @pytest.hookimpl(trylast=True)  # after -k / -m deselection
    def pytest_collection_modifyitems(self, session, config, items):
        for item in items:
            marker = item.get_closest_marker("points")
            points = float(marker.args[0]) if marker and marker.args else 1.0
            self.tests[item.nodeid] = {
                "nodeid": item.nodeid,
                "exercise": exercise_name(item.path),
                "points": points,
                "earned": 0.0,
                "outcome": "not run",
                "reason": "",
            }

    def pytest_deselected(self, items):
        for item in items:
            self.tests.pop(item.nodeid, None)

    def pytest_runtest_logreport(self, report):
        test = self.tests.get(report.nodeid)
        if test is None:
            return
        if report.failed:
            test["outcome"] = "failed"
            if not test["reason"]:
                test["reason"] = getattr(report, "exercise_reason", "") or "failed"
                if test["reason"] != "failed":  # a one-line message: keep it for the gradebook
                    test["message"] = str(report.longrepr)[:300]
            test["earned"] = 0.0
        elif report.skipped and test["outcome"] != "failed":
            test["outcome"] = "skipped"
            test["earned"] = 0.0
        elif report.when == "call" and report.passed and test["outcome"] != "failed":
            test["outcome"] = "passed"
            test["earned"] = test["points"]
        if report.when == "teardown":
            self.write()

    def summary(self) -> dict:
        exercises: dict[str, dict] = {}
        for test in self.tests.values():
            row = exercises.setdefault(
                test["exercise"], {"points": 0.0, "max": 0.0, "passed": 0, "failed": 0, "skipped": 0, "not_run": 0, "reasons": []}
            )
            if test["outcome"] == "skipped":  # a package comparison that could not run: not counted
                row["skipped"] += 1
                continue
            row["max"] += test["points"]
            row["points"] += test["earned"]
            key = {"passed": "passed", "failed": "failed"}.get(test["outcome"], "not_run")
            row[key] += 1
            if test["reason"] and test["reason"] != "failed" and test["reason"] not in row["reasons"]:
                row["reasons"].append(test["reason"])
        return {
            "submission": str(submission_dir(self.config)),
            "complete": self.complete,
            "total": sum(r["points"] for r in exercises.values()),
            "max": sum(r["max"] for r in exercises.values()),
            "duration_s": round(time.time() - self.started, 2),
            "exercises": dict(sorted(exercises.items())),
            "tests": list(self.tests.values()),
        }

    def write(self):
        path = Path(self.config.getoption("grades_json"))
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp = path.with_name(path.name + ".tmp")
            tmp.write_text(json.dumps(self.summary(), indent=2))
            os.replace(tmp, path)
        except OSError as exc:  # a read-only folder must not break the test run
            print(f"could not write {path}: {exc}", file=sys.stderr)

    def pytest_sessionfinish(self, session, exitstatus):
        self.complete = True
        if self.tests:
            self.write()

    @pytest.hookimpl(wrapper=True, tryfirst=True)  # outermost: the table comes after the failure summary
    def pytest_terminal_summary(self, terminalreporter, exitstatus, config):
        failed = terminalreporter.stats.get("failed", [])
        stubs = [r for r in failed if getattr(r, "exercise_reason", "") == "not implemented"]
        if stubs:  # one line per function still to write (below), not one section per test
            terminalreporter.stats["failed"] = [r for r in failed if all(r is not s for s in stubs)]
        try:
            result = yield
        finally:
            if stubs:
                terminalreporter.stats["failed"] = failed  # the final "N failed" line counts them
        if self.tests:
            self._print_table(terminalreporter, stubs)
        return result

    def _print_table(self, terminalreporter, stubs=()):
        s = self.summary()
        tr = terminalreporter
        if stubs:
            todo: dict[str, int] = {}
            for report in stubs:
                where = str(report.longrepr).split(" is not implemented yet", 1)[0]
                todo[where] = todo.get(where, 0) + 1
            tr.write_sep("=", "not implemented yet")
            for where, n in todo.items():
                tr.write_line(f"{where} is not implemented yet ({n} test{'s' if n > 1 else ''})")
            tr.write_line("replace the line that raises NotImplementedError with your code; the docstring above it "
                          "gives the contract and hints")
        tr.write_sep("=", f"exercise scores ({s['submission']})")
        tr.write_line(f"{'exercise':<32}{'points':^14}   {'tests passed':<14}notes")
        for name, row in s["exercises"].items():
            tests = f"{row['passed']}/{row['passed'] + row['failed'] + row['not_run']}"
            notes = ", ".join(row["reasons"])
            if row["skipped"]:
                notes = ", ".join(filter(None, [notes, f"{row['skipped']} skipped"]))
            tr.write_line(f"{name:<32}{_num(row['points']):>6} / {_num(row['max']):<5}   {tests:<14}{notes}")
        tr.write_line(f"{'TOTAL':<32}{_num(s['total']):>6} / {_num(s['max']):<5}")
        failed: dict[str, list[str]] = {}
        for test in self.tests.values():
            if test["outcome"] == "failed" and test["reason"] != "not implemented":  # those are listed above
                failed.setdefault(test["exercise"], []).append(test["nodeid"].split("::")[-1].removeprefix("test_"))
        if failed:
            tr.write_line("failed tests (run one with: pytest exercises/test_<exercise>.py -k <name>):")
            for name, tests in failed.items():
                shown = ", ".join(tests[:4]) + (f", +{len(tests) - 4} more" if len(tests) > 4 else "")
                tr.write_line(f"  {name}: {shown}")
        tr.write_line(f"scores written to {self.config.getoption('grades_json')}")


def _num(x: float) -> str:
    return f"{x:g}"
