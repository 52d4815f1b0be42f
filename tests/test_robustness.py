"""Robustness: FGSM/PGD maths and self-checks, noise sweep, the 15 corruptions, the benchmark."""

from __future__ import annotations

import keras
import numpy as np
import pytest

from visiondl_keras.errors import ConfigError
from visiondl_keras.evaluation.attacks import (
    attack_self_checks,
    attack_sweep,
    fgsm_attack,
    fgsm_perturb,
    noise_sweep,
    pgd_attack,
)
from visiondl_keras.evaluation.corruptions import (
    CORRUPTIONS,
    _correlate,
    _disk,
    _zoom_matrix,
    corrupt,
    corruption_benchmark,
)
from visiondl_keras.evaluation.gradients import input_gradients
from visiondl_keras.evaluation.metrics import accuracy
from visiondl_keras.models import build_simple_cnn

COLOURS = np.array([[230, 60, 60], [60, 230, 60], [60, 60, 230]], dtype=np.float32)


def colour_blobs(n, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.uniform(70, 150, (n, 32, 32, 3)).astype(np.float32)
    y = rng.integers(0, 3, n)
    for i in range(n):
        r, c = rng.integers(0, 24, 2)
        x[i, r : r + 8, c : c + 8] = COLOURS[y[i]]
    return x, y


@pytest.fixture(scope="module")
def trained():
    keras.utils.set_random_seed(0)
    x, y = colour_blobs(512, seed=0)
    model = build_simple_cnn(width=6, num_classes=3)
    model.compile(keras.optimizers.Adam(3e-3), keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    model.fit(x, y, epochs=3, batch_size=64, verbose=0)
    xt, yt = colour_blobs(96, seed=1)
    return model, xt, yt


def ce_loss(model, x, y):
    z = model.predict(x, verbose=0).astype(np.float64)
    z -= z.max(1, keepdims=True)
    return -(z[np.arange(len(y)), y] - np.log(np.exp(z).sum(1)))


# ----------------------------------------------------------------------------- FGSM / PGD


def test_fgsm_perturb_known_values_and_clipping():
    x = np.array([[[[10.0, 250.0, 0.0, 100.0]]]])
    g = np.array([[[[1.0, 1.0, -1.0, 0.0]]]])
    np.testing.assert_array_equal(fgsm_perturb(x, g, 8.0), [[[[18.0, 255.0, 0.0, 100.0]]]])
    np.testing.assert_array_equal(fgsm_perturb(x, g, 0.0), x)
    assert fgsm_perturb(x.astype(np.uint8), g, 1.0).dtype == np.float32
    with pytest.raises(ConfigError, match="epsilon"):
        fgsm_perturb(x, g, -1.0)
    with pytest.raises(ConfigError, match="shape"):
        fgsm_perturb(x, g[..., :2], 1.0)


def test_fgsm_raises_the_loss_and_stays_in_the_ball(trained):
    model, x, y = trained
    adv = fgsm_attack(model, x, y, 4.0)
    assert np.abs(adv - x).max() <= 4.0 + 1e-4 and adv.min() >= 0 and adv.max() <= 255
    assert ce_loss(model, adv, y).mean() > ce_loss(model, x, y).mean()
    assert fgsm_attack(model, x, y, 0.0) == pytest.approx(x)


def test_pgd_is_at_least_as_strong_as_fgsm(trained):
    model, x, y = trained
    for eps in (2.0, 8.0):
        adv = pgd_attack(model, x, y, eps, steps=5, early_stop=False)
        assert np.abs(adv - x).max() <= eps + 1e-3 and adv.min() >= 0 and adv.max() <= 255
        fg = fgsm_attack(model, x, y, eps)
        assert ce_loss(model, adv, y).mean() >= ce_loss(model, fg, y).mean() - 1e-6
        stopped = pgd_attack(model, x, y, eps, steps=5, early_stop=True)
        acc_stop = accuracy(model.predict(stopped, verbose=0), y)
        assert acc_stop <= accuracy(model.predict(adv, verbose=0), y) + 1e-9
    rs = pgd_attack(model, x, y, 4.0, steps=2, random_start=True, seed=3)
    assert np.abs(rs - x).max() <= 4.0 + 1e-3
    with pytest.raises(ConfigError, match="steps"):
        pgd_attack(model, x, y, 4.0, steps=0)


def test_attack_sweep_self_checks_pass(trained):
    model, x, y = trained
    res = attack_sweep(model, x, y, epsilons=(0, 2, 8), steps=4)
    assert res["fgsm_accuracy"][0] == res["pgd_accuracy"][0] == res["clean_accuracy"]
    assert res["clean_accuracy"] == accuracy(model.predict(x, verbose=0), y)
    assert res["all_checks_passed"], res["checks"]
    assert res["pgd_accuracy"][-1] <= res["fgsm_accuracy"][-1]


def test_nested_pgd_is_never_weaker_and_attacks_fewer_images(trained):
    model, x, y = trained
    eps = (4, 0, 1)  # unsorted on purpose: results come back in the order given
    nested = attack_sweep(model, x, y, epsilons=eps, steps=3, nested=True)
    fresh = attack_sweep(model, x, y, epsilons=eps, steps=3, nested=False)
    assert nested["epsilons"] == [4.0, 0.0, 1.0] and nested["pgd_nested"] and not fresh["pgd_nested"]
    assert nested["fgsm_accuracy"] == pytest.approx(fresh["fgsm_accuracy"])  # FGSM is independent of nesting
    n_correct = round(fresh["clean_accuracy"] * len(y))
    assert fresh["pgd_images_attacked"] == [n_correct, 0, n_correct]
    # budget 4 only attacks the images that withstood budget 1
    assert nested["pgd_images_attacked"][0] == round(nested["pgd_accuracy"][2] * len(y)) < n_correct
    for a_nested, a_fresh in zip(nested["pgd_accuracy"], fresh["pgd_accuracy"]):
        assert a_nested <= a_fresh + 1e-9
    assert nested["pgd_accuracy"][0] <= nested["pgd_accuracy"][2] <= nested["pgd_accuracy"][1]
    assert nested["all_checks_passed"]


def test_nothing_left_to_attack(trained):
    """A budget with no surviving image (nested mode) or an empty batch is not an error."""
    model, x, y = trained
    g, out = input_gradients(model, x[:0], y[:0], return_outputs=True)
    assert g.shape == (0,) + x.shape[1:] and out.shape == (0, model.output_shape[-1])
    assert pgd_attack(model, x[:0], y[:0], 4.0, steps=3).shape == (0,) + x.shape[1:]
    wrong = (model.predict(x, verbose=0).argmax(axis=1) + 1) % model.output_shape[-1]  # labels the model never predicts
    for nested in (True, False):
        res = attack_sweep(model, x, wrong, epsilons=(0, 1, 4), steps=3, nested=nested)
        assert res["clean_accuracy"] == 0.0 and res["pgd_images_attacked"] == [0, 0, 0]
        assert res["pgd_accuracy"] == [0.0, 0.0, 0.0] and res["all_checks_passed"]


def test_self_checks_catch_broken_attacks():
    good = {"epsilons": [0, 1, 2], "clean_accuracy": 0.9, "fgsm_accuracy": [0.9, 0.6, 0.4], "pgd_accuracy": [0.9, 0.5, 0.2]}
    assert all(c["passed"] for c in attack_self_checks(good, 10_000))
    eps0 = dict(good, fgsm_accuracy=[0.8, 0.6, 0.4])  # epsilon 0 changed the images
    assert not attack_self_checks(eps0, 10_000)[0]["passed"]
    weak_pgd = dict(good, pgd_accuracy=[0.9, 0.7, 0.5])  # PGD weaker than FGSM
    assert not attack_self_checks(weak_pgd, 10_000)[1]["passed"]
    rising = dict(good, fgsm_accuracy=[0.9, 0.5, 0.7])  # accuracy rises with epsilon
    assert not attack_self_checks(rising, 10_000)[2]["passed"]
    # ... but not on a 2-image sample, where the difference is sampling noise
    assert attack_self_checks(dict(good, fgsm_accuracy=[0.9, 0.5, 0.55]), 20)[2]["passed"]


def test_noise_sweep_zero_sigma_is_clean(trained):
    model, x, y = trained
    res = noise_sweep(model, x, y, sigmas=(0, 64))
    assert res["accuracy"][0] == accuracy(model.predict(x, verbose=0), y)
    assert res == noise_sweep(model, x, y, sigmas=(0, 64))  # seeded
    with pytest.raises(ConfigError):
        noise_sweep(model, x, y, sigmas=(-1,))
    with pytest.raises(ConfigError, match="labels"):
        noise_sweep(model, x, y[:3])


def test_gradients_used_by_fgsm_are_loss_gradients(trained):
    model, x, y = trained
    g = input_gradients(model, x[:4], y[:4])
    # moving against the gradient lowers the loss, along it raises it
    assert (ce_loss(model, x[:4] - 1.0 * np.sign(g), y[:4]) <= ce_loss(model, x[:4], y[:4]) + 1e-6).all()


# ----------------------------------------------------------------------------- corruptions


@pytest.fixture(scope="module")
def images():
    rng = np.random.default_rng(0)
    base = rng.uniform(0, 255, (6, 8, 8, 3))
    from scipy.ndimage import zoom

    x = zoom(base, (1, 4, 4, 1), order=1)  # smooth-ish 32x32 images
    return np.clip(x, 0, 255).astype(np.uint8)


@pytest.mark.parametrize("name", CORRUPTIONS)
def test_every_corruption_is_deterministic_and_changes_images(name, images):
    outs = [corrupt(images, name, s, seed=0) for s in (1, 3, 5)]
    for o in outs:
        assert o.dtype == np.uint8 and o.shape == images.shape
    np.testing.assert_array_equal(outs[2], corrupt(images, name, 5, seed=0))
    diffs = [np.abs(o.astype(float) - images).mean() for o in outs]
    assert diffs[2] > 0.5, f"{name} severity 5 barely changes the image ({diffs[2]:.2f})"


@pytest.mark.parametrize(
    "name", ["gaussian_noise", "shot_noise", "impulse_noise", "defocus_blur", "zoom_blur", "fog", "brightness", "contrast", "pixelate"]
)
def test_severity_increases_the_change(name, images):
    diffs = [np.abs(corrupt(images, name, s).astype(float) - images).mean() for s in (1, 2, 3, 4, 5)]
    assert all(b >= a - 0.3 for a, b in zip(diffs, diffs[1:])), diffs
    assert diffs[-1] > diffs[0]


def test_random_corruptions_depend_on_the_seed(images):
    for name in ("gaussian_noise", "fog", "frost", "motion_blur", "glass_blur", "snow"):
        assert not np.array_equal(corrupt(images, name, 3, seed=0), corrupt(images, name, 3, seed=1)), name


def test_known_values():
    grey = np.full((2, 32, 32, 3), 100, np.uint8)
    # contrast around the per-channel mean leaves a constant image unchanged
    np.testing.assert_array_equal(corrupt(grey, "contrast", 5), grey)
    # brightness: HSV value + 0.2 (severity 4) on grey 100 gives 100 + 0.2 * 255 = 151
    np.testing.assert_array_equal(corrupt(grey, "brightness", 4), np.full_like(grey, 151))
    # blurs and pixelation keep a constant image constant
    for name in ("defocus_blur", "zoom_blur", "pixelate", "motion_blur", "elastic_transform"):
        np.testing.assert_array_equal(corrupt(grey, name, 4), grey, err_msg=name)
    # the disk kernel sums to one; a zoom by 1 is the identity
    assert _disk(1.5, 0.1).sum() == pytest.approx(1.0)
    np.testing.assert_allclose(_zoom_matrix(32, 1.0), np.eye(32), atol=1e-7)


def test_correlate_matches_scipy():
    from scipy.ndimage import correlate

    rng = np.random.default_rng(0)
    x = rng.uniform(0, 1, (2, 10, 12, 3)).astype(np.float32)
    k = _disk(1.5, 0.1)
    ref = np.stack([np.stack([correlate(x[n, ..., c], k, mode="mirror") for c in range(3)], -1) for n in range(2)])
    np.testing.assert_allclose(_correlate(x, k), ref, atol=1e-5)


def test_corrupt_errors(images):
    with pytest.raises(ConfigError, match="unknown corruption"):
        corrupt(images, "rain", 1)
    with pytest.raises(ConfigError, match="severity"):
        corrupt(images, "fog", 6)
    with pytest.raises(ConfigError, match="shape"):
        corrupt(images[0], "fog", 1)


def test_corruption_benchmark_subset(trained):
    model, x, y = trained
    xi = np.clip(x, 0, 255).astype(np.uint8)[:48]
    res = corruption_benchmark(model, xi, y[:48], corruptions=["contrast", "gaussian_noise"], severities=(1, 5), progress=False)
    assert res["corruptions"] == ["contrast", "gaussian_noise"] and res["severities"] == [1, 5]
    table = np.array([res["accuracy"][c] for c in res["corruptions"]])
    assert res["mean_corruption_accuracy"] == pytest.approx(table.mean())
    assert res["relative_accuracy"] == pytest.approx(table.mean() / res["clean_accuracy"])
    expected = accuracy(model.predict(corrupt(xi, "contrast", 5), verbose=0), y[:48])
    assert res["accuracy"]["contrast"][1] == pytest.approx(expected)
    again = corruption_benchmark(model, xi, y[:48], corruptions=["contrast", "gaussian_noise"], severities=(1, 5),
                                 progress=False, prefetch=False)
    assert again["accuracy"] == res["accuracy"]
    with pytest.raises(ConfigError, match="unknown corruption"):
        corruption_benchmark(model, xi, y[:48], corruptions=["rain"], progress=False)
    with pytest.raises(ConfigError, match="severities"):
        corruption_benchmark(model, xi, y[:48], severities=(0,), progress=False)
