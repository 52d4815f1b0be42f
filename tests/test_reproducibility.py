"""Seeds, environment record, atomic artifact writes."""

from __future__ import annotations

import json
import os

import keras
import numpy as np
import pytest

from visiondl_keras import environment_info, set_seed
from visiondl_keras.errors import ConfigError
from visiondl_keras.io import read_csv, write_csv, write_json


def test_set_seed_makes_numpy_and_keras_draws_repeat():
    set_seed(3)
    a = np.random.rand(3), keras.ops.convert_to_numpy(keras.random.normal((3,)))
    set_seed(3)
    b = np.random.rand(3), keras.ops.convert_to_numpy(keras.random.normal((3,)))
    np.testing.assert_array_equal(a[0], b[0])
    np.testing.assert_array_equal(a[1], b[1])
    with pytest.raises(ConfigError, match="seed must be a non-negative integer"):
        set_seed(-1)


def test_environment_info_records_versions_backend_and_cpus():
    info = environment_info()
    assert info["backend"] == keras.backend.backend()
    assert info["cpu_count"] == os.cpu_count()
    assert info["packages"]["keras"] == keras.__version__
    assert info["devices"]
    json.dumps(info)


def test_atomic_writes_leave_no_temporary_files(tmp_path):
    write_json(tmp_path / "a" / "m.json", {"x": np.float32(0.5), "arr": np.arange(3), "n": np.int64(2)})
    assert json.loads((tmp_path / "a" / "m.json").read_text()) == {"x": 0.5, "arr": [0, 1, 2], "n": 2}
    write_csv(tmp_path / "h.csv", [{"epoch": 1, "loss": 0.5}, {"epoch": 2, "loss": 0.25, "extra": "x"}])
    rows = read_csv(tmp_path / "h.csv")
    assert rows[1] == {"epoch": 2.0, "loss": 0.25, "extra": "x"}
    assert sorted(p.name for p in tmp_path.rglob("*") if p.is_file()) == ["h.csv", "m.json"]


def test_atomic_writes_use_the_umask_not_0600(tmp_path):
    old = os.umask(0o022)
    try:
        write_json(tmp_path / "p.json", {})
    finally:
        os.umask(old)
    assert (tmp_path / "p.json").stat().st_mode & 0o777 == 0o644
