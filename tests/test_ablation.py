"""Augmentation ablation: table algebra, files written, resumable runs, errors."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import make_splits

from visiondl_keras.errors import ConfigError
from visiondl_keras.io import read_json
from visiondl_keras.training.ablation import ablate_augment, markdown_table, summarize
from visiondl_keras.training.config import TrainConfig, preset_config


def test_summarize_mean_and_sample_std():
    rows = summarize([{"policy": "a", "test_accuracy": 0.5}, {"policy": "b", "test_accuracy": 0.7},
                      {"policy": "a", "test_accuracy": 0.7}])
    assert [r["policy"] for r in rows] == ["a", "b"]
    assert rows[0]["mean"] == pytest.approx(0.6) and rows[0]["std"] == pytest.approx(np.std([0.5, 0.7], ddof=1))
    assert rows[1]["std"] == 0.0
    md = markdown_table(rows, "synthetic data", "tiny budget")
    assert "| a | 0.6000 ± 0.1414 | 2 | 0.5000, 0.7000 |" in md and "b **(best)**" in md
    assert "gap" not in md and "gap_mean" not in rows[0]  # runs without a train accuracy (older files)


def test_summarize_train_test_gap():
    rows = summarize([{"policy": "a", "test_accuracy": 0.5, "train_accuracy": 0.9},
                      {"policy": "a", "test_accuracy": 0.7, "train_accuracy": 0.8}])
    assert rows[0]["train_mean"] == pytest.approx(0.85) and rows[0]["gap_mean"] == pytest.approx(0.25)
    md = markdown_table(rows, "synthetic data", "tiny budget")
    assert "| a **(best)** | 0.6000 ± 0.1414 | 0.8500 | +25.00 points | 2 | 0.5000, 0.7000 |" in md


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


def test_fast_recipe_ablation_writes_gaps_under_its_own_name(tmp_path):
    splits = make_splits(n_train=120, n_val=20, n_test=40)
    base = preset_config("fast", widths=[8, 16, 16], epochs=1, batch_size=60, precision="float32", tta_level=0)
    policies = ["none", "altflip+translate", "altflip+translate+cutmix"]
    report = ablate_augment(base, policies, [0], tmp_path / "runs", tmp_path / "out", splits=splits,
                            progress=False, log=lambda *a: None, name="augment_ablation_fast")
    assert [r["policy"] for r in report["rows"]] == policies
    for run in report["runs"]:
        assert run["gap"] == pytest.approx(run["train_accuracy"] - run["test_accuracy"])
    assert "fast recipe (airbench widths [8, 16, 16])" in report["budget"]
    for f in ("metrics/augment_ablation_fast.json", "metrics/augment_ablation_fast.md",
              "figures/augment_ablation_fast.png", "figures/augment_ablation_fast_gap.png",
              "figures/augment_policies/altflip_translate_cutmix.png"):
        assert (tmp_path / "out" / f).is_file()
    assert "train − test gap" in (tmp_path / "out" / "metrics" / "augment_ablation_fast.md").read_text()
    assert not (tmp_path / "out" / "metrics" / "augment_ablation.json").exists()


def test_ablation_rejects_unknown_policy(tmp_path):
    with pytest.raises(ConfigError, match="unknown policies"):
        ablate_augment(TrainConfig(), ["baseline", "autoaugment"], [0], tmp_path, tmp_path, splits=make_splits())
