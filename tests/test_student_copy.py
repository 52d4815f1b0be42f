"""The student copy of the repository holds no solutions, no history, and stubs in exercises/."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from visiondl_keras.cli.main import main
from visiondl_keras.course.grading import STUBS_DIR

ROOT = Path(__file__).resolve().parents[1]


def test_student_copy_leaves_out_the_answers(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(ROOT)
    dest = tmp_path / "course"
    assert main(["grade", "--student-copy", str(dest)]) == 0
    assert "left out" in capsys.readouterr().out
    assert not (dest / "solutions").exists() and not (dest / ".git").exists()
    assert not (dest / "tests" / "mutants").exists() and not (dest / "tests" / "test_exercises_meta.py").exists()
    assert (dest / "exercises" / "conftest.py").is_file() and (dest / "README.md").is_file()
    for stub in STUBS_DIR.glob("ex*.py"):
        assert (dest / "exercises" / stub.name).read_text() == stub.read_text()
    solution_bodies = [p.read_text() for p in (ROOT / "solutions").glob("ex*.py")]
    for path in dest.rglob("*.py"):
        assert path.read_text() not in solution_bodies, path
    # the students' own check runs there: stubs score 0, one line per test
    r = subprocess.run([sys.executable, "-m", "pytest", "exercises/test_ex05_evaluation.py", "-q", "-p",
                        "no:cacheprovider"], cwd=dest, capture_output=True, text=True, timeout=300)
    assert "not implemented yet" in r.stdout and "0 / " in r.stdout, r.stdout[-1500:]
    assert main(["grade", "--student-copy", str(dest)]) == 1  # never overwrites


def test_student_copy_must_be_outside_the_repository(monkeypatch, capsys):
    monkeypatch.chdir(ROOT)
    assert main(["grade", "--student-copy", str(ROOT / "runs" / "student")]) == 1
    assert "outside the repository" in capsys.readouterr().err


@pytest.mark.parametrize("name", ["solutions", "tests/mutants"])
def test_instructor_only_paths_exist_in_the_instructor_repository(name):
    assert (ROOT / name).is_dir()
