"""Grades no submission can forge: hostile versions of one exercise module, graded as the instructor
grades (``grade_submission``: the tests in one process, the student's code in a restricted worker),
score no more than the untouched stub and leave no trace outside their scratch folder."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

import visiondl_keras.course.grading as grade
from visiondl_keras.course.checks import package_users

ROOT = Path(__file__).resolve().parents[1]
EXERCISE = "ex05_evaluation"
FUNCTIONS = ("confusion_matrix", "per_class_recall", "most_confident_mistakes")

pytestmark = pytest.mark.slow


def _functions(body: str) -> str:
    """The three graded functions, each with ``body`` (which may use ``args``)."""
    return "\n".join(f"def {name}(*args, **kwargs):\n{textwrap.indent(textwrap.dedent(body), '    ')}\n"
                     for name in FUNCTIONS)


def _hostile(tmp: Path) -> dict[str, str]:
    solution, tests = ROOT / "solutions" / f"{EXERCISE}.py", ROOT / "exercises" / f"test_{EXERCISE}.py"
    outside = tmp / "outside"
    full = '{"total": 14.0, "max": 14.0, "complete": true, "exercises": {}, "tests": []}'
    forge = f"""
import glob
def _forge():
    for p in glob.glob("/tmp/**/grades.json", recursive=True) + glob.glob("/tmp/*/grades.json"):
        with open(p, "w") as f:
            f.write({full!r})
"""
    return {
        "rewrites_grades_at_exit": forge + "import atexit\natexit.register(_forge)\n" + _functions("_forge()\nreturn None"),
        "writes_grades_at_import_and_exits": forge + "_forge()\nimport os\nos._exit(0)\n",
        "patches_numpy_comparisons": (
            "import numpy\nnumpy.array_equal = lambda *a, **k: True\nnumpy.allclose = lambda *a, **k: True\n"
            "numpy.testing.assert_allclose = lambda *a, **k: None\n" + _functions("return numpy.zeros(1)")),
        "patches_pytest": ("import sys, types\nsys.modules['pytest'] = types.ModuleType('pytest')\n"
                           + _functions("return None")),
        "prints_a_fake_score_table": ("print('TOTAL 126 / 126'); print('14 / 14 ex05_evaluation')\n"
                                      + _functions("print('PASSED 14 / 14')\nreturn [[1]]")),
        "reads_the_solutions": _functions(f"""
            ns = {{}}
            exec(open({str(solution)!r}).read(), ns)
            return ns[__import__('inspect').currentframe().f_code.co_name](*args, **kwargs)"""),
        "reads_the_tests": _functions(f"return open({str(tests)!r}).read()"),
        "calls_the_package_hidden_from_the_parser": _functions("""
            import importlib
            d = importlib.import_module("visiondl_" + "keras.evaluation.diagnostics")
            return d.confusion_matrices(*args, **kwargs)"""),
        "writes_outside_its_folder": _functions(f"open({str(outside / 'written.txt')!r}, 'w').write('x')\nreturn None"),
        "exhausts_memory": _functions("import numpy\nreturn numpy.ones(10**11)"),
        "burns_cpu": _functions("while True:\n    pass"),
        "starts_processes": _functions(f"""
            import subprocess, os
            try:
                subprocess.run(["touch", {str(outside / 'spawned.txt')!r}])
            except Exception:
                pass
            os.fork()"""),
        "exits_with_status_zero": _functions("import os\nos._exit(0)"),
        "kills_the_grader": _functions("import os, signal\nos.kill(os.getppid(), signal.SIGKILL)"),
        "returns_an_object_equal_to_everything": (
            "class Anything:\n    def __eq__(self, other): return True\n    def __array__(self, *a, **k):\n"
            "        raise TypeError\n" + _functions("return Anything()")),
    }


@pytest.fixture(scope="module")
def baseline(tmp_path_factory):
    folder = tmp_path_factory.mktemp("stub")
    shutil.copy(grade.STUBS_DIR / f"{EXERCISE}.py", folder / f"{EXERCISE}.py")
    result = grade.grade_submission(folder, ROOT / "exercises", timeout=3, select=[f"test_{EXERCISE}.py"])
    assert result["status"] == "ok" and result["max"] > 0
    return result["total"]


@pytest.mark.parametrize("name", sorted(_hostile(Path("/unused"))))
def test_a_hostile_submission_scores_no_more_than_the_stub(name, tmp_path, baseline):
    folder = tmp_path / "submission"
    folder.mkdir()
    (folder / f"{EXERCISE}.py").write_text(_hostile(tmp_path)[name])
    result = grade.grade_submission(folder, ROOT / "exercises", timeout=3, submission_timeout=240,
                                    select=[f"test_{EXERCISE}.py"])
    assert result["total"] <= baseline, (name, result["total"], result["output"][-2000:])
    assert result["status"] in ("ok", "crashed", "timeout")
    assert not (tmp_path / "outside").exists() or not any((tmp_path / "outside").iterdir())


def test_the_grader_refuses_functions_that_use_the_package(tmp_path):
    folder = tmp_path / "submission"
    folder.mkdir()
    source = (ROOT / "solutions" / f"{EXERCISE}.py").read_text() + textwrap.dedent("""
        from visiondl_keras.evaluation import diagnostics as _d

        def per_class_recall(cm):
            return _d.per_class_recall(cm)
        """)
    (folder / f"{EXERCISE}.py").write_text(source)
    assert set(package_users(source)) >= {"per_class_recall"}
    result = grade.grade_submission(folder, ROOT / "exercises", timeout=10, select=[f"test_{EXERCISE}.py"])
    refused = [t for t in result["tests"] if t.get("reason") == "uses the package"]
    assert refused and all("per_class_recall" in t["message"] for t in refused), result["tests"]
    assert 0 < result["total"] < result["max"]
    # the student's own `pytest exercises` (in-process, no worker) gives the same points for the same code
    grades = tmp_path / "grades.json"
    r = subprocess.run([sys.executable, "-m", "pytest", str(ROOT / "exercises" / f"test_{EXERCISE}.py"), "-q",
                        "-p", "no:cacheprovider", "--submission-dir", str(folder), "--grades-json", str(grades)],
                       capture_output=True, text=True, cwd=tmp_path)
    assert json.loads(grades.read_text())["total"] == result["total"], r.stdout[-2000:]
