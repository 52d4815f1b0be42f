"""Diagnostics: confusion matrices, per-class report, review helpers, figures and the diagnose command."""

from __future__ import annotations

import json

import numpy as np
import pytest

from visiondl_keras.errors import ConfigError
from visiondl_keras.evaluation.diagnostics import (
    classification_report,
    confusion_matrices,
    highest_loss_indices,
    misclassification_review,
    most_confident_mistakes,
    most_confused_pairs,
    per_sample_loss,
)
from visiondl_keras.evaluation.metrics import softmax

NAMES = ("a", "b", "c")


def test_confusion_matrices_known_values():
    y = np.array([0, 0, 0, 1, 1, 2])
    p = np.array([0, 1, 1, 1, 1, 0])
    cms = confusion_matrices(y, p, 4)
    np.testing.assert_array_equal(cms["counts"][:3, :3], [[1, 2, 0], [0, 2, 0], [1, 0, 0]])
    np.testing.assert_allclose(cms["normalized"][0, :3], [1 / 3, 2 / 3, 0])
    assert np.all(cms["normalized"][3] == 0)  # a class without samples: zero row, no NaN
    np.testing.assert_allclose(cms["normalized"][:3].sum(1), 1.0)


def test_classification_report_matches_hand_computation():
    y = np.array([0, 0, 0, 1, 1, 2])
    p = np.array([0, 1, 1, 1, 1, 0])
    rep = classification_report(y, p, NAMES)
    assert rep["per_class"]["a"] == pytest.approx({"precision": 0.5, "recall": 1 / 3, "f1": 0.4, "support": 3})
    assert rep["per_class"]["b"]["precision"] == pytest.approx(0.5)
    assert rep["per_class"]["c"] == {"precision": 0.0, "recall": 0.0, "f1": 0.0, "support": 1}
    assert rep["accuracy"] == pytest.approx(0.5)
    assert rep["macro"]["recall"] == pytest.approx((1 / 3 + 1 + 0) / 3)


def test_most_confused_pairs():
    cm = np.array([[5, 3, 0], [1, 7, 0], [4, 0, 2]])
    pairs = most_confused_pairs(cm, NAMES, k=5)
    assert [(q["true"], q["predicted"], q["count"]) for q in pairs] == [("c", "a", 4), ("a", "b", 3), ("b", "a", 1)]
    assert pairs[0]["rate"] == pytest.approx(4 / 6)


def test_most_confident_mistakes_and_highest_loss():
    probs = np.array(
        [
            [0.90, 0.05, 0.05],  # right
            [0.10, 0.80, 0.10],  # wrong (label 0), confidence 0.8
            [0.30, 0.30, 0.40],  # wrong (label 0), confidence 0.4, p_true 0.3
            [0.05, 0.05, 0.90],  # wrong (label 1), confidence 0.9, p_true 0.05
            [0.20, 0.60, 0.20],  # right (label 1)
        ]
    )
    labels = np.array([0, 0, 0, 1, 1])
    assert most_confident_mistakes(probs, labels, 10).tolist() == [3, 1, 2]
    assert most_confident_mistakes(probs, labels, 2).tolist() == [3, 1]
    assert most_confident_mistakes(probs, labels, 0).tolist() == []
    assert highest_loss_indices(probs, labels, 5).tolist() == [3, 1, 2, 4, 0]
    np.testing.assert_allclose(per_sample_loss(probs, labels)[[0, 3]], -np.log([0.9, 0.05]))
    # ties: the lower index first
    tie = np.array([[0.2, 0.8], [0.2, 0.8]])
    assert most_confident_mistakes(tie, np.array([0, 0]), 2).tolist() == [0, 1]
    with pytest.raises(ConfigError, match="labels"):
        most_confident_mistakes(probs, labels[:2], 1)
    with pytest.raises(ConfigError, match="k must"):
        highest_loss_indices(probs, labels, -1)
    with pytest.raises(ConfigError, match="lie in"):
        highest_loss_indices(probs, np.array([0, 0, 0, 1, 3]), 1)


def test_misclassification_review_items():
    probs = softmax(np.array([[3.0, 0.0, 0.0], [0.0, 4.0, 0.0], [0.0, 0.0, 1.0]]))
    items = misclassification_review(probs, np.array([0, 0, 2]), NAMES, k=2, indices=np.array([10, 20, 30]))
    assert [it["index"] for it in items] == [20, 30]
    assert items[0]["true"] == "a" and items[0]["predicted"] == "b"
    assert items[0]["confidence"] == pytest.approx(probs[1].max())
    assert items[0]["loss"] == pytest.approx(-np.log(probs[1, 0]))


def test_softmax():
    p = softmax(np.array([[1000.0, 1000.0], [0.0, np.log(3.0)]]))
    np.testing.assert_allclose(p, [[0.5, 0.5], [0.25, 0.75]], rtol=1e-6)
    np.testing.assert_allclose(softmax(np.array([[0.0, 2.0]]), temperature=2.0), softmax(np.array([[0.0, 1.0]])))
    with pytest.raises(ConfigError):
        softmax(np.zeros((1, 2)), temperature=0)


def test_figures_render():
    from visiondl_keras.reporting import plots

    rng = np.random.default_rng(0)
    cm = confusion_matrices(rng.integers(0, 3, 50), rng.integers(0, 3, 50), 3)
    figs = [
        plots.confusion_matrix_figure(cm["normalized"], NAMES, cm["counts"]),
        plots.per_class_figure(classification_report(rng.integers(0, 3, 50), rng.integers(0, 3, 50), NAMES)),
        plots.robustness_curves({"sigmas": [0, 8], "accuracy": [0.9, 0.5]},
                                {"epsilons": [0, 8], "fgsm_accuracy": [0.9, 0.2], "pgd_accuracy": [0.9, 0.0]}),
        plots.corruption_heatmap({"corruptions": ["fog", "snow"], "severities": [1, 2], "accuracy": {"fog": [0.8, 0.7], "snow": [0.6, 0.5]},
                                  "mean_corruption_accuracy": 0.65, "clean_accuracy": 0.9, "relative_accuracy": 0.72}),
    ]
    for f in figs:
        assert f.axes


# ----------------------------------------------------------------------------- the command


@pytest.fixture(scope="module")
def tiny_setup(tmp_path_factory):
    """A 10-class image-folder tree (40 test images) and a tiny untrained checkpoint."""
    import keras
    from PIL import Image

    from visiondl_keras.data.cifar10 import CLASS_NAMES
    from visiondl_keras.models import build_simple_cnn

    root = tmp_path_factory.mktemp("diag")
    rng = np.random.default_rng(0)
    for split, n in (("train", 1), ("test", 4)):
        for name in CLASS_NAMES:
            folder = root / "tree" / split / name
            folder.mkdir(parents=True)
            for i in range(n):
                Image.fromarray(rng.integers(0, 256, (32, 32, 3), dtype=np.uint8)).save(folder / f"{i}.png")
    keras.utils.set_random_seed(0)
    ckpt = root / "tiny.keras"
    build_simple_cnn(width=4).save(ckpt)
    return root, ckpt


def test_diagnose_command_writes_everything(tiny_setup, monkeypatch, capsys):
    from visiondl_keras.cli.main import main

    root, ckpt = tiny_setup
    monkeypatch.setenv("VISIONDL_CACHE", str(root / "cache"))
    out = root / "out"
    argv = ["diagnose", str(ckpt), "--data", str(root / "tree"), "--out", str(out), "--quiet", "--severities", "1",
            "--corruptions", "contrast,fog", "--epsilons", "0,2", "--sigmas", "0,8", "--pgd-steps", "2",
            "--gallery-size", "6", "--review-size", "5", "--limit", "30", "--attack-limit", "20"]
    assert main(argv) == 0
    res = json.loads((out / "metrics" / "diagnostics_tiny.json").read_text())
    assert res["data"]["num_images"] == 30 and res["data"]["subset"]
    assert np.array(res["confusion_matrix"]).sum() == 30
    assert len(res["misclassification_review"]["indices"]) == 5
    assert len(res["gradcam"]["gallery_indices"]) == 6 and "sanity_check" in res["gradcam"]
    assert res["attacks"]["epsilons"] == [0.0, 2.0] and "checks" in res["attacks"]
    assert res["noise"]["accuracy"][0] == pytest.approx(res["accuracy"])
    assert res["attacks"]["num_images"] == 20 and res["complete"] is True
    assert set(res["corruptions"]["accuracy"]) == {"contrast", "fog"}
    assert set(res["timings_s"]) >= {"gradcam", "attacks", "corruptions", "total"}
    for sub, names in (("diagnostics", ("confusion", "per_class", "misclassified")), ("gradcam", ("gallery", "sanity_check")),
                       ("robustness", ("attacks", "corruption_heatmap", "corruption_examples"))):
        for n in names:
            assert (out / "figures" / sub / f"tiny_{n}.png").stat().st_size > 1000
    assert capsys.readouterr().err.count("Traceback") == 0


def test_diagnose_skip_and_run_dir_default_layout(tiny_setup, monkeypatch):
    import shutil

    from visiondl_keras.cli.main import main

    root, ckpt = tiny_setup
    monkeypatch.setenv("VISIONDL_CACHE", str(root / "cache"))
    run = root / "run"
    run.mkdir()
    shutil.copy(ckpt, run / "best.keras")
    assert main(["diagnose", str(run), "--data", str(root / "tree"), "--quiet", "--skip", "gradcam,noise,attacks,corruptions"]) == 0
    res = json.loads((run / "metrics" / "diagnostics.json").read_text())
    assert "gradcam" not in res and "corruptions" not in res and res["data"]["num_images"] == 40 and res["complete"]
    assert (run / "figures" / "diagnostics" / "confusion.png").is_file()


@pytest.mark.parametrize(
    "extra, message",
    [
        (["--corruptions", "rain"], "unknown corruption"),
        (["--severities", "0"], "severities"),
        (["--limit", "0"], "limit"),
        (["--temperature", "0"], "temperature"),
    ],
)
def test_diagnose_user_errors(tiny_setup, capsys, extra, message):
    from visiondl_keras.cli.main import main

    _, ckpt = tiny_setup
    assert main(["diagnose", str(ckpt), "--quiet", *extra]) == 1
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err


def test_diagnose_unknown_stage_is_a_usage_error(tiny_setup, capsys):
    from visiondl_keras.cli.main import main

    _, ckpt = tiny_setup
    with pytest.raises(SystemExit) as exc:
        main(["diagnose", str(ckpt), "--quiet", "--skip", "everything"])
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert "--skip" in err and "unknown stage" in err and "Traceback" not in err


def test_diagnose_library_call_on_a_model_object(tiny_setup, monkeypatch, tmp_path):
    """diagnose() takes a model and a Dataset, writes the JSON and returns the same report."""
    from visiondl_keras.data.cifar10 import load_cifar10
    from visiondl_keras.evaluation.report import diagnose
    from visiondl_keras.models import load_checkpoint

    root, ckpt = tiny_setup
    monkeypatch.setenv("VISIONDL_CACHE", str(root / "cache"))
    model, ds = load_checkpoint(ckpt), load_cifar10(str(root / "tree"), progress=False)
    with pytest.raises(ConfigError, match="out_dir"):
        diagnose(model, ds, stages=(), progress=False)
    with pytest.raises(ConfigError, match="unknown stage"):
        diagnose(model, ds, out_dir=tmp_path, stages=("everything",), progress=False)
    report = diagnose(model, ds, out_dir=tmp_path, stages=("noise",), sigmas=(0, 8), temperature=2.0, progress=False)
    written = json.loads((tmp_path / "metrics" / "diagnostics.json").read_text())
    assert written == json.loads(json.dumps(report))
    assert report["model"] == model.name and report["temperature"] == 2.0 and report["complete"]
    assert report["noise"]["accuracy"][0] == pytest.approx(report["accuracy"]) and "gradcam" not in report
    assert (tmp_path / "figures" / "robustness" / "attacks.png").is_file()


def test_diagnose_missing_checkpoint(tmp_path, capsys):
    from visiondl_keras.cli.main import main

    assert main(["diagnose", str(tmp_path / "nope.keras"), "--quiet"]) == 1
    err = capsys.readouterr().err
    assert "not found" in err and "Traceback" not in err
