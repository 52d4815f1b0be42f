"""The fast recipe reaches the same accuracy on every installed Keras backend as on TensorFlow.

Each backend trains in its own process (the backend is fixed when Keras is imported): the fast recipe,
float32, a narrow network, the same synthetic task and the same seeds; the accuracies must agree within
the seed-to-seed noise. A backend that is not installed is skipped. The CIFAR-10 version of this
comparison is ``benchmarks/backends.py`` (its table: ``artifacts/metrics/backends.json``).
"""

from __future__ import annotations

import importlib.util
import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SEEDS = (0, 1, 2)

SCRIPT = """
import json, sys
sys.path.insert(0, {tests!r})
from conftest import make_splits
from visiondl_keras.training.config import preset_config
from visiondl_keras.training.scratch import train
splits = make_splits(n_train=600, n_val=60, n_test=300)
out = []
for seed in {seeds!r}:
    cfg = preset_config("fast", widths=[8, 16, 16], epochs=6, batch_size=64, precision="float32", seed=seed)
    m = train(cfg, {runs!r} + f"/seed{{seed}}", splits=splits, progress=False, log=lambda *a, **k: None)
    out.append(m["test_accuracy"])
print("ACCURACIES", json.dumps(out))
"""

pytestmark = pytest.mark.slow


def _accuracies(backend: str, tmp_path: Path) -> list[float]:
    code = SCRIPT.format(tests=str(ROOT / "tests"), seeds=SEEDS, runs=str(tmp_path / backend))
    env = {**os.environ, "KERAS_BACKEND": backend, "TF_CPP_MIN_LOG_LEVEL": "2"}
    proc = subprocess.run([sys.executable, "-c", code], env=env, cwd=ROOT, capture_output=True, text=True,
                          timeout=900)
    assert proc.returncode == 0, proc.stderr[-3000:]
    line = next(s for s in proc.stdout.splitlines() if s.startswith("ACCURACIES"))
    return json.loads(line.split(" ", 1)[1])


def _mean_se(values: list[float]) -> tuple[float, float]:
    n = len(values)
    mean = sum(values) / n
    var = sum((v - mean) ** 2 for v in values) / (n - 1)
    return mean, math.sqrt(var / n)


@pytest.fixture(scope="module")
def tensorflow_accuracies(tmp_path_factory):
    return _accuracies("tensorflow", tmp_path_factory.mktemp("tf"))


@pytest.mark.parametrize("backend", ["jax", "torch"])
def test_backend_matches_tensorflow_within_noise(backend, tensorflow_accuracies, tmp_path):
    if importlib.util.find_spec(backend) is None:
        pytest.skip(f"{backend} is not installed")
    other = _accuracies(backend, tmp_path)
    tf_mean, tf_se = _mean_se(tensorflow_accuracies)
    mean, se = _mean_se(other)
    assert min(other) > 0.5 and min(tensorflow_accuracies) > 0.5  # both learn (chance is 0.1)
    # two standard errors of the difference, plus 2 of the 300 test images' granularity
    tolerance = 2 * math.sqrt(se**2 + tf_se**2) + 0.02
    assert abs(mean - tf_mean) <= tolerance, (backend, other, tensorflow_accuracies)
