"""Graded tests of exercise 02 (lesson 02): mixup, cutmix_box and cutmix.

Run: ``pytest exercises/test_ex02_advanced_augmentation.py``.
"""

import numpy as np
import pytest


def _batch(n=8, h=6, w=5, seed=0):
    rng = np.random.default_rng(seed)
    return rng.integers(0, 256, size=(n, h, w, 3)).astype(np.uint8), np.eye(n, dtype=np.float32)


def _partners(y_mixed):
    """With identity one-hot labels, row i of the mixed labels names image i's partner."""
    partner = []
    for i, row in enumerate(y_mixed):
        others = [j for j in np.flatnonzero(row > 1e-6) if j != i]
        assert len(others) <= 1, f"label row {i} mixes more than two classes: {np.round(row, 3)}"
        partner.append(others[0] if others else i)
    return np.array(partner)


def _mixup_lam(ex, alpha, seed):
    x, y = _batch(4, 2, 2, seed)
    _, ym = ex.mixup(x, y, alpha=alpha, rng=np.random.default_rng(seed))
    perm = _partners(ym)
    i = next((i for i in range(4) if perm[i] != i), None)
    return None if i is None else float(ym[i, i])


@pytest.mark.points(1)
def test_mixup_returns_float32_of_the_input_shapes(ex):
    """Images and labels come back as float32 arrays of the input shapes; the inputs are untouched."""
    x, y = _batch()
    x0, y0 = x.copy(), y.copy()
    xm, ym = ex.mixup(x, y, alpha=0.4, rng=np.random.default_rng(0))
    assert xm.shape == x.shape and ym.shape == y.shape
    assert xm.dtype == np.float32 and ym.dtype == np.float32, f"dtypes {xm.dtype}, {ym.dtype}"
    assert np.array_equal(x, x0) and np.array_equal(y, y0), "mixup modified its inputs"


@pytest.mark.points(3)
def test_mixup_mixes_images_and_labels_with_the_same_lam_and_partner(ex):
    """image = lam*x + (1-lam)*x[perm] and label = lam*y + (1-lam)*y[perm], with ONE lam and ONE perm."""
    for seed in range(6):
        x, y = _batch(8, seed=seed)
        xm, ym = ex.mixup(x, y, alpha=1.0, rng=np.random.default_rng(seed))
        assert np.allclose(ym.sum(axis=1), 1.0, atol=1e-5), "label rows must still sum to 1"
        perm = _partners(ym)
        assert sorted(perm) == list(range(8)), f"partners {perm.tolist()} are not a permutation"
        mixed_rows = [i for i in range(8) if perm[i] != i]
        assert mixed_rows, "no label was mixed: the labels must be mixed like the images"
        lams = {round(float(ym[i, i]), 4) for i in mixed_rows}
        assert len(lams) == 1, f"one lam per batch expected, the labels show {sorted(lams)}"
        lam = float(ym[mixed_rows[0], mixed_rows[0]])
        expected = lam * x.astype(np.float32) + (1 - lam) * x[perm].astype(np.float32)
        assert np.allclose(xm, expected, atol=1e-2), "images are not lam*x + (1-lam)*x[perm] with the labels' lam and partner"


@pytest.mark.points(2)
def test_mixup_lam_follows_beta_alpha_alpha(ex):
    """Small alpha gives mostly nearly-unmixed examples; large alpha gives lam close to 0.5."""
    lams = [_mixup_lam(ex, 0.2, seed) for seed in range(200)]
    lams = np.array([v for v in lams if v is not None])
    extreme = np.mean(np.minimum(lams, 1 - lams) < 0.1)
    assert 0.55 < extreme < 0.8, f"alpha=0.2: {extreme:.0%} of lam within 0.1 of 0 or 1, expected about 67%"
    lams = np.array([v for v in (_mixup_lam(ex, 100.0, seed) for seed in range(30)) if v is not None])
    assert np.all(np.abs(lams - 0.5) < 0.15), f"alpha=100: lam should be close to 0.5, got {np.round(lams, 2)}"


@pytest.mark.points(1)
def test_mixup_matches_the_package(ex, package_function):
    """Same seed, same result as visiondl_keras.data.augment.mixup (draw lam, then the permutation)."""
    pkg = package_function("visiondl_keras.data.augment", "mixup")
    x, y = _batch(16, seed=9)
    ex_x, ex_y = ex.mixup(x, y, alpha=0.2, rng=np.random.default_rng(4))
    pk_x, pk_y = pkg(x, y, alpha=0.2, rng=np.random.default_rng(4))
    assert np.allclose(ex_x, pk_x, atol=1e-3) and np.allclose(ex_y, pk_y, atol=1e-6)


@pytest.mark.points(1)
def test_cutmix_box_stays_inside_the_image(ex):
    """0 <= top <= bottom <= height and 0 <= left <= right <= width, as Python ints."""
    rng = np.random.default_rng(0)
    for lam in (0.0, 0.2, 0.5, 0.9, 1.0):
        for _ in range(50):
            box = ex.cutmix_box(10, 14, lam, rng)
            assert len(box) == 4 and all(isinstance(v, int) for v in box), f"expected 4 ints, got {box!r}"
            top, bottom, left, right = box
            assert 0 <= top <= bottom <= 10 and 0 <= left <= right <= 14, f"box {box} outside a 10x14 image"


@pytest.mark.points(2)
def test_cutmix_box_size_follows_height_and_width(ex):
    """For lam=0.64 on a 40x20 image the uncut box is 24 rows by 12 columns (rows go with the height)."""
    rng = np.random.default_rng(1)
    boxes = [ex.cutmix_box(40, 20, 0.64, rng) for _ in range(400)]
    heights = [b - t for t, b, _, _ in boxes]
    widths = [r - left for _, _, left, r in boxes]
    assert max(heights) == 24, f"largest box height {max(heights)}, expected round(40 * sqrt(1 - 0.64)) = 24"
    assert max(widths) == 12, f"largest box width {max(widths)}, expected round(20 * sqrt(1 - 0.64)) = 12"
    assert min(heights) < 24 and min(widths) < 12, "boxes near the border must be clipped, hence smaller"


@pytest.mark.points(1)
def test_cutmix_box_lam_one_is_empty(ex):
    """lam=1 keeps the whole image: the box has zero area."""
    rng = np.random.default_rng(2)
    for _ in range(20):
        top, bottom, left, right = ex.cutmix_box(8, 8, 1.0, rng)
        assert (bottom - top) * (right - left) == 0


@pytest.mark.points(1)
def test_cutmix_box_matches_the_package(ex, package_function):
    """Same seed, same boxes as visiondl_keras.data.augment.cutmix_box (draw cy, then cx)."""
    pkg = package_function("visiondl_keras.data.augment", "cutmix_box")
    for seed in range(20):
        lam = seed / 20
        assert tuple(ex.cutmix_box(9, 13, lam, np.random.default_rng(seed))) == tuple(pkg(9, 13, lam, np.random.default_rng(seed)))


@pytest.mark.points(1)
def test_cutmix_returns_float32_and_keeps_inputs(ex):
    """float32 images and labels of the input shapes; the inputs are not modified."""
    x, y = _batch()
    x0, y0 = x.copy(), y.copy()
    xm, ym = ex.cutmix(x, y, alpha=1.0, rng=np.random.default_rng(0))
    assert xm.shape == x.shape and ym.shape == y.shape
    assert xm.dtype == np.float32 and ym.dtype == np.float32, f"dtypes {xm.dtype}, {ym.dtype}"
    assert np.array_equal(x, x0) and np.array_equal(y, y0), "cutmix modified its inputs"


@pytest.mark.points(3)
def test_cutmix_pastes_one_rectangle_and_mixes_labels_by_its_area(ex):
    """Every image gets the same rectangle from its partner; the partner's label weight is the pasted area."""
    checked = 0
    for seed in range(12):
        x, y = _batch(6, 8, 12, seed=seed)
        xm, ym = ex.cutmix(x, y, alpha=1.0, rng=np.random.default_rng(seed))
        assert np.allclose(ym.sum(axis=1), 1.0, atol=1e-5), "label rows must still sum to 1"
        perm = _partners(ym)
        masks = [np.any(xm[i] != x[i], axis=-1) for i in range(6) if perm[i] != i]
        if not masks or not masks[0].any():
            continue
        mask = masks[0]
        for other in masks[1:]:
            assert np.array_equal(other, mask), "the pasted region differs between images: one box per batch"
        rows, cols = np.flatnonzero(mask.any(axis=1)), np.flatnonzero(mask.any(axis=0))
        box = np.zeros_like(mask)
        box[rows[0] : rows[-1] + 1, cols[0] : cols[-1] + 1] = True
        assert np.array_equal(mask, box), "the pasted region is not a rectangle"
        area = mask.mean()
        for i in range(6):
            j = perm[i]
            expected = np.where(mask[..., None], x[j], x[i]) if j != i else x[i]
            assert np.array_equal(xm[i], expected), f"image {i}: the box does not hold its partner's pixels"
            if j != i:
                assert abs(ym[i, j] - area) < 1e-5, (
                    f"partner weight {ym[i, j]:.4f} but the pasted area is {area:.4f}: mix the labels by the actual area"
                )
                assert abs(ym[i, i] - (1 - area)) < 1e-5
        checked += 1
    assert checked >= 5, "cutmix pasted nothing in most batches"


@pytest.mark.points(1)
def test_cutmix_matches_the_package(ex, package_function):
    """Same seed, same result as visiondl_keras.data.augment.cutmix (lam, permutation, then the box)."""
    pkg = package_function("visiondl_keras.data.augment", "cutmix")
    x, y = _batch(10, 8, 8, seed=3)
    for seed in range(5):
        ex_x, ex_y = ex.cutmix(x, y, alpha=1.0, rng=np.random.default_rng(seed))
        pk_x, pk_y = pkg(x, y, alpha=1.0, rng=np.random.default_rng(seed))
        assert np.array_equal(ex_x, pk_x) and np.allclose(ex_y, pk_y, atol=1e-6)


# ------------------------------------------------------------------ the contract, clause by clause


@pytest.mark.points(1)
def test_mixup_draws_lam_then_the_permutation(ex):
    """For a seed: ``lam = rng.beta(alpha, alpha)`` first, then ``perm = rng.permutation(N)``; float32 inputs untouched."""
    x, y = _batch(10, seed=12)
    x = x.astype(np.float32)
    x0, y0 = x.copy(), y.copy()
    xm, ym = ex.mixup(x, y, alpha=0.7, rng=np.random.default_rng(8))
    rng = np.random.default_rng(8)
    lam = rng.beta(0.7, 0.7)
    perm = rng.permutation(10)
    assert np.allclose(ym, lam * y + (1 - lam) * y[perm], atol=1e-6), "draw lam first, then the permutation"
    assert np.allclose(xm, lam * x + (1 - lam) * x[perm], atol=1e-3)
    assert np.array_equal(x, x0) and np.array_equal(y, y0), "mixup modified a float32 input"


@pytest.mark.points(1)
def test_mixup_of_uint8_images_does_not_wrap_around(ex):
    """Black and white uint8 images mix to grey in float32 (no uint8 wrap-around in any intermediate)."""
    x = np.zeros((6, 2, 2, 3), np.uint8)
    x[::2] = 255
    y = np.eye(6, dtype=np.float32)
    for seed in range(4):
        xm, ym = ex.mixup(x, y, alpha=1.0, rng=np.random.default_rng(seed))
        expected = (ym[:, ::2].sum(axis=1) * 255.0)[:, None, None, None]  # weight of the white images
        assert np.allclose(xm, np.broadcast_to(expected, xm.shape), atol=1e-2), "uint8 arithmetic wrapped around"


@pytest.mark.points(1)
def test_cutmix_box_draws_the_row_then_the_column(ex):
    """For a seed: ``cy = rng.integers(0, height)`` then ``cx = rng.integers(0, width)``, box from the rounded size."""
    for seed in range(12):
        rng = np.random.default_rng(seed)
        cy, cx = int(rng.integers(0, 31)), int(rng.integers(0, 17))
        cut_h, cut_w = int(round(31 * 0.6)), int(round(17 * 0.6))  # lam = 0.64
        top, left = cy - cut_h // 2, cx - cut_w // 2
        expected = (max(top, 0), min(top + cut_h, 31), max(left, 0), min(left + cut_w, 17))
        got = tuple(ex.cutmix_box(31, 17, 0.64, np.random.default_rng(seed)))
        assert got == expected, f"seed {seed}: {got}, expected {expected} (draw cy first, then cx)"


@pytest.mark.points(1)
def test_cutmix_box_rounds_the_size(ex):
    """15 * sqrt(0.5) = 10.6 rounds to 11 rows and 21 * sqrt(0.5) = 14.8 to 15 columns (int() would truncate)."""
    boxes = [ex.cutmix_box(15, 21, 0.5, np.random.default_rng(s)) for s in range(300)]
    assert max(b - t for t, b, _, _ in boxes) == 11, "round(15 * sqrt(1 - 0.5)) = 11 rows"
    assert max(r - left for _, _, left, r in boxes) == 15, "round(21 * sqrt(1 - 0.5)) = 15 columns"


@pytest.mark.points(1)
def test_cutmix_keeps_a_float32_input(ex):
    """A float32 batch is not modified (``np.asarray(x, dtype=np.float32)`` does not copy it: paste into a copy)."""
    x, y = _batch(8, 8, 8, seed=13)
    x = x.astype(np.float32)
    x0, y0 = x.copy(), y.copy()
    pasted = 0
    for seed in range(4):
        xm, _ = ex.cutmix(x, y, alpha=1.0, rng=np.random.default_rng(seed))
        pasted += int(np.any(xm != x0))
        assert np.array_equal(x, x0) and np.array_equal(y, y0), "cutmix modified its float32 input"
    assert pasted, "cutmix pasted nothing in four batches"
