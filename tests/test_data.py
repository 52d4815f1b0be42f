"""The data layer: every source form, the caches, splits, the restricted unpickler, error paths."""

from __future__ import annotations

import os
import pickle
import subprocess
import sys
import tarfile
import time
from pathlib import Path

import numpy as np
import pytest
from conftest import make_tar, make_zip, write_tree

import visiondl_keras.data.cifar10 as D
import visiondl_keras.data.splits as S
from visiondl_keras.errors import DataError, UnsafePickleError


def assert_same(ds, expected):
    np.testing.assert_array_equal(ds.x_train, expected.x_train)
    np.testing.assert_array_equal(ds.y_train, expected.y_train)
    np.testing.assert_array_equal(ds.x_test, expected.x_test)
    np.testing.assert_array_equal(ds.y_test, expected.y_test)
    assert ds.class_names == tuple(expected.class_names)
    assert ds.x_train.dtype == np.uint8 and ds.y_train.dtype == np.int64


# ---- image trees and archives -------------------------------------------------------------


def test_image_tree_loads_in_official_class_order(image_tree):
    root, expected = image_tree
    ds = D.load_cifar10(root, progress=False)
    assert_same(ds, expected)
    assert ds.class_names == D.CLASS_NAMES
    assert len(ds.fingerprint) == 64
    assert ds.fingerprint == D.fingerprint_arrays(ds.x_train, ds.y_train, ds.x_test, ds.y_test)


def test_tree_found_one_level_down_and_other_class_names_sorted(tmp_path, isolated_cache):
    classes = ("zebra", "apple", "mango")
    expected = write_tree(tmp_path / "outer" / "inner", classes=sorted(classes))
    ds = D.load_cifar10(tmp_path / "outer", progress=False)
    assert ds.class_names == ("apple", "mango", "zebra")
    assert_same(ds, expected)


def test_jpeg_and_grayscale_images_are_read_as_rgb(tmp_path, isolated_cache):
    from PIL import Image

    root = tmp_path / "t"
    write_tree(root, per_class_train=1, per_class_test=1, ext=".jpg")
    Image.fromarray(np.full((32, 32), 77, np.uint8), mode="L").save(root / "train" / "cat" / "gray.png")
    ds = D.load_cifar10(root, progress=False)
    assert ds.x_train.shape == (11, 32, 32, 3)
    gray = ds.x_train[ds.y_train == 3][-1]
    assert np.all(gray == 77)


@pytest.mark.parametrize("kind", ["tar", "zip"])
def test_archive_extracted_once_and_arrays_cached(image_tree, tmp_path, monkeypatch, kind):
    root, expected = image_tree
    archive = make_tar(root, tmp_path / "c.tar.gz") if kind == "tar" else make_zip(root, tmp_path / "c.zip")
    ds = D.load_cifar10(archive, progress=False)
    assert_same(ds, expected)
    assert ds.source == str(archive)
    extracted = list((D.cache_dir() / "extracted").iterdir())
    assert len(extracted) == 1

    def boom(*a, **k):
        raise AssertionError("second load must come from the array cache")

    monkeypatch.setattr(D, "_load_tree", boom)
    monkeypatch.setattr(D, "_extract_archive", boom)
    again = D.load_cifar10(archive, progress=False)
    assert_same(again, expected)
    assert again.fingerprint == ds.fingerprint


def test_folder_tree_is_cached_and_cache_invalidated_on_change(image_tree, monkeypatch):
    root, expected = image_tree
    D.load_cifar10(root, progress=False)
    calls = []
    real = D._load_tree
    monkeypatch.setattr(D, "_load_tree", lambda *a, **k: calls.append(1) or real(*a, **k))
    D.load_cifar10(root, progress=False)
    assert calls == []
    from PIL import Image

    Image.fromarray(np.zeros((32, 32, 3), np.uint8)).save(root / "train" / "dog" / "extra.png")
    ds = D.load_cifar10(root, progress=False)
    assert calls == [1] and len(ds.x_train) == len(expected.x_train) + 1


def test_archive_with_path_traversal_is_refused(tmp_path, isolated_cache):
    evil = tmp_path / "evil.tar.gz"
    payload = tmp_path / "payload.txt"
    payload.write_text("x")
    with tarfile.open(evil, "w:gz") as tf:
        tf.add(payload, arcname="../../escaped.txt")
    with pytest.raises(DataError, match="evil.tar.gz"):
        D.load_cifar10(evil, progress=False)
    assert not (isolated_cache.parent / "escaped.txt").exists()


# ---- official release (pickles) -------------------------------------------------------------


def write_official(folder: Path, n_per_batch=20, seed=0):
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True)
    xs, ys = [], []
    for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        x = rng.integers(0, 256, size=(n_per_batch, 3072), dtype=np.uint8)
        y = [int(v) for v in rng.integers(0, 10, n_per_batch)]
        with open(folder / name, "wb") as fh:
            pickle.dump({b"batch_label": name.encode(), b"labels": y, b"data": x,
                         b"filenames": [b"f.png"] * n_per_batch}, fh, protocol=2)
        xs.append(x.reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1))
        ys.append(np.array(y))
    with open(folder / "batches.meta", "wb") as fh:
        pickle.dump({b"label_names": [n.encode() for n in D.CLASS_NAMES], b"num_vis": 3072}, fh, protocol=2)
    return np.concatenate(xs[:5]), np.concatenate(ys[:5]), xs[5], ys[5]


def test_official_batches_folder_and_tarball(tmp_path, isolated_cache):
    folder = tmp_path / "cifar-10-batches-py"
    x_tr, y_tr, x_te, y_te = write_official(folder)
    ds = D.load_cifar10(folder)
    np.testing.assert_array_equal(ds.x_train, x_tr)
    np.testing.assert_array_equal(ds.y_train, y_tr)
    np.testing.assert_array_equal(ds.x_test, x_te)
    assert ds.class_names == D.CLASS_NAMES
    # the official tarball holds the folder at its top level
    tgz = make_tar(folder, tmp_path / "cifar-10-python.tar.gz")
    ds2 = D.load_cifar10(tgz)
    np.testing.assert_array_equal(ds2.x_train, x_tr)
    assert ds2.fingerprint == ds.fingerprint
    # the parent folder works too
    assert D.load_cifar10(tmp_path).fingerprint == ds.fingerprint


class _Evil:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def test_crafted_pickle_raises_and_executes_nothing(tmp_path, isolated_cache):
    folder = tmp_path / "cifar-10-batches-py"
    write_official(folder)
    marker = tmp_path / "pwned"
    with open(folder / "data_batch_3", "wb") as fh:
        pickle.dump({b"data": _Evil(marker), b"labels": []}, fh, protocol=2)
    with pytest.raises(UnsafePickleError, match=r"data_batch_3.*refusing to load (posix|os|nt)\.system"):
        D.load_cifar10(folder)
    assert not marker.exists()


def test_safe_load_pickle_reads_plain_numpy(tmp_path):
    p = tmp_path / "b"
    arr = np.arange(12, dtype=np.uint8).reshape(3, 4)
    p.write_bytes(pickle.dumps({b"data": arr}, protocol=4))
    np.testing.assert_array_equal(D.safe_load_pickle(p)[b"data"], arr)


def test_batch_with_wrong_shape_names_the_file(tmp_path, isolated_cache):
    folder = tmp_path / "cifar-10-batches-py"
    write_official(folder)
    with open(folder / "test_batch", "wb") as fh:
        pickle.dump({b"data": np.zeros((5, 100), np.uint8), b"labels": [0] * 5}, fh)
    with pytest.raises(DataError, match=r"test_batch.*\(N, 3072\)"):
        D.load_cifar10(folder)


# ---- error paths ---------------------------------------------------------------------------------


def test_missing_path_lists_every_way_to_provide_data(tmp_path):
    with pytest.raises(DataError) as err:
        D.load_cifar10(tmp_path / "nope")
    msg = str(err.value)
    assert "nope" in msg
    for way in ("VISIONDL_DATA", "cifar-10-batches-py", "KERAS_HOME", "download"):
        assert way in msg


def test_no_data_anywhere_and_no_network(tmp_path, monkeypatch):
    monkeypatch.delenv("VISIONDL_DATA", raising=False)
    monkeypatch.setenv("KERAS_HOME", str(tmp_path / "kh"))
    monkeypatch.chdir(tmp_path)
    import keras

    def offline(*a, **k):
        raise OSError("no network")

    monkeypatch.setattr(keras.utils, "get_file", offline)
    with pytest.raises(DataError, match="download failed") as err:
        D.load_cifar10()
    assert "VISIONDL_DATA" in str(err.value) and "./data/cifar-10-batches-py" in str(err.value)


def test_lookup_order_env_then_local_then_keras_cache(tmp_path, monkeypatch, isolated_cache):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("VISIONDL_DATA", raising=False)
    kh = tmp_path / "kh"
    monkeypatch.setenv("KERAS_HOME", str(kh))
    write_official(kh / "datasets" / "cifar-10-batches-py-target" / "cifar-10-batches-py", seed=1)
    assert "kh" in D.load_cifar10().source
    write_official(tmp_path / "data" / "cifar-10-batches-py", seed=2)
    assert D.load_cifar10().source == str(Path("data") / "cifar-10-batches-py")
    tree = tmp_path / "envtree"
    write_tree(tree, 1, 1)
    monkeypatch.setenv("VISIONDL_DATA", str(tree))
    assert D.load_cifar10(progress=False).source == str(tree)


def test_corrupt_archive_names_the_file(tmp_path, isolated_cache):
    bad = tmp_path / "broken.tar.gz"
    bad.write_bytes(b"\x1f\x8b this is not a gzip stream" * 10)
    with pytest.raises(DataError, match="broken.tar.gz.*corrupt"):
        D.load_cifar10(bad)


def test_truncated_archive_names_the_file(image_tree, tmp_path):
    root, _ = image_tree
    good = make_tar(root, tmp_path / "good.tar.gz").read_bytes()
    cut = tmp_path / "cut.tar.gz"
    cut.write_bytes(good[: len(good) // 2])
    with pytest.raises(DataError, match="cut.tar.gz"):
        D.load_cifar10(cut)


def test_wrong_image_size_names_the_file(tmp_path, isolated_cache):
    from PIL import Image

    root = tmp_path / "t"
    write_tree(root, 1, 1)
    Image.fromarray(np.zeros((16, 16, 3), np.uint8)).save(root / "train" / "bird" / "small.png")
    with pytest.raises(DataError, match=r"small\.png.*16x16"):
        D.load_cifar10(root, progress=False)


def test_non_image_file_names_the_file(tmp_path, isolated_cache):
    root = tmp_path / "t"
    write_tree(root, 1, 1)
    (root / "test" / "frog" / "fake.jpg").write_bytes(b"not a jpeg")
    with pytest.raises(DataError, match=r"fake\.jpg.*not a readable image"):
        D.load_cifar10(root, progress=False)


def test_missing_class_folder_is_named(tmp_path, isolated_cache):
    root = tmp_path / "t"
    write_tree(root, 1, 1)
    import shutil

    shutil.rmtree(root / "test" / "ship")
    with pytest.raises(DataError, match=r"test/ship"):
        D.load_cifar10(root, progress=False)


def test_folder_without_data_and_unknown_file(tmp_path):
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / "a").mkdir()
    (tmp_path / "empty" / "b").mkdir()
    with pytest.raises(DataError, match="neither the official batches"):
        D.load_cifar10(tmp_path / "empty")
    f = tmp_path / "data.csv"
    f.write_text("1,2")
    with pytest.raises(DataError, match="data.csv.*not a CIFAR-10 source"):
        D.load_cifar10(f)


# ---- splits ---------------------------------------------------------------------------------------


def _ds(n_per_class=100, n_classes=10, seed=0):
    rng = np.random.default_rng(seed)
    y = np.repeat(np.arange(n_classes), n_per_class)
    x = rng.integers(0, 256, size=(len(y), 32, 32, 3), dtype=np.uint8)
    x[:, 0, 0, 0] = np.arange(len(y)) % 256  # makes rows distinguishable
    return D.Dataset(x, y, x[:200], y[:200], D.CLASS_NAMES, "mem", "fp")


def test_split_is_stratified_disjoint_and_deterministic():
    ds = _ds()
    s1 = S.train_val_split(ds, val_size=200, seed=3)
    s2 = S.train_val_split(ds, val_size=200, seed=3)
    s3 = S.train_val_split(ds, val_size=200, seed=4)
    assert len(s1.y_val) == 200 and len(s1.y_train) == 800
    assert np.all(np.bincount(s1.y_val) == 20) and np.all(np.bincount(s1.y_train) == 80)
    np.testing.assert_array_equal(s1.x_val, s2.x_val)
    np.testing.assert_array_equal(s1.y_train, s2.y_train)
    assert not np.array_equal(s1.x_val, s3.x_val)
    train_rows = {r.tobytes() for r in s1.x_train}
    assert not any(r.tobytes() in train_rows for r in s1.x_val)


def test_split_limit_is_stratified_and_stats_match_numpy():
    ds = _ds()
    s = S.train_val_split(ds, val_size=200, seed=0, limit=300, test_limit=50)
    assert len(s.y_train) == 300 and np.all(np.bincount(s.y_train) == 30)
    assert np.all(np.bincount(s.y_val) >= 1) and len(s.y_val) == 75
    assert np.all(np.bincount(s.y_test, minlength=2)[:2] == np.bincount(s.y_test)[:2])
    assert len(s.y_test) == 50
    ref = s.x_train.reshape(-1, 3).astype(np.float64)
    np.testing.assert_allclose(s.mean, ref.mean(0), rtol=1e-5)
    np.testing.assert_allclose(s.std, ref.std(0), rtol=1e-4)


def test_stratified_subset_remainder_and_errors():
    y = np.repeat(np.arange(3), 10)
    idx = S.stratified_subset(y, 7, seed=0)
    counts = np.bincount(y[idx], minlength=3)
    assert counts.sum() == 7 and counts.max() - counts.min() <= 1
    assert len(S.stratified_subset(y, 100)) == 30
    with pytest.raises(DataError, match="limit"):
        S.stratified_subset(y, 0)
    with pytest.raises(DataError, match="val_size"):
        S.train_val_split(_ds(), val_size=5000)


# ---- backends and the shared mirror ----------------------------------------------------------------


@pytest.mark.parametrize("backend", ["jax", "torch"])
def test_import_and_data_layer_work_on_other_backends(backend, image_tree):
    pytest.importorskip(backend)
    root, expected = image_tree
    code = (
        "import keras, visiondl_keras as v, numpy as np;"
        f"ds = v.load_cifar10({str(root)!r}, progress=False);"
        "s = v.train_val_split(ds, val_size=10, seed=0);"
        "print(keras.backend.backend(), ds.x_train.shape, len(s.y_val))"
    )
    env = dict(os.environ, KERAS_BACKEND=backend)
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.split()[0] == backend and "(30, 32, 32, 3) 10" in out.stdout


@pytest.mark.integration
def test_shared_mirror_has_the_full_cifar10(mirror):
    t = time.perf_counter()
    ds = D.load_cifar10(mirror, progress=False)
    first = time.perf_counter() - t
    assert ds.x_train.shape == (50000, 32, 32, 3) and ds.x_test.shape == (10000, 32, 32, 3)
    assert np.all(np.bincount(ds.y_train) == 5000) and np.all(np.bincount(ds.y_test) == 1000)
    assert ds.class_names == D.CLASS_NAMES and ds.is_jpeg_mirror
    again = D.load_cifar10(mirror, progress=False)
    assert again.fingerprint == ds.fingerprint
    s = S.train_val_split(ds)
    assert len(s.y_train) == 45000 and np.all(np.bincount(s.y_val) == 500)
    # the mirror's README states the channel means (0.4913, 0.4821, 0.4465)
    np.testing.assert_allclose(S.channel_stats(ds.x_train)[0] / 255, [0.4913, 0.4821, 0.4465], atol=2e-4)
    print(f"mirror load: first call in this test {first:.2f}s")


@pytest.mark.parametrize("error, words", [
    ("network", "no network connection to www.cs.toronto.edu"),
    ("checksum", "failed its checksum"),
    ("permission", "no permission to write the download"),
])
def test_a_failed_download_names_its_cause(monkeypatch, error, words):
    import socket
    import urllib.error

    import keras

    from visiondl_keras.data import cifar10

    def get_file(*args, **kwargs):
        if error == "network":
            raise Exception("URL fetch failure") from urllib.error.URLError(socket.gaierror(-2, "Name or service not known"))
        if error == "checksum":
            raise ValueError("Incomplete or corrupted file detected. The sha256 file hash does not match")
        raise PermissionError(13, "Permission denied", "/readonly/datasets")

    monkeypatch.setattr(keras.utils, "get_file", get_file)
    with pytest.raises(DataError, match=words):
        cifar10._download_via_keras()
