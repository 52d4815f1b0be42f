"""Augmentation: per-image crops, flips, MixUp/CutMix label algebra, policies, determinism."""

from __future__ import annotations

import numpy as np
import pytest

from visiondl_keras.data import augment as A
from visiondl_keras.errors import ConfigError
from visiondl_keras.reporting.plots import sample_grid


def _marked(n=64):
    """Images whose pixel (r, c) encodes its coordinates, so a crop reveals its offset."""
    r, c = np.meshgrid(np.arange(32), np.arange(32), indexing="ij")
    img = np.stack([r * 4, c * 4, np.zeros_like(r)], -1).astype(np.uint8)
    return np.repeat(img[None], n, axis=0)


def test_random_crop_offsets_differ_within_a_batch_and_are_windows_of_the_padded_image():
    x = _marked()
    out = A.random_crop(x, padding=4, rng=0)
    assert out.shape == x.shape and out.dtype == x.dtype
    padded = np.pad(x, ((0, 0), (4, 4), (4, 4), (0, 0)), mode="reflect")
    offsets = set()
    for i in range(len(x)):
        found = [(dy, dx) for dy in range(9) for dx in range(9)
                 if np.array_equal(out[i], padded[i, dy : dy + 32, dx : dx + 32])]
        assert found, f"image {i} is not a 32x32 window of its padded version"
        offsets.add(found[0])
    # per-image offsets: 64 draws from 81 offsets give many distinct values (same-offset crops would give 1)
    assert len(offsets) > 20


def test_random_crop_is_seeded_and_padding_zero_is_identity():
    x = _marked(8)
    np.testing.assert_array_equal(A.random_crop(x, 4, rng=1), A.random_crop(x, 4, rng=1))
    np.testing.assert_array_equal(A.random_crop(x, 0, rng=1), x)
    with pytest.raises(ConfigError, match="padding"):
        A.random_crop(x, -1)
    with pytest.raises(ConfigError, match="N, H, W, C"):
        A.random_crop(x[0], 4)


def test_random_flip_flips_about_half_and_exactly_mirrors():
    x = _marked(400)
    out = A.random_flip(x, rng=0)
    flipped = np.array([np.array_equal(o, i[:, ::-1]) for o, i in zip(out, x)])
    same = np.array([np.array_equal(o, i) for o, i in zip(out, x)])
    assert np.all(flipped ^ same)
    assert 150 < flipped.sum() < 250


def test_normalize_matches_formula():
    x = np.full((1, 2, 2, 3), 100, np.uint8)
    out = A.normalize(x, [50, 100, 150], [10, 20, 50])
    np.testing.assert_allclose(out[0, 0, 0], [5.0, 0.0, -1.0])


def test_mixup_is_a_convex_combination_of_images_and_labels():
    rng = np.random.default_rng(0)
    x = rng.integers(0, 256, (16, 32, 32, 3)).astype(np.float32)
    y = A.one_hot(np.arange(16) % 10, 10)
    xm, ym = A.mixup(x, y, alpha=0.4, rng=3)
    np.testing.assert_allclose(ym.sum(1), 1.0, atol=1e-6)
    # recover lambda and the partner of image 0 from the labels, then check the pixels
    r = np.random.default_rng(3)
    lam = r.beta(0.4, 0.4)
    perm = r.permutation(16)
    np.testing.assert_allclose(xm, lam * x + (1 - lam) * x[perm], rtol=1e-5, atol=1e-3)
    np.testing.assert_allclose(ym, lam * y + (1 - lam) * y[perm], atol=1e-6)
    assert not np.allclose(ym, y), "labels must be mixed too"


def test_cutmix_label_weight_equals_pasted_area():
    x = np.zeros((8, 32, 32, 3), np.float32)
    for i in range(8):
        x[i] = i  # image i is constant i
    y = A.one_hot(np.arange(8), 10)
    xm, ym = A.cutmix(x, y, alpha=1.0, rng=5)
    for i in range(8):
        foreign = np.mean(xm[i, :, :, 0] != i)
        if foreign > 0:
            partner = int(np.max(xm[i, :, :, 0][xm[i, :, :, 0] != i]))
            assert ym[i, partner] == pytest.approx(foreign, abs=1e-6)
            assert ym[i, i] == pytest.approx(1 - foreign, abs=1e-6)
    np.testing.assert_allclose(ym.sum(1), 1.0, atol=1e-6)


def test_cutmix_box_area_follows_lambda():
    h = w = 32
    y0, y1, x0, x1 = A.cutmix_box(h, w, lam=0.75, rng=np.random.default_rng(0))
    assert 0 <= y0 <= y1 <= h and 0 <= x0 <= x1 <= w
    areas = [np.prod(np.diff(np.array(A.cutmix_box(h, w, 0.75, np.random.default_rng(s))).reshape(2, 2)))
             for s in range(50)]
    assert max(areas) == pytest.approx(0.25 * h * w, rel=0.05)  # unclipped boxes cover 1 - lam


@pytest.mark.parametrize("name", A.POLICIES)
def test_every_named_policy_returns_float_images_and_soft_labels(name):
    x = _marked(16)
    y = np.arange(16) % 10
    pol = A.get_policy(name, seed=0)
    xa, ya = pol(x, y, np.random.default_rng(0))
    assert xa.shape == x.shape and xa.dtype == np.float32
    assert ya.shape == (16, 10)
    np.testing.assert_allclose(ya.sum(1), 1.0, atol=1e-5)
    assert xa.min() >= 0 and xa.max() <= 255
    if name == "none":
        np.testing.assert_array_equal(xa, x)


def test_policy_errors_name_the_choices():
    with pytest.raises(ConfigError, match="unknown augmentation policy 'autoaugment'"):
        A.get_policy("autoaugment")
    with pytest.raises(ConfigError, match="mixup or cutmix"):
        A.get_policy("mixup+cutmix")
    with pytest.raises(ConfigError, match="alpha"):
        A.mixup(np.zeros((2, 4, 4, 3)), np.eye(2), alpha=0)


def test_augmented_epoch_is_a_pure_function_of_seed_and_epoch():
    x = _marked(50)
    x[:, 0, 0, 2] = np.arange(50)
    y = np.arange(50) % 10
    pol = A.get_policy("mixup")
    a = A.augmented_epoch(x, y, pol, seed=1, epoch=3, batch_size=16)
    b = A.augmented_epoch(x, y, pol, seed=1, epoch=3, batch_size=16)
    c = A.augmented_epoch(x, y, pol, seed=1, epoch=4, batch_size=16)
    np.testing.assert_array_equal(a[0], b[0])
    np.testing.assert_array_equal(a[1], b[1])
    assert not np.array_equal(a[0], c[0])


def test_sample_grid_draws_originals_and_versions():
    import matplotlib.figure

    fig = sample_grid(_marked(4), np.arange(4), "baseline", n_images=4, n_versions=3, class_names=list("abcdefghij"))
    assert isinstance(fig, matplotlib.figure.Figure)
    assert len(fig.axes) == 4 * 4


def test_randaugment_is_a_pure_function_of_the_generator():
    x = _marked(20)
    y = np.arange(20) % 10
    pol = A.get_policy("randaugment")
    a, _ = pol(x, y, np.random.default_rng(7))
    b, _ = pol(x, y, np.random.default_rng(7))
    c, _ = A.get_policy("randaugment")(x, y, np.random.default_rng(8))
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)
