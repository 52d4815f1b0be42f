"""Augmentation ablation: table algebra, files written, resumable runs, errors."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import make_splits

from visiondl_keras.errors import ConfigError
from visiondl_keras.io import read_json
from visiondl_keras.training.ablation import ablate_augment, markdown_table, summarize
from visiondl_keras.training.config import TrainConfig


def test_summarize_mean_and_sample_std():
    rows = summarize([{"policy": "a", "test_accuracy": 0.5}, {"policy": "b", "test_accuracy": 0.7},
                      {"policy": "a", "test_accuracy": 0.7}])
    assert [r["policy"] for r in rows] == ["a", "b"]
    assert rows[0]["mean"] == pytest.approx(0.6) and rows[0]["std"] == pytest.approx(np.std([0.5, 0.7], ddof=1))
    assert rows[1]["std"] == 0.0
    md = markdown_table(rows, "synthetic data", "tiny budget")
    assert "| a | 0.6000 ± 0.1414 | 2 | 0.5000, 0.7000 |" in md and "b **(best)**" in md


def test_ablation_writes_table_and_figures_and_reuses_finished_runs(tmp_path):
    splits = make_splits(n_train=100, n_val=20, n_test=40)
    base = TrainConfig(arch="simple", width=4, epochs=1, batch_size=50, val_size=20, warmup_epochs=0.5)
    report = ablate_augment(base, ["baseline", "mixup"], [0, 1], tmp_path / "runs", tmp_path / "out", splits=splits,
                            progress=False, log=lambda *a: None)
    assert [r["policy"] for r in report["rows"]] == ["baseline", "mixup"]
    assert all(r["n"] == 2 for r in report["rows"])
    saved = read_json(tmp_path / "out" / "metrics" / "augment_ablation.json")
    assert saved["rows"] == report["rows"]
    for f in ("metrics/augment_ablation.md", "figures/augment_ablation.png", "figures/augment_policies/mixup.png"):
        assert (tmp_path / "out" / f).is_file()
    accs = {(r["policy"], r["seed"]): r["test_accuracy"] for r in report["runs"]}
    # a second call finds every run completed and returns the same numbers without training
    again = ablate_augment(base, ["baseline", "mixup"], [0, 1], tmp_path / "runs", tmp_path / "out2", splits=splits,
                           progress=False, log=lambda *a: None)
    assert {(r["policy"], r["seed"]): r["test_accuracy"] for r in again["runs"]} == accs


def test_ablation_rejects_unknown_policy(tmp_path):
    with pytest.raises(ConfigError, match="unknown policies"):
        ablate_augment(TrainConfig(), ["baseline", "autoaugment"], [0], tmp_path, tmp_path, splits=make_splits())
