"""Meta-tests of the graded exercises: the tests grade what they should, and the grader survives bad code.

* untouched stubs score 0 (every failure is the one-line "not implemented yet" message);
* the reference solutions score full marks, with every comparison against the package run;
* every mutant in ``tests/mutants/`` (a plausible wrong answer) loses points from the contract tests
  alone: the tests that compare with the package (``*matches_the_package*``) are not run for mutants,
  so a mutant that only they would catch counts as surviving;
* the points table of ``exercises/README.md`` is the one the graded tests define, and ``grade`` (the
  sandboxed grader) gives a submission the same points as the student's own ``pytest exercises``;
* ``exercises/``, the pristine stubs and ``solutions/`` agree (the stubs are generated from the solutions);
* ``python -m visiondl_keras grade`` grades a class where one submission loops forever, one does not
  compile, one kills its own process and one is missing, and ``--reset`` restores the stubs.

The graded runs are subprocesses (as for students), started up front in parallel; the tests that need
them are marked ``slow`` (a few minutes of CPU time in all, most of it Keras start-up and the mutants).
"""

from __future__ import annotations

import ast
import csv
import json
import os
import shutil
import subprocess
import sys
import textwrap
import zipfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

import visiondl_keras.course.grading as grade
from visiondl_keras.cli.main import main
from visiondl_keras.errors import ConfigError

ROOT = Path(__file__).resolve().parents[1]
EXERCISES = ROOT / "exercises"
SOLUTIONS = ROOT / "solutions"
MUTANTS = Path(__file__).resolve().parent / "mutants"
NAMES = [p.stem for p in grade.exercise_files(SOLUTIONS)]
MUTANT_FILES = sorted(MUTANTS.glob("ex*__*.py"))
PACKAGE_TESTS = "matches_the_package"  # the name every comparison with the package's implementation carries
WITHOUT_PACKAGE = ["-k", f"not {PACKAGE_TESTS}"]
MIN_MUTANTS = 5


def _mutant_target(path: Path) -> str:
    return path.stem.split("__")[0]


def _mutant_doc(path: Path) -> str:
    return (ast.get_docstring(ast.parse(path.read_text())) or "").splitlines()[0]


def _build_mutant(path: Path, folder: Path) -> Path:
    name = _mutant_target(path)
    folder.mkdir(parents=True, exist_ok=True)
    source = (SOLUTIONS / f"{name}.py").read_text() + "\n\n# ---- mutant: replaces the functions above ----\n" + path.read_text()
    (folder / f"{name}.py").write_text(source)
    return folder


# Mutants are graded by pytest.main() called in a loop in one subprocess per group of exercises:
# the same tests and plugin as a student's run, without paying for Python and Keras start-up 50 times.
_MUTANT_LOOP = """
import json, sys, pytest
for folder, tests, out in json.loads(sys.argv[1]):
    pytest.main([tests, "-q", "-p", "no:cacheprovider", "--submission-dir", folder, "--grades-json", out,
                 "--exercise-timeout", "60", "-k", "not matches_the_package"])
"""


def _grade_mutants(paths: list[Path], base: Path) -> dict:
    plan = []
    for path in paths:
        name = _mutant_target(path)
        folder = _build_mutant(path, base / path.stem)
        plan.append((str(folder), str(EXERCISES / f"test_{name}.py"), str(base / f"{path.stem}.json")))
    proc = subprocess.run(
        [sys.executable, "-c", _MUTANT_LOOP, json.dumps(plan)], cwd=base, capture_output=True, text=True, timeout=1800
    )
    results = {}
    for path, (_, _, out) in zip(paths, plan):
        try:
            results[path.stem] = json.loads(Path(out).read_text())
        except OSError:
            results[path.stem] = {"complete": False, "exercises": {}, "output": proc.stdout[-3000:] + proc.stderr[-3000:]}
    return results


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """Grade the stubs and the solutions (as the grader does) and every mutant, two processes at a time."""
    base = tmp_path_factory.mktemp("meta")
    first = [p for p in MUTANT_FILES if _mutant_target(p) <= "ex04"]  # the Keras exercise in one group
    rest = [p for p in MUTANT_FILES if p not in first]
    with ThreadPoolExecutor(max_workers=2) as pool:
        stubs = pool.submit(grade.grade_submission, grade.STUBS_DIR, EXERCISES, 120)
        solutions = pool.submit(grade.grade_submission, SOLUTIONS, EXERCISES, 120)
        mutants_a = pool.submit(_grade_mutants, first, base)
        mutants_b = pool.submit(_grade_mutants, rest, base)
        return {"stubs": stubs.result(), "solutions": solutions.result(), **mutants_a.result(), **mutants_b.result()}


def test_every_exercise_has_tests_and_mutants():
    assert len(NAMES) >= 9, NAMES
    assert [n[:4] for n in NAMES] == [f"ex{i:02d}" for i in range(1, len(NAMES) + 1)]
    for name in NAMES:
        assert (EXERCISES / f"test_{name}.py").is_file(), f"no graded tests for {name}"
        mutants = [p for p in MUTANT_FILES if _mutant_target(p) == name]
        assert len(mutants) >= MIN_MUTANTS, f"{name} has {len(mutants)} mutants, need at least {MIN_MUTANTS}"
    for path in MUTANT_FILES:
        assert _mutant_target(path) in NAMES, f"{path.name} targets no exercise"
        assert _mutant_doc(path), f"{path.name}: first docstring line must say what is wrong"


def _graded_tests():
    """``(exercise, test name, argument names)`` of every graded test, read from the test files."""
    for path in sorted(EXERCISES.glob("test_ex*.py")):
        for node in ast.parse(path.read_text()).body:
            if isinstance(node, ast.FunctionDef) and node.name.startswith("test_"):
                yield path.stem[len("test_"):], node.name, [a.arg for a in node.args.args]


def test_package_comparisons_carry_the_name_the_mutants_deselect():
    """A test that uses the package's implementation is named ``*matches_the_package*`` and vice versa, so
    that ``-k "not matches_the_package"`` leaves exactly the contract tests for the mutants."""
    for exercise, name, args in _graded_tests():
        uses_package = "package_function" in args
        assert uses_package == (PACKAGE_TESTS in name), f"{exercise}::{name}: uses the package {uses_package}"


def test_the_points_table_is_the_one_the_tests_define():
    """exercises/README.md's table is generated from the points markers; regenerate with --write-stubs."""
    points = grade.exercise_points(EXERCISES)
    assert sorted(points) == NAMES and all(v > 0 for v in points.values())
    text = (EXERCISES / "README.md").read_text()
    table = text.split(grade.TABLE_START, 1)[1].split(grade.TABLE_END, 1)[0]
    assert table.strip() == grade.points_table(EXERCISES).strip(), (
        "exercises/README.md's points table is out of date: run `python -m visiondl_keras grade --write-stubs`")
    for name in NAMES:
        assert f"`{name}.py`" in table


def test_stubs_are_generated_from_the_solutions():
    """exercises/exNN_*.py == the pristine copy == stub_source(solution); regenerate with --write-stubs."""
    assert [p.name for p in grade.exercise_files(EXERCISES)] == [f"{n}.py" for n in NAMES]
    assert [p.name for p in grade.exercise_files(grade.STUBS_DIR)] == [f"{n}.py" for n in NAMES]
    for name in NAMES:
        expected = grade.stub_source((SOLUTIONS / f"{name}.py").read_text())
        hint = "run `python -m visiondl_keras grade --write-stubs` after editing solutions/"
        assert (grade.STUBS_DIR / f"{name}.py").read_text() == expected, f"{name}: pristine stub out of date; {hint}"
        assert (EXERCISES / f"{name}.py").read_text() == expected, f"exercises/{name}.py is not the stub; {hint}"


def test_stub_source_keeps_signatures_and_docstrings():
    source = '''"""Module."""

import math

import numpy as np


def f(x: np.ndarray, k: int = 2) -> float:
    """Doc of f."""
    return math.sqrt(k)


def _helper():
    return 1


def g():
    """Doc of g."""
    y = _helper()
    return y
'''
    stub = grade.stub_source(source)
    tree = ast.parse(stub)
    functions = {n.name: n for n in tree.body if isinstance(n, ast.FunctionDef)}
    assert set(functions) == {"f", "g"}
    assert ast.get_docstring(functions["f"]) == "Doc of f." and ast.get_docstring(functions["g"]) == "Doc of g."
    assert "def f(x: np.ndarray, k: int = 2) -> float:" in stub
    assert stub.count("raise NotImplementedError") == 2 and "return" not in stub
    assert "import math  # noqa: F401" in stub and "import numpy as np\n" in stub


@pytest.mark.slow
def test_solutions_score_full_marks(runs):
    result = runs["solutions"]
    assert result["status"] == "ok", result["output"]
    assert result["max"] > 0 and result["total"] == result["max"], result["output"]
    assert sorted(result["exercises"]) == NAMES
    skipped = [t["nodeid"] for t in result["tests"] if t["outcome"] == "skipped"]
    assert not skipped, f"package comparisons that did not run: {skipped}"
    assert all(t["outcome"] == "passed" for t in result["tests"])
    expected = grade.exercise_points(EXERCISES)
    assert {name: row["max"] for name, row in result["exercises"].items()} == expected
    assert result["max"] == sum(expected.values())


@pytest.mark.slow
def test_untouched_stubs_score_zero(runs):
    result, full = runs["stubs"], runs["solutions"]
    assert result["status"] == "ok", result["output"]
    assert result["total"] == 0 and result["max"] == full["max"]
    not_friendly = [t["nodeid"] for t in result["tests"] if t["reason"] != "not implemented"]
    assert not not_friendly, f"stub failures without the 'not implemented' message: {not_friendly}"


def test_a_stub_fails_with_one_line_not_a_traceback(tmp_path):
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", str(EXERCISES / "test_ex07_robustness.py"), "-p", "no:cacheprovider",
         "--submission-dir", str(grade.STUBS_DIR), "--grades-json", str(tmp_path / "g.json"), *WITHOUT_PACKAGE],
        cwd=tmp_path, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    out = proc.stdout
    assert proc.returncode == 1, out
    assert "ex07_robustness.fgsm_perturb is not implemented yet" in out
    assert "Traceback" not in out and "raise NotImplementedError" not in out and "E   NotImplementedError" not in out
    assert "exercise scores" in out and "ex07_robustness" in out and "TOTAL" in out
    grades = json.loads((tmp_path / "g.json").read_text())
    assert grades["complete"] and grades["total"] == 0 and grades["max"] > 0


@pytest.mark.slow
@pytest.mark.parametrize("mutant", MUTANT_FILES, ids=[p.stem for p in MUTANT_FILES])
def test_mutant_loses_points(runs, mutant):
    result = runs[mutant.stem]
    name = _mutant_target(mutant)
    assert result["complete"], result.get("output")
    tests = [t for t in result["tests"] if t["exercise"] == name]
    assert not any(PACKAGE_TESTS in t["nodeid"] for t in tests), "package comparisons must not grade mutants"
    contract = [t for t in tests if t["outcome"] != "skipped"]
    earned, maximum = sum(t["earned"] for t in contract), sum(t["points"] for t in contract)
    assert maximum > 0
    assert earned < maximum, f"mutant survived the contract tests ({_mutant_doc(mutant)}): {earned} / {maximum}"


@pytest.mark.slow
@pytest.mark.parametrize("stem", ["ex05_evaluation__mistakes_unstable_sort", "ex10_training_loop__inference_mode"])
def test_grade_gives_the_points_of_pytest_exercises(runs, stem, tmp_path):
    """The sandboxed grader and the student's own in-process run give a mutant the same points, test by test."""
    folder = _build_mutant(MUTANTS / f"{stem}.py", tmp_path / stem)
    name = _mutant_target(MUTANTS / f"{stem}.py")
    graded = grade.grade_submission(folder, EXERCISES, 60, select=[f"test_{name}.py"], extra_args=WITHOUT_PACKAGE)
    assert graded["status"] == "ok", graded["output"]
    outcome = {t["nodeid"].split("::")[-1]: t["earned"] for t in graded["tests"]}
    assert outcome == {t["nodeid"].split("::")[-1]: t["earned"] for t in runs[stem]["tests"]}
    assert graded["total"] == runs[stem]["total"] < graded["max"]


# --------------------------------------------------------------------------------------------
# The instructor's grader
# --------------------------------------------------------------------------------------------


def _copy_solutions(folder: Path, names=("ex05_evaluation", "ex08_calibration")) -> Path:
    folder.mkdir(parents=True)
    for name in names:
        shutil.copy(SOLUTIONS / f"{name}.py", folder / f"{name}.py")
    return folder


@pytest.mark.slow
def test_grade_a_class_with_broken_submissions(tmp_path):
    tests = tmp_path / "tests"  # two numpy-only exercises keep this test fast
    tests.mkdir()
    for name in ("conftest.py", "test_ex05_evaluation.py", "test_ex08_calibration.py"):
        shutil.copy(EXERCISES / name, tests / name)
    subs = tmp_path / "submissions"
    _copy_solutions(subs / "alice" / "exercises")  # a whole repository copy
    bob = subs / "bob"
    bob.mkdir(parents=True)
    for name in ("ex05_evaluation", "ex08_calibration"):
        shutil.copy(grade.STUBS_DIR / f"{name}.py", bob)
    carol = _copy_solutions(subs / "carol")
    (carol / "ex05_evaluation.py").write_text((carol / "ex05_evaluation.py").read_text() + "\ndef broken(:\n")
    dave_dir = _copy_solutions(tmp_path / "dave_src")
    (dave_dir / "ex05_evaluation.py").write_text(
        (dave_dir / "ex05_evaluation.py").read_text() + "\n\ndef per_class_recall(cm):\n    while True:\n        pass\n"
    )
    with zipfile.ZipFile(subs / "dave.zip", "w") as zf:
        for path in dave_dir.iterdir():
            zf.write(path, f"dave/exercises/{path.name}")
    erin = _copy_solutions(subs / "erin")
    (erin / "ex08_calibration.py").write_text(
        (erin / "ex08_calibration.py").read_text() + "\n\ndef expected_calibration_error(probs, labels, n_bins=15):\n"
        "    import os\n    os._exit(3)\n"
    )
    (subs / "frank").mkdir()

    out = tmp_path / "gradebook.csv"
    rc = main(["grade", str(subs), "--out", str(out), "--tests", str(tests), "--timeout", "4", "--jobs", "2", "--quiet"])
    assert rc == 0
    with open(out, newline="") as f:
        rows = {r["student"]: r for r in csv.DictReader(f)}
    assert list(rows) == ["alice", "bob", "carol", "dave", "erin", "frank"]
    full = float(rows["alice"]["max"])
    assert rows["alice"]["status"] == "ok" and float(rows["alice"]["total"]) == full > 0
    assert rows["bob"]["status"] == "ok" and float(rows["bob"]["total"]) == 0 and float(rows["bob"]["max"]) == full

    carol = rows["carol"]
    assert carol["status"] == "ok" and float(carol["ex05_evaluation"]) == 0
    assert float(carol["ex08_calibration"]) == float(rows["alice"]["ex08_calibration"])
    assert "ex05_evaluation: import error" in carol["notes"] and "does not compile" in carol["notes"]

    dave = rows["dave"]
    assert dave["status"] == "ok", dave
    assert float(dave["ex08_calibration"]) == float(rows["alice"]["ex08_calibration"])
    assert 0 < float(dave["ex05_evaluation"]) < float(rows["alice"]["ex05_evaluation"])
    assert "ex05_evaluation: timeout" in dave["notes"]

    erin = rows["erin"]  # her code runs in a worker process: its exit costs her tests, not the grading run
    assert erin["status"] == "ok" and "ex08_calibration: crashed" in erin["notes"] and "status 3" in erin["notes"]
    assert float(erin["ex05_evaluation"]) == float(rows["alice"]["ex05_evaluation"])
    assert float(erin["ex08_calibration"]) < float(rows["alice"]["ex08_calibration"])

    assert rows["frank"]["status"] == "missing" and float(rows["frank"]["total"]) == 0
    details = json.loads(out.with_suffix(".json").read_text())
    assert [s["student"] for s in details["students"]] == list(rows)


@pytest.mark.slow
def test_a_hanging_submission_is_killed_and_keeps_its_partial_scores(tmp_path):
    """A test that sleeps uses no CPU time, so the per-submission wall-clock limit must stop it (30 s idle)."""
    folder = _copy_solutions(tmp_path / "sleeper", names=("ex07_robustness",))
    (folder / "ex07_robustness.py").write_text(
        (folder / "ex07_robustness.py").read_text() + "\n\ndef project_linf(adversarial, original, epsilon):\n"
        "    import time\n    time.sleep(600)\n"
    )
    result = grade.grade_submission(folder, EXERCISES, timeout=4, submission_timeout=30, select=["test_ex07_robustness.py"],
                                    extra_args=WITHOUT_PACKAGE)  # fmt: skip
    assert result["status"] == "timeout" and not result["complete"]
    row = result["exercises"]["ex07_robustness"]
    assert row["points"] > 0 and row["not_run"] > 0, row
    assert "killed after the time limit" in grade._notes(result)


def test_reset_restores_the_stubs_and_keeps_a_backup(tmp_path, capsys):
    folder = tmp_path / "exercises"
    assert main(["grade", "--reset", "--exercises-dir", str(folder), "--quiet"]) == 0
    for name in NAMES:
        assert (folder / f"{name}.py").read_bytes() == (grade.STUBS_DIR / f"{name}.py").read_bytes()
    shutil.copy(SOLUTIONS / "ex03_schedules.py", folder / "ex03_schedules.py")
    shutil.copy(SOLUTIONS / "ex05_evaluation.py", folder / "ex05_evaluation.py")

    assert main(["grade", "--reset", "--only", "ex03", "--exercises-dir", str(folder)]) == 0
    assert "reset 1 file(s)" in capsys.readouterr().out
    assert (folder / "ex03_schedules.py").read_bytes() == (grade.STUBS_DIR / "ex03_schedules.py").read_bytes()
    assert (folder / "ex05_evaluation.py").read_bytes() == (SOLUTIONS / "ex05_evaluation.py").read_bytes()
    backups = list((folder / ".backup").glob("*/ex03_schedules.py"))
    assert len(backups) == 1 and backups[0].read_bytes() == (SOLUTIONS / "ex03_schedules.py").read_bytes()

    assert main(["grade", "--reset", "--only", "ex42", "--exercises-dir", str(folder)]) == 1
    assert "unknown exercise ex42" in capsys.readouterr().err


def test_grade_command_line_errors(tmp_path, capsys):
    with pytest.raises(SystemExit) as exc:
        main(["grade"])
    assert exc.value.code == 2
    assert "give SUBMISSIONS_DIR" in capsys.readouterr().err
    assert main(["grade", str(tmp_path / "nowhere")]) == 1
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "not a folder" in err and len(err.strip().splitlines()) == 1
    (tmp_path / "empty").mkdir()
    assert main(["grade", str(tmp_path / "empty"), "--tests", str(EXERCISES)]) == 1
    assert "no student folders" in capsys.readouterr().err


def test_grading_folders_default_to_the_current_directory(tmp_path, monkeypatch, capsys):
    """Without --tests or --exercises-dir the course folder is the current directory, wherever the package is."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "submissions" / "alice").mkdir(parents=True)
    assert main(["grade", "submissions"]) == 1
    err = capsys.readouterr().err
    assert "cannot find the graded tests" in err and str(tmp_path / "exercises") in err
    assert main(["grade", "--reset", "--only", "ex05", "--quiet"]) == 0
    assert (tmp_path / "exercises" / "ex05_evaluation.py").read_bytes() == (
        grade.STUBS_DIR / "ex05_evaluation.py").read_bytes()
    assert main(["grade", "--write-stubs", "--quiet"]) == 1
    assert "no exNN_*.py solutions" in capsys.readouterr().err


def test_write_stubs_regenerates_the_packaged_stubs(tmp_path):
    written = grade.write_stubs(SOLUTIONS, [tmp_path / "a", tmp_path / "b"])
    assert len(written) == 2 * len(NAMES)
    for name in NAMES:
        assert (tmp_path / "a" / f"{name}.py").read_bytes() == (grade.STUBS_DIR / f"{name}.py").read_bytes()
    with pytest.raises(ConfigError, match="no exNN_"):
        grade.write_stubs(tmp_path / "empty", [tmp_path / "c"])


@pytest.mark.slow
def test_the_training_step_exercise_grades_on_jax(tmp_path):
    """``KERAS_BACKEND=jax``: the reference train_step (one backend-specific gradient line) earns full marks
    and a step in inference mode still loses points, as on TensorFlow."""
    pytest.importorskip("jax")
    env = dict(os.environ, KERAS_BACKEND="jax")
    folder = tmp_path / "mutant"
    folder.mkdir()
    (folder / "ex10_training_loop.py").write_text(
        (SOLUTIONS / "ex10_training_loop.py").read_text() + "\n\n" + textwrap.dedent('''
        def train_step(model, optimizer, loss_fn, x, y):
            import jax

            def compute(trainable, non_trainable):
                predictions, non_trainable, penalties = model.stateless_call(
                    trainable, non_trainable, x, training=False, return_losses=True)
                return loss_fn(y, predictions) + sum(penalties), non_trainable

            trainable = [v.value for v in model.trainable_variables]
            non_trainable = [v.value for v in model.non_trainable_variables]
            (loss, non_trainable), grads = jax.value_and_grad(compute, has_aux=True)(trainable, non_trainable)
            optimizer.apply(grads, model.trainable_variables)
            return float(loss)
        '''))
    scores = {}
    for label, source in (("solutions", SOLUTIONS), ("inference mode", folder)):
        out = tmp_path / f"{label}.json"
        proc = subprocess.run([sys.executable, "-m", "pytest", str(EXERCISES / "test_ex10_training_loop.py"), "-q",
                               "-p", "no:cacheprovider", "--submission-dir", str(source), "--grades-json", str(out)],
                              cwd=tmp_path, env=env, capture_output=True, text=True, timeout=900)
        grades = json.loads(out.read_text())
        scores[label] = (grades["total"], grades["max"], proc.stdout[-2000:])
    total, maximum, output = scores["solutions"]
    assert maximum > 0 and total == maximum, output
    total, maximum, output = scores["inference mode"]
    assert total < maximum, output
