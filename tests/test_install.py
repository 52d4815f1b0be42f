"""The package works when installed (not editable), run from outside the repository.

The package is built and installed into a temporary folder with pip (``--target``), then run by
the base interpreter with ``PYTHONPATH=<that folder>:<this environment's site-packages>``: the
editable install's import hook (a ``.pth`` file) is only processed for site directories, so the
installed copy is the one imported, and nothing may be read from the source checkout.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

pytestmark = pytest.mark.slow


def _base_python() -> str:
    """The interpreter this environment was created from (no site-packages of the environment)."""
    base = getattr(sys, "_base_executable", None)
    if base and Path(base).is_file():
        return base
    return str(Path(sys.base_prefix) / "bin" / f"python{sys.version_info.major}.{sys.version_info.minor}")


@pytest.fixture(scope="module")
def installed(tmp_path_factory):
    """``{"target", "env", "cwd"}``: the package installed into ``target`` and how to run it."""
    pytest.importorskip("setuptools", minversion="77")  # the license expression in pyproject.toml
    tmp = tmp_path_factory.mktemp("install")
    source = tmp / "source"  # a copy: building writes build/ and *.egg-info next to pyproject.toml
    source.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy2(ROOT / name, source / name)
    shutil.copytree(ROOT / "visiondl_keras", source / "visiondl_keras",
                    ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    target = tmp / "target"
    proc = subprocess.run(
        [sys.executable, "-m", "pip", "install", "--no-deps", "--no-build-isolation", "--no-compile", "-q",
         "--target", str(target), str(source)],
        capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stdout + proc.stderr
    site = {sysconfig.get_paths()["purelib"], sysconfig.get_paths()["platlib"]}
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTHON", "VISIONDL_MODEL"))}
    env.update(PYTHONPATH=os.pathsep.join([str(target), *sorted(site)]), PYTHONNOUSERSITE="1",
               TF_CPP_MIN_LOG_LEVEL="3")
    cwd = tmp / "elsewhere"
    cwd.mkdir()
    return {"target": target, "env": env, "cwd": cwd}


def _run(installed, *args, timeout=300):
    return subprocess.run([_base_python(), *args], cwd=installed["cwd"], env=installed["env"], capture_output=True,
                          text=True, timeout=timeout)


def test_installed_package_is_imported_and_ships_its_data(installed):
    code = ("import visiondl_keras, visiondl_keras.course.grading as g, visiondl_keras.deploy.predictor as p; "
            "print(visiondl_keras.__file__); print(len(g.exercise_files(g.STUBS_DIR))); print(p.PACKAGED_MODEL_DIR)")
    r = _run(installed, "-c", code)
    assert r.returncode == 0, r.stderr
    module_file, n_stubs, model_dir = r.stdout.strip().splitlines()
    assert Path(module_file).is_relative_to(installed["target"]), module_file
    assert int(n_stubs) >= 9
    assert Path(model_dir).is_relative_to(installed["target"]) and (Path(model_dir) / "README.md").is_file()


@pytest.fixture
def sample(tmp_path):
    """A 128x128 RGB image (any image will do: these tests check the installed command, not the model)."""
    import numpy as np
    from PIL import Image

    path = tmp_path / "sample.png"
    Image.fromarray(np.random.default_rng(0).integers(0, 256, (128, 128, 3), dtype=np.uint8)).save(path)
    return path


def test_installed_infer_predicts_a_sample(installed, tmp_path, sample):
    from visiondl_keras.models import build_simple_cnn

    checkpoint = tmp_path / "tiny.keras"
    build_simple_cnn(width=4).save(checkpoint)
    r = _run(installed, "-m", "visiondl_keras.infer", str(sample), "--model", str(checkpoint), "--top-k", "2")
    assert r.returncode == 0, r.stderr
    path, predictions = r.stdout.strip().split(": ", 1)
    assert path == str(sample) and len(predictions.split(", ")) == 2


def test_installed_infer_default_model(installed, sample):
    """The packaged default model when one is shipped, else a one-line error naming where it looked."""
    r = _run(installed, "-m", "visiondl_keras.infer", str(sample))
    if (ROOT / "visiondl_keras" / "deploy" / "default_model" / "scratch_airbench94.keras").is_file():
        assert r.returncode == 0 and r.stdout.startswith(f"{sample}: "), r.stderr
    else:
        assert r.returncode == 2 and "Traceback" not in r.stderr
        assert r.stderr.startswith("error: no default model") and r.stderr.count("\n") == 1, r.stderr
        assert "default_model" in r.stderr


def test_installed_grade_help(installed):
    r = _run(installed, "-m", "visiondl_keras", "grade", "--help")
    assert r.returncode == 0, r.stderr
    assert "--reset" in r.stdout and "--write-stubs" in r.stdout
