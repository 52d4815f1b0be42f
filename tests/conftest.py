"""Shared fixtures: tiny synthetic data sets, image trees and archives built on the fly."""

from __future__ import annotations

import importlib.util
import os
import tarfile
import zipfile
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402
import pytest  # noqa: E402

from visiondl_keras.data.cifar10 import CLASS_NAMES, Dataset  # noqa: E402
from visiondl_keras.data.splits import Splits, channel_stats  # noqa: E402


def load_benchmark(name: str):
    """The script ``benchmarks/<name>.py`` as a module (the benchmarks are scripts, not a package)."""
    path = Path(__file__).resolve().parents[1] / "benchmarks" / f"{name}.py"
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def synthetic_images(n: int, num_classes: int = 10, seed: int = 0):
    """Images whose class is learnable: a class-specific colour blob plus noise."""
    rng = np.random.default_rng(seed)
    y = np.arange(n) % num_classes
    rng.shuffle(y)
    colours = np.random.default_rng(123).integers(30, 225, size=(num_classes, 3))
    x = rng.integers(0, 60, size=(n, 32, 32, 3)).astype(np.int32)
    for i, label in enumerate(y):
        r0 = 4 + (label % 4) * 5
        x[i, r0 : r0 + 10, 6:26] += colours[label]
    return np.clip(x, 0, 255).astype(np.uint8), y.astype(np.int64)


def make_splits(n_train=200, n_val=50, n_test=100, num_classes=10, seed=0) -> Splits:
    x, y = synthetic_images(n_train + n_val + n_test, num_classes, seed)
    a, b = n_train, n_train + n_val
    mean, std = channel_stats(x[:a])
    names = tuple(CLASS_NAMES[:num_classes]) if num_classes <= 10 else tuple(f"c{i}" for i in range(num_classes))
    return Splits(x[:a], y[:a], x[a:b], y[a:b], x[b:], y[b:], names, mean, std, fingerprint="synthetic", source="synthetic")


@pytest.fixture
def tiny_splits():
    return make_splits()


def write_tree(root: Path, per_class_train=3, per_class_test=2, classes=CLASS_NAMES, ext=".png", seed=0) -> Dataset:
    """Write an image-folder tree and return the Dataset it should load as."""
    from PIL import Image

    rng = np.random.default_rng(seed)
    out = {}
    for split, per in (("train", per_class_train), ("test", per_class_test)):
        xs, ys = [], []
        for label, name in enumerate(classes):
            folder = root / split / name
            folder.mkdir(parents=True, exist_ok=True)
            for i in range(per):
                img = rng.integers(0, 256, size=(32, 32, 3), dtype=np.uint8)
                Image.fromarray(img).save(folder / f"{i:04d}{ext}")
                xs.append(img)
                ys.append(label)
        out[split] = (np.stack(xs), np.array(ys))
    return Dataset(out["train"][0], out["train"][1], out["test"][0], out["test"][1], tuple(classes), str(root))


@pytest.fixture
def isolated_cache(tmp_path, monkeypatch):
    cache = tmp_path / "cache"
    monkeypatch.setenv("VISIONDL_CACHE", str(cache))
    return cache


@pytest.fixture
def image_tree(tmp_path, isolated_cache):
    root = tmp_path / "tree" / "cifar10-png"
    expected = write_tree(root)
    return root, expected


def make_tar(src: Path, dest: Path) -> Path:
    with tarfile.open(dest, "w:gz") as tf:
        tf.add(src, arcname=src.name)
    return dest


def make_zip(src: Path, dest: Path) -> Path:
    with zipfile.ZipFile(dest, "w") as zf:
        for p in sorted(src.rglob("*")):
            zf.write(p, p.relative_to(src.parent))
    return dest


@pytest.fixture
def mirror():
    """The shared CIFAR-10 mirror (integration tests); skipped when VISIONDL_DATA is not set."""
    path = os.environ.get("VISIONDL_DATA")
    if not path or not Path(path).exists():
        pytest.skip("VISIONDL_DATA is not set to the CIFAR-10 mirror")
    return path
