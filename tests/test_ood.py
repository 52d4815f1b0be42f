"""The out-of-distribution caution: threshold, AUROC, the offline OOD sets, and what infer reports."""

from __future__ import annotations

import json

import numpy as np
import pytest

from visiondl_keras.errors import ConfigError
from visiondl_keras.evaluation.ood import (
    OOD_FAMILIES,
    auroc,
    fit_threshold,
    is_ood,
    msp_score,
    ood_benchmark,
    ood_sets,
)


def test_threshold_accepts_the_stated_share_of_validation_scores():
    scores = np.linspace(0.1, 1.0, 1000)
    t = fit_threshold(scores, 0.95)
    assert np.mean(~is_ood(scores, t)) == pytest.approx(0.95, abs=0.002)
    assert np.mean(~is_ood(scores, fit_threshold(scores, 0.8))) == pytest.approx(0.8, abs=0.002)
    for bad in (0.0, 1.0, 1.5):
        with pytest.raises(ConfigError, match="acceptance"):
            fit_threshold(scores, bad)
    with pytest.raises(ConfigError, match="no validation scores"):
        fit_threshold([], 0.9)


def test_msp_and_auroc():
    probs = np.array([[0.9, 0.1], [0.5, 0.5], [0.2, 0.8]])
    np.testing.assert_allclose(msp_score(probs), [0.9, 0.5, 0.8])
    assert auroc([0.9, 0.8], [0.5, 0.4]) == 1.0 and auroc([0.4, 0.5], [0.8, 0.9]) == 0.0
    assert auroc([0.5, 0.6], [0.5, 0.6]) == pytest.approx(0.5)
    with pytest.raises(ConfigError):
        msp_score(np.zeros(3))


def test_ood_sets_are_reproducible_images_of_every_family():
    test = np.random.default_rng(1).integers(0, 256, size=(60, 32, 32, 3), dtype=np.uint8)
    a, b = ood_sets(test, n=20, seed=3), ood_sets(test, n=20, seed=3)
    assert tuple(a) == OOD_FAMILIES
    for name in OOD_FAMILIES:
        assert a[name].shape == (20, 32, 32, 3) and a[name].dtype == np.uint8, name
        np.testing.assert_array_equal(a[name], b[name])
    assert all(len(np.unique(img.reshape(-1, 3), axis=0)) == 1 for img in a["flat_colour"])
    assert a["package_images"].std() > 10  # real photographs and icons, not blank crops


def test_benchmark_separates_a_model_that_is_unsure_on_noise():
    def predict(images):  # confident on smooth images, unsure on noisy ones
        rough = np.abs(np.diff(images.astype(np.float64), axis=2)).mean(axis=(1, 2, 3))
        top = np.clip(1.0 - rough / 128.0, 0.1, 1.0)
        return np.stack([top, 1 - top], axis=1)

    smooth = np.repeat(np.linspace(0, 255, 32, dtype=np.uint8)[None, None, :, None], 32, axis=1)
    test = np.repeat(np.repeat(smooth, 3, axis=3), 40, axis=0)
    bench = ood_benchmark(predict, test, test, n=30)
    assert bench["families"]["uniform_noise"]["auroc"] > 0.99 and bench["families"]["uniform_noise"]["flagged"] > 0.9
    assert 0 <= bench["test_flagged"] <= 0.05 + 1e-9
    assert set(bench["families"]) == set(OOD_FAMILIES) and 0 <= bench["mean_auroc"] <= 1


def test_infer_reports_the_caution_in_text_and_json(tmp_path, capsys):
    from PIL import Image

    from visiondl_keras.cli.infer import main
    from visiondl_keras.evaluation.calibration import save_temperature
    from visiondl_keras.evaluation.ood import ood_rule
    from visiondl_keras.models import build_simple_cnn

    ckpt = tmp_path / "m.keras"
    build_simple_cnn(width=4).save(ckpt)
    image = tmp_path / "x.png"
    Image.fromarray(np.random.default_rng(0).integers(0, 256, (32, 32, 3), dtype=np.uint8)).save(image)
    save_temperature(ckpt, 1.0, ood=ood_rule(0.999))  # an untrained model: every answer is unsure
    assert main([str(image), "--model", str(ckpt), "--json"]) == 0
    result = json.loads(capsys.readouterr().out)[0]
    assert result["ood"] is True and 0 < result["ood_score"] < 0.999 and result["ood_threshold"] == 0.999
    assert main([str(image), "--model", str(ckpt)]) == 0
    assert "caution: unlike CIFAR-10" in capsys.readouterr().out
    save_temperature(ckpt, 1.0, ood=ood_rule(0.0))
    assert main([str(image), "--model", str(ckpt), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)[0]["ood"] is False
    assert main([str(image), "--model", str(ckpt), "--json", "--no-calibration"]) == 0
    assert "ood" not in json.loads(capsys.readouterr().out)[0]  # the rule applies to calibrated probabilities


def test_export_metadata_carries_the_rule(tmp_path):
    from visiondl_keras.deploy.export import export_checkpoint
    from visiondl_keras.deploy.metadata import read_export_metadata
    from visiondl_keras.deploy.predictor import load_predictor
    from visiondl_keras.evaluation.calibration import save_temperature
    from visiondl_keras.evaluation.ood import ood_rule
    from visiondl_keras.models import build_simple_cnn

    ckpt = tmp_path / "m.keras"
    build_simple_cnn(width=4).save(ckpt)
    save_temperature(ckpt, 2.0, ood=ood_rule(0.4))
    out = export_checkpoint(ckpt, tmp_path / "m.tflite", progress=False, log=lambda *a: None)["tflite"]
    assert read_export_metadata(out)["ood"]["threshold"] == 0.4
    assert load_predictor(out).ood_threshold == 0.4
