"""The one home of softmax and accuracy: values, stability, temperatures and bad input."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.special import log_softmax as scipy_log_softmax
from scipy.special import softmax as scipy_softmax

from visiondl_keras.errors import ConfigError
from visiondl_keras.evaluation.metrics import (
    accuracy,
    check_temperature,
    evaluate_logits,
    log_softmax,
    per_class_accuracy,
    softmax,
)


def test_softmax_matches_scipy_and_is_stable():
    z = np.random.default_rng(0).normal(size=(50, 10)) * 5
    np.testing.assert_allclose(softmax(z), scipy_softmax(z, axis=1), rtol=1e-12)
    np.testing.assert_allclose(softmax(z, temperature=2.5), scipy_softmax(z / 2.5, axis=1), rtol=1e-12)
    np.testing.assert_allclose(softmax(z.T, axis=0), scipy_softmax(z.T, axis=0), rtol=1e-12)
    np.testing.assert_allclose(log_softmax(z, 0.5), scipy_log_softmax(z / 0.5, axis=1), rtol=1e-10)
    p = softmax([[1000.0, 1000.0], [-1000.0, 0.0]])
    assert np.all(np.isfinite(p)) and p.dtype == np.float64
    np.testing.assert_allclose(p, [[0.5, 0.5], [0.0, 1.0]])


@pytest.mark.parametrize("bad", [0, -1.0, float("nan"), float("inf"), "warm", None])
def test_bad_temperatures_raise(bad):
    with pytest.raises(ConfigError, match="temperature"):
        softmax(np.zeros((1, 2)), temperature=bad)
    with pytest.raises(ConfigError, match="temperature"):
        check_temperature(bad)


def test_accuracy_and_per_class_accuracy():
    scores = np.array([[0.9, 0.1, 0.0], [0.2, 0.8, 0.0], [0.6, 0.4, 0.0], [0.0, 0.3, 0.7]])
    labels = np.array([0, 1, 1, 2])
    assert accuracy(scores, labels) == pytest.approx(0.75)
    assert per_class_accuracy(scores, labels, ["a", "b", "c", "d"]) == {"a": 1.0, "b": 0.5, "c": 1.0, "d": None}
    assert np.isnan(accuracy(np.zeros((0, 3)), np.zeros(0, int)))
    with pytest.raises(ConfigError, match="labels"):
        accuracy(scores, labels[:2])
    with pytest.raises(ConfigError, match="scores"):
        accuracy(np.zeros(4), labels)


def test_evaluate_logits_matches_a_direct_computation():
    rng = np.random.default_rng(1)
    logits = rng.normal(size=(200, 4)) * 3
    y = rng.integers(0, 3, 200)  # class "d" never occurs
    r = evaluate_logits(logits, y, ["a", "b", "c", "d"])
    assert r["n"] == 200 and r["accuracy"] == pytest.approx(np.mean(logits.argmax(1) == y))
    assert r["loss"] == pytest.approx(-np.mean(scipy_log_softmax(logits, axis=1)[np.arange(200), y]))
    assert r["per_class_accuracy"]["d"] is None
    assert r["per_class_accuracy"]["a"] == pytest.approx(np.mean(logits[y == 0].argmax(1) == 0))
