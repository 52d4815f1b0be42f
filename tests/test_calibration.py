"""Calibration metrics, temperature scaling, the sidecar and the ``calibrate`` command."""

from __future__ import annotations

import json
import warnings

import numpy as np
import pytest

from visiondl_keras.errors import ConfigError, ModelError
from visiondl_keras.evaluation.calibration import (
    adaptive_calibration_error,
    apply_temperature,
    brier_score,
    calibration_bins,
    calibration_metrics,
    expected_calibration_error,
    fit_temperature,
    load_temperature,
    lowest_ece_temperature,
    maximum_calibration_error,
    negative_log_likelihood,
    read_calibration,
    reliability_diagram,
    save_temperature,
    sidecar_path,
    temperature_nll,
)
from visiondl_keras.evaluation.metrics import softmax


def reference_ece(probs, labels, n_bins):
    """ECE written out directly from Guo et al.: bin m holds confidences in ((m-1)/M, m/M]."""
    conf = probs.max(axis=1)
    pred = probs.argmax(axis=1)
    n = len(labels)
    ece, mce = 0.0, 0.0
    for m in range(1, n_bins + 1):
        lo, hi = (m - 1) / n_bins, m / n_bins
        in_bin = [i for i in range(n) if lo < conf[i] <= hi]
        if not in_bin:
            continue
        acc = sum(pred[i] == labels[i] for i in in_bin) / len(in_bin)
        avg_conf = sum(conf[i] for i in in_bin) / len(in_bin)
        ece += len(in_bin) / n * abs(acc - avg_conf)
        mce = max(mce, abs(acc - avg_conf))
    return ece, mce


def synthetic(n=3000, k=10, seed=0, sharpness=1.0):
    rng = np.random.default_rng(seed)
    probs = rng.dirichlet(np.full(k, 0.3), size=n) ** sharpness
    probs /= probs.sum(axis=1, keepdims=True)
    labels = rng.integers(0, k, n)
    labels[: n // 2] = probs[: n // 2].argmax(axis=1)  # some signal
    return probs, labels


@pytest.mark.parametrize("n_bins", [1, 5, 10, 15, 20])
def test_ece_and_mce_match_a_direct_reference(n_bins):
    probs, labels = synthetic(seed=n_bins)
    ece, mce = reference_ece(probs, labels, n_bins)
    assert expected_calibration_error(probs, labels, n_bins) == pytest.approx(ece, abs=1e-12)
    assert maximum_calibration_error(probs, labels, n_bins) == pytest.approx(mce, abs=1e-12)


def test_bin_edges_are_left_open_right_closed():
    # top-label confidences exactly on the edges m/M belong to bin m: ((m-1)/M, m/M]
    confs = np.array([0.2, 0.4, 0.6, 0.8, 1.0])
    probs = np.concatenate([confs[:, None], np.repeat(((1 - confs) / 9)[:, None], 9, axis=1)], axis=1)
    b = calibration_bins(probs, np.zeros(5, dtype=int), n_bins=5)
    assert b["counts"].tolist() == [1, 1, 1, 1, 1]
    assert np.allclose(b["confidence"], confs)


def test_ece_known_values():
    assert expected_calibration_error([[0.9, 0.1], [0.6, 0.4]], [0, 1], n_bins=10) == pytest.approx(0.35)
    # always right with confidence 1: perfectly calibrated
    assert expected_calibration_error(np.eye(3), [0, 1, 2]) == 0.0
    # a calibrated forecaster: labels drawn from the predicted distribution
    rng = np.random.default_rng(0)
    probs = rng.dirichlet(np.ones(4), size=20000)
    labels = np.array([rng.choice(4, p=p) for p in probs])
    assert expected_calibration_error(probs, labels) < 0.02


def test_adaptive_ece_matches_equal_mass_reference():
    probs, labels = synthetic(n=1000, seed=3)
    conf, correct = probs.max(1), probs.argmax(1) == labels
    order = np.argsort(conf, kind="stable")
    ref = sum(len(g) * abs(correct[g].mean() - conf[g].mean()) for g in np.array_split(order, 15)) / 1000
    assert adaptive_calibration_error(probs, labels, 15) == pytest.approx(ref)


def test_nll_and_brier_agree_with_scikit_learn():
    from sklearn.metrics import brier_score_loss, log_loss

    probs, labels = synthetic(n=500, k=4, seed=1)
    assert negative_log_likelihood(probs, labels) == pytest.approx(log_loss(labels, probs, labels=range(4)), rel=1e-9)
    binary = probs[:, :2] / probs[:, :2].sum(axis=1, keepdims=True)
    y = (labels % 2).astype(int)
    # the multi-class Brier score of two classes is twice the binary one
    assert brier_score(binary, y) == pytest.approx(2 * brier_score_loss(y, binary[:, 1]))


def test_calibration_metrics_bundle():
    probs, labels = synthetic(n=400, seed=2)
    m = calibration_metrics(probs, labels)
    assert set(m) == {"n", "accuracy", "nll", "ece", "adaptive_ece", "mce", "brier", "mean_confidence"}
    assert m["accuracy"] == pytest.approx(np.mean(probs.argmax(1) == labels))
    assert 0 <= m["ece"] <= m["mce"] <= 1


@pytest.mark.parametrize("true_t", [0.5, 1.0, 2.5])
def test_fit_temperature_recovers_a_known_temperature(true_t):
    rng = np.random.default_rng(int(true_t * 10))
    logits = rng.normal(size=(20000, 10)) * 3.0
    p = softmax(logits / true_t)
    labels = (p.cumsum(axis=1) > rng.random((len(p), 1))).argmax(axis=1)  # one draw from each row
    fitted = fit_temperature(logits, labels)
    assert fitted == pytest.approx(true_t, rel=0.05)
    # it is the minimum of the NLL
    for t in (fitted * 0.9, fitted * 1.1):
        assert temperature_nll(logits, labels, fitted) < temperature_nll(logits, labels, t)


def test_lowest_ece_temperature_is_a_bound_that_a_shape_error_keeps_high():
    rng = np.random.default_rng(3)
    logits = rng.normal(size=(20000, 10)) * 3.0
    p = softmax(logits / 2.0)
    labels = (p.cumsum(axis=1) > rng.random((len(p), 1))).argmax(axis=1)
    t, ece = lowest_ece_temperature(logits, labels)
    assert t == pytest.approx(2.0, rel=0.15) and ece < 0.01  # a pure scale error: a temperature fixes it
    fitted = fit_temperature(logits, labels)
    assert ece <= expected_calibration_error(apply_temperature(logits, fitted), labels) + 1e-9
    # a shape error: every image is right with probability 0.8 however confident the model is
    z = rng.normal(size=(20000, 10)) * rng.uniform(0.5, 6.0, size=(20000, 1))
    right = rng.random(20000) < 0.8
    y = np.where(right, z.argmax(1), (z.argmax(1) + rng.integers(1, 10, 20000)) % 10)
    _, shape_ece = lowest_ece_temperature(z, y)
    assert shape_ece > 0.05
    with pytest.raises(ConfigError, match="bounds"):
        lowest_ece_temperature(logits, labels, bounds=(2.0, 1.0))


def test_temperature_scaling_keeps_accuracy_and_lowers_validation_nll():
    rng = np.random.default_rng(7)
    true_logits = rng.normal(size=(6000, 10)) * 2.5
    p = softmax(true_logits)
    labels = (p.cumsum(axis=1) > rng.random((len(p), 1))).argmax(axis=1)
    logits = 3.0 * true_logits  # an over-confident model
    val, test = slice(0, 3000), slice(3000, None)
    t = fit_temperature(logits[val], labels[val])
    assert t == pytest.approx(3.0, rel=0.1)
    for split in (val, test):
        before, after = apply_temperature(logits[split], 1.0), apply_temperature(logits[split], t)
        assert np.array_equal(before.argmax(1), after.argmax(1))
        assert negative_log_likelihood(after, labels[split]) < negative_log_likelihood(before, labels[split])
        assert expected_calibration_error(after, labels[split]) < expected_calibration_error(before, labels[split])


def test_apply_temperature_values():
    out = apply_temperature([[2.0, 0.0]], 2.0)
    assert out.dtype == np.float32
    assert np.allclose(out, [[1 / (1 + np.exp(-1)), 1 - 1 / (1 + np.exp(-1))]])
    assert np.allclose(apply_temperature([[1000.0, 0.0]], 1.0), [[1.0, 0.0]])  # stable


@pytest.mark.parametrize(
    "call",
    [
        lambda: expected_calibration_error(np.ones((3, 2)) / 2, [0, 1]),  # label count
        lambda: expected_calibration_error(np.ones(3), [0, 1, 0]),  # not 2-D
        lambda: expected_calibration_error([[np.nan, 1.0]], [0]),
        lambda: expected_calibration_error([[0.5, 0.5]], [2]),  # label out of range
        lambda: expected_calibration_error([[0.5, 0.5]], [0], n_bins=0),
        lambda: fit_temperature(np.zeros((0, 3)), np.zeros(0, dtype=int)),
        lambda: fit_temperature(np.zeros((2, 3)), [0, 1], bounds=(2.0, 1.0)),
        lambda: apply_temperature([[1.0, 2.0]], 0.0),
        lambda: apply_temperature([[1.0, 2.0]], "hot"),
    ],
)
def test_bad_arguments_raise_config_errors(call):
    with pytest.raises(ConfigError):
        call()


def test_sidecar_round_trip_and_missing(tmp_path):
    ckpt = tmp_path / "model.keras"
    assert load_temperature(ckpt) == 1.0  # no checkpoint, no sidecar
    ckpt.write_bytes(b"weights v1")
    assert load_temperature(ckpt) == 1.0
    path = save_temperature(ckpt, 1.75, split={"seed": 3})
    assert path == sidecar_path(ckpt) == tmp_path / "model.keras.calibration.json"
    assert load_temperature(ckpt) == 1.75
    record = read_calibration(ckpt)
    assert record["split"] == {"seed": 3} and record["checkpoint"] == "model.keras"


def test_sidecar_of_another_checkpoint_version_is_ignored(tmp_path):
    ckpt = tmp_path / "model.keras"
    ckpt.write_bytes(b"weights v1")
    save_temperature(ckpt, 2.0)
    ckpt.write_bytes(b"weights v2, retrained")
    with pytest.warns(UserWarning, match="different version"):
        assert load_temperature(ckpt) == 1.0


def test_corrupt_sidecar_and_missing_checkpoint_raise(tmp_path):
    ckpt = tmp_path / "m.keras"
    with pytest.raises(ModelError, match="checkpoint not found"):
        save_temperature(ckpt, 1.2)
    ckpt.write_bytes(b"x")
    sidecar_path(ckpt).write_text("{not json")
    with pytest.raises(ModelError, match="unreadable calibration sidecar"):
        load_temperature(ckpt)
    sidecar_path(ckpt).write_text(json.dumps({"temperature": -1}))
    with pytest.raises(ModelError):
        load_temperature(ckpt)


def test_reliability_diagram_is_one_figure_with_a_histogram(tmp_path):
    from visiondl_keras.reporting.plots import save_figure

    probs, labels = synthetic(n=300)
    fig = reliability_diagram(probs, labels, n_bins=10, title="test")
    assert len(fig.axes) == 2
    heights = [p.get_height() for p in fig.axes[1].patches]
    assert len(heights) == 10 and sum(heights) == pytest.approx(1.0)
    out = save_figure(fig, tmp_path / "rel.png")
    assert out.stat().st_size > 1000


# --------------------------------------------------------------------------------------------
# The calibrate command on a tiny image-folder data set and an untrained model
# --------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    from PIL import Image

    from visiondl_keras.data.cifar10 import CLASS_NAMES
    from visiondl_keras.models import build_simple_cnn

    root = tmp_path_factory.mktemp("calib")
    rng = np.random.default_rng(0)
    for split, n in (("train", 12), ("test", 6)):
        for k, name in enumerate(CLASS_NAMES):
            folder = root / "tree" / split / name
            folder.mkdir(parents=True)
            for i in range(n):
                base = np.array([25 * k, 255 - 25 * k, (80 * k) % 256])
                img = np.clip(base + rng.normal(0, 30, (32, 32, 3)), 0, 255).astype(np.uint8)
                Image.fromarray(img).save(folder / f"{i:03d}.png")
    run = root / "run"
    run.mkdir()
    (run / "config.json").write_text(json.dumps({"seed": 1, "val_size": 40, "limit": None, "test_limit": None,
                                                 "data": str(root / "tree")}))
    model = build_simple_cnn(width=4)
    w, b = model.get_layer("logits").get_weights()
    model.get_layer("logits").set_weights([w * 20, b])  # an over-confident untrained model
    model.save(run / "best.keras")
    return root, run


def test_calibrate_command_writes_sidecar_tables_and_diagrams(tiny_run, monkeypatch, capsys):
    from visiondl_keras.cli.main import main

    root, run = tiny_run
    monkeypatch.setenv("VISIONDL_CACHE", str(root / "cache"))
    assert main(["calibrate", str(run), "--quiet", "--n-bins", "10"]) == 0
    result = json.loads((run / "calibration_best.json").read_text())
    t = result["temperature"]
    assert load_temperature(run / "best.keras") == pytest.approx(t)
    assert result["val"]["before"]["n"] == 40 and result["test"]["before"]["n"] == 60
    for split in ("val", "test"):
        assert result[split]["after"]["accuracy"] == result[split]["before"]["accuracy"]
    assert result["val"]["after"]["nll"] <= result["val"]["before"]["nll"]
    assert result["split"]["seed"] == 1
    table = (run / "calibration_best.md").read_text()
    assert "| test (60 images), after |" in table and f"{t:.3f}" in table
    for when in ("before", "after"):
        assert (run / "figures" / f"reliability_best_{when}.png").stat().st_size > 1000
    sidecar = read_calibration(run / "best.keras")
    assert sidecar["test"]["after"]["ece"] == result["test"]["after"]["ece"]
    floor = result["test_ece_floor"]  # a bound searched on the test split: at most the fitted temperature's ECE
    assert 0 <= floor["ece"] <= result["test"]["after"]["ece"] + 0.02 and "test_ece_floor" not in sidecar
    assert f"below {100 * floor['ece']:.2f}%" in table


def test_calibrate_reproduces_the_training_validation_split(tiny_run, monkeypatch):
    from visiondl_keras.data.cifar10 import load_cifar10
    from visiondl_keras.data.splits import load_run_splits as load_splits
    from visiondl_keras.data.splits import train_val_split
    from visiondl_keras.runs import split_settings

    root, run = tiny_run
    monkeypatch.setenv("VISIONDL_CACHE", str(root / "cache"))
    cfg = json.loads((run / "config.json").read_text())
    ours = load_splits(split_settings(cfg), progress=False)
    theirs = train_val_split(load_cifar10(cfg["data"], progress=False), cfg["val_size"], cfg["seed"])
    assert np.array_equal(ours.x_val, theirs.x_val) and np.array_equal(ours.y_val, theirs.y_val)


def test_calibrate_user_errors_are_one_line(tiny_run, tmp_path, capsys):
    from visiondl_keras.cli.main import main

    _, run = tiny_run
    assert main(["calibrate", str(tmp_path / "nothing")]) == 1
    assert "no such checkpoint" in capsys.readouterr().err
    lone = tmp_path / "lone.keras"
    lone.write_bytes((run / "best.keras").read_bytes())
    assert main(["calibrate", str(lone)]) == 1
    err = capsys.readouterr().err
    assert "--run-dir" in err and err.count("\n") == 1
    assert main(["calibrate", str(lone), "--run-dir", str(tmp_path)]) == 1
    assert "no config.json" in capsys.readouterr().err
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with pytest.raises(SystemExit) as exc:
            main(["calibrate"])
    assert exc.value.code == 2
