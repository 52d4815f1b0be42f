"""Graded tests of exercise 08 (lesson 08): softmax_with_temperature, expected_calibration_error, fit_temperature.

Run: ``pytest exercises/test_ex08_calibration.py``.
"""

import math

import numpy as np
import pytest


def _softmax(z):
    z = z - z.max(axis=-1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=-1, keepdims=True)


def _tempered(t_true=2.0, n=4000, k=10, seed=0):
    """Logits whose labels are drawn from softmax(logits / t_true): the best temperature is about t_true."""
    rng = np.random.default_rng(seed)
    z = rng.normal(size=(n, k)) * 3.0
    p = _softmax(z / t_true)
    labels = (p.cumsum(axis=1) > rng.random((n, 1))).argmax(axis=1)
    return z, labels


def _nll(z, labels, t):
    return float(-np.log(_softmax(z / t)[np.arange(len(labels)), labels]).mean())


@pytest.mark.points(2)
def test_softmax_with_temperature_known_values(ex):
    """softmax([2, 0] / 2) = [0.731, 0.269]; T=1 is the plain softmax; rows sum to 1."""
    p = np.asarray(ex.softmax_with_temperature(np.array([[2.0, 0.0]]), 2.0))
    assert np.allclose(p, [[0.7310586, 0.2689414]], atol=1e-6), f"got {p.tolist()}: divide the logits by T"
    z = np.random.default_rng(0).normal(size=(5, 4))
    assert np.allclose(ex.softmax_with_temperature(z, 1.0), _softmax(z), atol=1e-8)
    assert np.allclose(np.sum(ex.softmax_with_temperature(z, 0.3), axis=-1), 1.0)


@pytest.mark.points(1)
def test_softmax_with_temperature_is_stable_for_huge_logits(ex):
    """Logits of 1000 must not overflow into nan or inf."""
    with np.errstate(all="ignore"):
        p = np.asarray(ex.softmax_with_temperature(np.array([[1000.0, 999.0, -1000.0]]), 0.5))
    assert np.all(np.isfinite(p)), f"got {p.tolist()}: subtract the row maximum before exp"
    assert np.allclose(p, _softmax(np.array([[2000.0, 1998.0, -2000.0]])), atol=1e-8)


@pytest.mark.points(1)
def test_softmax_with_temperature_softens_and_keeps_the_argmax(ex):
    """A higher temperature lowers the top probability but never changes which class is on top."""
    z = np.random.default_rng(1).normal(size=(50, 10)) * 4
    cold, warm = np.asarray(ex.softmax_with_temperature(z, 0.5)), np.asarray(ex.softmax_with_temperature(z, 3.0))
    assert np.array_equal(cold.argmax(1), warm.argmax(1))
    assert np.all(cold.max(1) > warm.max(1)), "T > 1 must soften the distribution"


@pytest.mark.points(1)
def test_ece_known_value(ex):
    """Two examples, 10 bins: |1 - 0.9| and |0 - 0.6| weighted 1/2 each: 0.35."""
    got = ex.expected_calibration_error(np.array([[0.9, 0.1], [0.6, 0.4]]), np.array([0, 1]), n_bins=10)
    assert math.isclose(got, 0.35, abs_tol=1e-9), f"got {got}"


@pytest.mark.points(2)
def test_ece_bins_are_left_open_right_closed(ex):
    """A confidence of exactly 0.5 falls in the bin (0, 0.5], and 1.0 in the last bin."""
    probs = np.array([[0.5, 0.5], [0.9, 0.1]])
    got = ex.expected_calibration_error(probs, np.array([0, 1]), n_bins=2)
    assert math.isclose(got, 0.7, abs_tol=1e-9), f"got {got}, expected 0.7 (bins (0, 0.5] and (0.5, 1])"
    probs = np.array([[1.0, 0.0], [1.0, 0.0], [0.75, 0.25]])
    got = ex.expected_calibration_error(probs, np.array([1, 1, 0]), n_bins=4)
    assert math.isclose(got, (2 / 3) * 1.0 + (1 / 3) * 0.25, abs_tol=1e-9), f"got {got}: confidence 1.0 belongs to the last bin"


@pytest.mark.points(2)
def test_ece_weights_bins_by_their_share_of_examples(ex):
    """A crowded bin counts more than a nearly empty one: the weight is n_bin / N."""
    probs = np.array([[0.95, 0.05]] * 9 + [[0.55, 0.45]])
    labels = np.array([0] * 9 + [1])
    got = ex.expected_calibration_error(probs, labels, n_bins=10)
    expected = 0.9 * 0.05 + 0.1 * 0.55
    assert math.isclose(got, expected, abs_tol=1e-9), f"got {got}, expected {expected}"


@pytest.mark.points(2)
def test_ece_matches_the_package(ex, package_function):
    """Same ECE as visiondl_keras.evaluation.calibration.expected_calibration_error on random predictions."""
    pkg = package_function("visiondl_keras.evaluation.calibration", "expected_calibration_error")
    for seed, n_bins in [(0, 15), (1, 10), (2, 3), (3, 1)]:
        rng = np.random.default_rng(seed)
        probs = _softmax(rng.normal(size=(400, 10)) * 2.5)
        labels = rng.integers(0, 10, size=400)
        labels[:200] = probs[:200].argmax(1)
        got, expected = ex.expected_calibration_error(probs, labels, n_bins), pkg(probs, labels, n_bins)
        assert math.isclose(got, expected, abs_tol=1e-9), f"n_bins={n_bins}: {got} != {expected}"


@pytest.mark.points(2)
def test_fit_temperature_recovers_a_known_temperature(ex):
    """Labels drawn from softmax(z / 2): the fitted T is close to 2 (logits are divided by T)."""
    z, labels = _tempered(2.0)
    t = ex.fit_temperature(z, labels)
    assert 1.85 < t < 2.15, f"fitted T = {t}, expected about 2"


@pytest.mark.points(1)
def test_fit_temperature_minimises_the_nll(ex):
    """The NLL at the fitted T is no worse than 1 % away on either side; under-confident logits give T < 1."""
    z, labels = _tempered(0.7, n=3000, seed=1)
    t = ex.fit_temperature(z, labels)
    assert t < 1.0, f"fitted T = {t} for an under-confident model, expected < 1"
    assert _nll(z, labels, t) <= min(_nll(z, labels, t * 1.01), _nll(z, labels, t / 1.01)) + 1e-6


@pytest.mark.points(1)
def test_fit_temperature_with_huge_logits(ex):
    """Adding 10000 to every logit changes no probability, so it must not change T (no overflow in exp)."""
    z, labels = _tempered(2.0, n=2000, seed=2)
    with np.errstate(all="ignore"):
        t = ex.fit_temperature(z + 10000.0, labels)
    assert 1.8 < t < 2.2, f"fitted T = {t} with shifted logits"


@pytest.mark.points(1)
def test_fit_temperature_matches_the_package(ex, package_function):
    """Within 1 % of visiondl_keras.evaluation.calibration.fit_temperature."""
    pkg = package_function("visiondl_keras.evaluation.calibration", "fit_temperature")
    for t_true, seed in [(1.5, 3), (0.7, 4)]:
        z, labels = _tempered(t_true, n=2000, seed=seed)
        got, expected = ex.fit_temperature(z, labels), pkg(z, labels)
        assert abs(got - expected) / expected < 0.01, f"{got} vs the package's {expected}"


# ------------------------------------------------------------------ the contract, clause by clause


@pytest.mark.points(1)
def test_softmax_subtracts_each_rows_own_maximum(ex):
    """Rows of very different scales (1000, 1, -1000): each is finite and correct (one global maximum underflows)."""
    z = np.array([[1000.0, 999.0, 998.0], [1.0, 0.0, -1.0], [-1000.0, -1001.0, -1003.0]])
    with np.errstate(all="ignore"):
        p = np.asarray(ex.softmax_with_temperature(z, 1.0))
    assert np.all(np.isfinite(p)), f"non-finite rows: {np.flatnonzero(~np.isfinite(p).all(axis=1)).tolist()}"
    expected = np.stack([_softmax(row) for row in z - z.max(axis=1, keepdims=True)])
    assert np.allclose(p, expected, atol=1e-12)


@pytest.mark.points(1)
def test_softmax_is_float64_and_keeps_its_input(ex):
    """float32 and float64 logits give float64 probabilities; the logits are not modified."""
    for dtype in (np.float32, np.float64):
        z = (np.random.default_rng(2).normal(size=(4, 5)) * 3).astype(dtype)
        before = z.copy()
        p = np.asarray(ex.softmax_with_temperature(z, 2.0))
        assert p.dtype == np.float64, f"{np.dtype(dtype).name} logits gave {p.dtype}, expected float64"
        assert np.array_equal(z, before), f"softmax_with_temperature modified {np.dtype(dtype).name} logits"
        assert np.allclose(p, _softmax(z.astype(np.float64) / 2.0), atol=1e-7)


@pytest.mark.points(1)
def test_fit_temperature_searches_the_whole_range(ex):
    """A very over-confident model (best T near 8) and a very under-confident one (best T near 0.2) are both found."""
    for t_true, seed in ((8.0, 5), (0.2, 6)):
        z, labels = _tempered(t_true, n=3000, seed=seed)
        t = ex.fit_temperature(z, labels)
        assert _nll(z, labels, t) <= min(_nll(z, labels, t * 1.01), _nll(z, labels, t / 1.01)) + 1e-6, \
            f"T = {t} is not the minimum for data tempered at {t_true}: search at least [0.05, 20]"


@pytest.mark.points(1)
def test_ece_and_temperature_are_python_floats_and_ece_defaults_to_15_bins(ex):
    """Both return Python floats (ECE in [0, 1]); without n_bins the ECE uses 15 bins."""
    rng = np.random.default_rng(7)
    probs = _softmax(rng.normal(size=(300, 10)) * 2.0)
    labels = rng.integers(0, 10, size=300)
    labels[:150] = probs[:150].argmax(1)  # half right: the bins' accuracies differ, so the binning matters
    ece = ex.expected_calibration_error(probs, labels)
    assert type(ece) is float and 0.0 <= ece <= 1.0, f"returned {ece!r}"
    assert math.isclose(ece, ex.expected_calibration_error(probs, labels, 15), abs_tol=1e-12), "the default is 15 bins"
    assert not math.isclose(ece, ex.expected_calibration_error(probs, labels, 10), abs_tol=1e-9)
    z, y = _tempered(1.5, n=500, seed=8)
    t = ex.fit_temperature(z, y)
    assert type(t) is float and t > 0, f"returned {t!r}"
