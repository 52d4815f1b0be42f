"""A student copy of the course repository: everything but the reference answers.

The instructor's repository keeps ``solutions/`` (and the meta-tests and mutants built on them);
students get a copy written by ``python -m visiondl_keras grade --student-copy DEST``: the tracked
files of the checkout (``git ls-files``; without git, every file except build and cache folders)
minus the paths in :data:`INSTRUCTOR_ONLY`, with ``exercises/`` reset to the pristine stubs, and no
git history (the history holds the solutions). Students run ``pytest exercises`` (or ``make
exercises``) there as usual; ``make test`` skips the solution checks when ``solutions/`` is absent.
"""

from __future__ import annotations

import fnmatch
import os
import shutil
import subprocess
from pathlib import Path

from visiondl_keras.errors import ConfigError

# What reveals the answers: the solutions, the mutants (wrong variants appended to them), and the
# meta-tests that grade both.
INSTRUCTOR_ONLY = ("solutions/*", "tests/mutants/*", "tests/test_exercises_meta.py", "tests/test_grading_security.py")
_SKIP_DIRS = {".git", ".venv", "_build", "runs", "__pycache__", ".pytest_cache", ".ruff_cache", "build", "dist", "data"}


def _tracked_files(root: Path) -> list[str]:
    if (root / ".git").exists() and shutil.which("git"):
        out = subprocess.run(["git", "ls-files", "-z"], cwd=root, capture_output=True, check=False)
        if out.returncode == 0:
            return [p for p in out.stdout.decode().split("\0") if p]
    files = []
    for folder, dirs, names in os.walk(root):
        dirs[:] = [d for d in dirs if d not in _SKIP_DIRS and not d.endswith(".egg-info")]
        files += [str((Path(folder) / n).relative_to(root)) for n in names]
    return files


def write_student_copy(root: str | os.PathLike, dest: str | os.PathLike, stubs_dir: str | os.PathLike) -> dict:
    """Write the student copy of the repository at ``root`` into ``dest`` (which must not exist).

    Args:
        root: the instructor's checkout (with ``exercises/`` and ``solutions/``).
        dest: the new folder.
        stubs_dir: the pristine stubs (``visiondl_keras/course/stubs``), copied over ``exercises/``.

    Returns:
        ``{"dest", "files": number copied, "left_out": [paths]}``.

    Raises:
        ConfigError: ``root`` is not a course checkout, or ``dest`` exists.
    """
    root, dest = Path(root).resolve(), Path(dest)
    if not (root / "exercises" / "conftest.py").is_file():
        raise ConfigError(f"{root}: not a course checkout (no exercises/conftest.py).")
    if dest.exists():
        raise ConfigError(f"{dest}: already exists; give a new folder.")
    if dest.resolve().is_relative_to(root):
        raise ConfigError(f"{dest}: the student copy must lie outside the repository.")
    copied, left_out = 0, []
    for rel in _tracked_files(root):
        if any(fnmatch.fnmatch(rel, pat) for pat in INSTRUCTOR_ONLY):
            left_out.append(rel)
            continue
        src = root / rel
        if not src.is_file():
            continue
        target = dest / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(src, target)
        copied += 1
    for stub in sorted(Path(stubs_dir).glob("ex*.py")):
        shutil.copy2(stub, dest / "exercises" / stub.name)
    return {"dest": str(dest), "files": copied, "left_out": left_out}
