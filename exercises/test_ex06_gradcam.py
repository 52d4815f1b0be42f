"""Graded tests of exercise 06 (lesson 06): channel_weights and gradcam_from_activations.

Run: ``pytest exercises/test_ex06_gradcam.py``.
"""

import numpy as np
import pytest


def _pair(n=3, h=4, w=5, c=6, seed=0):
    rng = np.random.default_rng(seed)
    return rng.random((n, h, w, c)).astype(np.float32), rng.normal(size=(n, h, w, c)).astype(np.float32)


@pytest.mark.points(2)
def test_channel_weights_average_over_positions(ex):
    """alpha[n, c] is the mean of gradients[n, :, :, c] over all H*W positions."""
    g = np.zeros((2, 2, 3, 2), np.float32)
    g[0, :, :, 0] = 1.0
    g[0, 0, 0, 1] = 6.0
    g[1, :, :, 1] = -2.0
    alpha = np.asarray(ex.channel_weights(g))
    assert alpha.shape == (2, 2), f"shape {alpha.shape}, expected (N, C) = (2, 2)"
    assert np.allclose(alpha, [[1.0, 1.0], [0.0, -2.0]]), f"got {alpha.tolist()}"
    _, g = _pair(seed=1)
    assert np.allclose(ex.channel_weights(g), g.mean(axis=(1, 2)), atol=1e-6)


@pytest.mark.points(2)
def test_gradcam_known_map(ex):
    """Channel 0 helps, channel 1 hurts: only channel 0's location lights up (scaled to 1)."""
    a = np.zeros((1, 2, 2, 2), np.float32)
    a[0, 0, 0, 0] = 1.0
    a[0, 1, 1, 1] = 1.0
    g = np.zeros_like(a)
    g[..., 0] = 1.0
    g[..., 1] = -1.0
    cam = np.asarray(ex.gradcam_from_activations(a, g))
    assert cam.shape == (1, 2, 2), f"shape {cam.shape}, expected (N, H, W)"
    assert np.allclose(cam[0], [[1.0, 0.0], [0.0, 0.0]]), f"got {cam[0].tolist()}"


@pytest.mark.points(2)
def test_gradcam_matches_the_formula_on_random_data(ex):
    """ReLU(sum_c alpha_c A_c) divided by its maximum, float32, values in [0, 1]."""
    a, g = _pair(n=4, seed=2)
    g += 0.3  # mostly positive evidence
    cam = np.asarray(ex.gradcam_from_activations(a, g))
    raw = np.maximum(np.einsum("nhwc,nc->nhw", a, g.mean(axis=(1, 2))), 0)
    peak = raw.max(axis=(1, 2), keepdims=True)
    assert np.all(peak > 0), "test data must have positive evidence in every map"
    expected = raw / peak
    assert cam.dtype == np.float32, f"dtype {cam.dtype}, expected float32"
    assert np.allclose(cam, expected, atol=1e-5), "map differs from ReLU(weighted sum) / max"


@pytest.mark.points(2)
def test_gradcam_scales_each_map_by_its_own_maximum(ex):
    """Each image's map peaks at exactly 1, even when another image has much larger activations."""
    a, g = _pair(n=2, seed=3)
    a[1] *= 100.0
    g[:, :, :, :] = np.abs(g)  # all evidence positive: both maps have a positive peak
    cam = np.asarray(ex.gradcam_from_activations(a, g))
    assert np.allclose(cam.max(axis=(1, 2)), 1.0, atol=1e-6), f"per-image maxima {cam.max(axis=(1, 2))}, expected 1 each"


@pytest.mark.points(1)
def test_gradcam_without_positive_evidence_is_zero(ex):
    """All evidence negative: the ReLU leaves zeros, and the scaling must not divide by zero (no nan)."""
    a, g = _pair(n=2, seed=4)
    g = -np.abs(g)
    with np.errstate(all="ignore"):
        cam = np.asarray(ex.gradcam_from_activations(a, g))
    assert not np.isnan(cam).any(), "nan in the map: do not divide by a zero maximum"
    assert np.all(cam == 0.0), "with only negative evidence the map is all zeros (ReLU before scaling)"


@pytest.mark.points(1)
def test_gradcam_matches_the_package(ex, package_function):
    """Same maps as visiondl_keras.evaluation.gradcam.gradcam_from_activations."""
    pkg = package_function("visiondl_keras.evaluation.gradcam", "gradcam_from_activations")
    a, g = _pair(n=4, h=6, w=6, c=8, seed=5)
    assert np.allclose(ex.gradcam_from_activations(a, g), pkg(a, g), atol=1e-5)


# ------------------------------------------------------------------ the contract, clause by clause


@pytest.mark.points(1)
def test_channel_weights_are_float32_and_keep_the_input(ex):
    """float32 weights for float64 gradients too; the gradients are not modified."""
    _, g = _pair(seed=6)
    g64 = g.astype(np.float64)
    before = g64.copy()
    alpha = np.asarray(ex.channel_weights(g64))
    assert alpha.dtype == np.float32, f"dtype {alpha.dtype}, expected float32"
    assert np.array_equal(g64, before), "channel_weights modified its input"


@pytest.mark.points(1)
def test_gradcam_divides_by_the_maximum_only(ex):
    """A map positive everywhere keeps its smallest value above 0: divide by the maximum, do not subtract the minimum."""
    a = np.full((1, 2, 2, 1), 1.0, np.float32)
    a[0, 0, 0, 0] = 4.0
    g = np.ones_like(a)
    cam = np.asarray(ex.gradcam_from_activations(a, g))
    assert np.allclose(cam[0], [[1.0, 0.25], [0.25, 0.25]], atol=1e-6), f"got {cam[0].tolist()}: cam / cam.max()"


@pytest.mark.points(1)
def test_gradcam_keeps_its_inputs_and_returns_float32(ex):
    """Neither float32 nor float64 activations and gradients are modified; the maps are float32 either way."""
    for dtype in (np.float32, np.float64):
        a, g = (v.astype(dtype) for v in _pair(n=2, seed=7))
        a0, g0 = a.copy(), g.copy()
        cam = np.asarray(ex.gradcam_from_activations(a, g))
        assert np.array_equal(a, a0) and np.array_equal(g, g0), f"{np.dtype(dtype).name} inputs were modified"
        assert cam.dtype == np.float32, f"{np.dtype(dtype).name} inputs gave {cam.dtype} maps, expected float32"
