"""Graded tests of exercise 07 (lesson 07): fgsm_perturb and project_linf.

Run: ``pytest exercises/test_ex07_robustness.py``.
"""

import numpy as np
import pytest


def _batch(seed=0, shape=(4, 5, 5, 3)):
    rng = np.random.default_rng(seed)
    return rng.uniform(0, 255, size=shape).astype(np.float32), rng.normal(size=shape).astype(np.float32)


@pytest.mark.points(2)
def test_fgsm_known_values(ex):
    """Each pixel moves by epsilon along the gradient's sign (up the loss), clipped to [0, 255]."""
    x = np.array([[[[100.0, 0.0, 255.0, 50.0, 3.0]]]], np.float32)
    g = np.array([[[[0.3, -2.0, 5.0, 0.0, -1e-6]]]], np.float32)
    out = np.asarray(ex.fgsm_perturb(x, g, 8.0))
    assert out.shape == x.shape
    assert np.allclose(out.ravel(), [108.0, 0.0, 255.0, 50.0, 0.0]), f"got {out.ravel().tolist()}"


@pytest.mark.points(2)
def test_fgsm_uses_only_the_sign(ex):
    """Tiny and huge gradients move a pixel by the same epsilon: it is the sign that counts, not the size."""
    x = np.full((1, 1, 4, 1), 128.0, np.float32)
    g = np.array([1e-8, 1e8, -1e-8, -1e8], np.float32).reshape(1, 1, 4, 1)
    out = np.asarray(ex.fgsm_perturb(x, g, 4.0)).ravel()
    assert np.allclose(out, [132.0, 132.0, 124.0, 124.0]), f"got {out.tolist()}"


@pytest.mark.points(1)
def test_fgsm_stays_within_epsilon_and_range(ex):
    """On random images: |adv - x| <= epsilon everywhere, equal to epsilon where no clipping happened, in [0, 255], float32."""
    x, g = _batch(1)
    x[0, 0, 0] = [0.0, 255.0, 2.0]
    out = np.asarray(ex.fgsm_perturb(x, g, 8.0))
    assert out.dtype == np.float32, f"dtype {out.dtype}, expected float32"
    assert out.min() >= 0.0 and out.max() <= 255.0, "outside [0, 255]: clip the result"
    inside = (x >= 8.0) & (x <= 247.0)
    assert np.allclose(np.abs(out - x)[inside], 8.0, atol=1e-4)
    assert np.all(np.sign(out - x)[inside] == np.sign(g)[inside]), "the step must follow the gradient's sign"


@pytest.mark.points(1)
def test_fgsm_epsilon_zero_and_integer_images(ex):
    """epsilon=0 returns the images; uint8 images work and give float32 (no wrap-around at 255)."""
    x, g = _batch(2)
    assert np.allclose(ex.fgsm_perturb(x, g, 0.0), x)
    xi = np.array([[[[250, 3, 255]]]], np.uint8)
    out = np.asarray(ex.fgsm_perturb(xi, np.array([[[[1.0, -1.0, 1.0]]]]), 8.0))
    assert out.dtype == np.float32 and np.allclose(out.ravel(), [255.0, 0.0, 255.0]), f"got {out.ravel().tolist()}"


@pytest.mark.points(1)
def test_fgsm_matches_the_package(ex, package_function):
    """Same images as visiondl_keras.evaluation.attacks.fgsm_perturb."""
    pkg = package_function("visiondl_keras.evaluation.attacks", "fgsm_perturb")
    x, g = _batch(3)
    for eps in (0.5, 4.0, 16.0):
        assert np.allclose(ex.fgsm_perturb(x, g, eps), pkg(x, g, eps), atol=1e-4)


@pytest.mark.points(2)
def test_project_linf_known_values(ex):
    """Clipped to [x0 - eps, x0 + eps] around the ORIGINAL image, then to [0, 255]."""
    x0 = np.array([[[[100.0, 100.0, 100.0, 3.0, 250.0]]]], np.float32)
    adv = np.array([[[[120.0, 90.0, 101.0, -20.0, 300.0]]]], np.float32)
    out = np.asarray(ex.project_linf(adv, x0, 8.0))
    assert np.allclose(out.ravel(), [108.0, 92.0, 101.0, 0.0, 255.0]), f"got {out.ravel().tolist()}"


@pytest.mark.points(1)
def test_project_linf_on_random_steps(ex):
    """After a big random step the projection lies in the epsilon-ball and in [0, 255]; points inside stay put."""
    x0, g = _batch(4)
    adv = x0 + 30.0 * g
    out = np.asarray(ex.project_linf(adv, x0, 6.0))
    assert out.dtype == np.float32
    assert np.all(np.abs(out - x0) <= 6.0 + 1e-4), "outside the epsilon-ball around the original image"
    assert out.min() >= 0.0 and out.max() <= 255.0, "outside [0, 255]"
    inside = (np.abs(adv - x0) <= 6.0) & (adv >= 0) & (adv <= 255)
    assert np.allclose(out[inside], adv[inside]), "pixels already allowed must not move"


@pytest.mark.points(1)
def test_project_linf_of_fgsm_is_fgsm(ex):
    """An FGSM step of size epsilon is already inside the epsilon-ball: projecting it changes nothing."""
    x0, g = _batch(5)
    adv = np.clip(x0 + 8.0 * np.sign(g), 0, 255).astype(np.float32)
    assert np.allclose(ex.project_linf(adv, x0, 8.0), adv, atol=1e-4)


# ------------------------------------------------------------------ the contract, clause by clause


@pytest.mark.points(1)
def test_fgsm_keeps_its_inputs(ex):
    """float32 images and gradients are not modified (``np.asarray`` does not copy float32: no in-place ``+=``)."""
    x, g = _batch(6)
    x0, g0 = x.copy(), g.copy()
    out = np.asarray(ex.fgsm_perturb(x, g, 8.0))
    assert np.array_equal(x, x0) and np.array_equal(g, g0), "fgsm_perturb modified its inputs"
    assert not np.array_equal(out, x0)


@pytest.mark.points(1)
def test_fgsm_on_uint8_images_steps_both_ways(ex):
    """uint8 images step up and down by epsilon in float32: 100 -> 108 and 92, 3 -> 0, 250 -> 255."""
    xi = np.array([[[[100, 100, 3, 250]]]], np.uint8)
    g = np.array([[[[1.0, -1.0, -1.0, 1.0]]]], np.float32)
    out = np.asarray(ex.fgsm_perturb(xi, g, 8))
    assert out.dtype == np.float32 and np.allclose(out.ravel(), [108.0, 92.0, 0.0, 255.0]), f"got {out.ravel().tolist()}"
    assert xi.ravel().tolist() == [100, 100, 3, 250]


@pytest.mark.points(1)
def test_project_linf_keeps_its_inputs(ex):
    """float32 adversarial and original images are not modified."""
    x0, g = _batch(7)
    adv = x0 + 30.0 * g
    adv0, orig0 = adv.copy(), x0.copy()
    ex.project_linf(adv, x0, 4.0)
    assert np.array_equal(adv, adv0) and np.array_equal(x0, orig0), "project_linf modified its inputs"


@pytest.mark.points(1)
def test_project_linf_around_a_uint8_original(ex):
    """A uint8 original: the bounds x0 -/+ epsilon are computed without wrap-around (3 - 8 is -5, not 251)."""
    x0 = np.array([[[[3, 250, 100]]]], np.uint8)
    adv = np.array([[[[-20.0, 300.0, 90.0]]]], np.float32)
    out = np.asarray(ex.project_linf(adv, x0, 8))
    assert out.dtype == np.float32 and np.allclose(out.ravel(), [0.0, 255.0, 92.0]), f"got {out.ravel().tolist()}"
