"""Graded tests of exercise 01 (lesson 01): random_crop and random_flip.

Run: ``pytest exercises/test_ex01_augmentation.py``. Read a failing test: its docstring says what it checks.
"""

import numpy as np
import pytest


def _images(n, h=6, w=7, c=3, seed=0, dtype=np.uint8):
    return np.random.default_rng(seed).integers(0, 256, size=(n, h, w, c)).astype(dtype)


def _offsets(out, images, padding):
    """(top, left) of every output image inside the reflect-padded input, or None where none fits."""
    n, h, w, _ = images.shape
    padded = np.pad(images, ((0, 0), (padding, padding), (padding, padding), (0, 0)), mode="reflect")
    found = []
    for i in range(n):
        hit = None
        for top in range(2 * padding + 1):
            for left in range(2 * padding + 1):
                if np.array_equal(out[i], padded[i, top : top + h, left : left + w]):
                    hit = (top, left)
                    break
            if hit:
                break
        found.append(hit)
    return found


@pytest.mark.points(1)
def test_random_crop_keeps_shape_dtype_and_input(ex):
    """Same shape and dtype as the input (uint8 and float32); the input is not modified."""
    for dtype in (np.uint8, np.float32):
        x = _images(4, dtype=dtype)
        before = x.copy()
        out = ex.random_crop(x, padding=2, rng=np.random.default_rng(0))
        assert out.shape == x.shape, f"shape {out.shape}, expected {x.shape}"
        assert out.dtype == x.dtype, f"dtype {out.dtype}, expected {x.dtype}"
        assert np.array_equal(x, before), "random_crop modified its input"


@pytest.mark.points(3)
def test_random_crop_is_a_crop_of_the_reflect_padded_image(ex):
    """Every output image is a window of the image padded in *reflect* mode (not zeros, not 'symmetric')."""
    x = _images(64)
    out = ex.random_crop(x, padding=2, rng=np.random.default_rng(1))
    bad = [i for i, off in enumerate(_offsets(out, x, 2)) if off is None]
    assert not bad, f"{len(bad)} of 64 images are not a crop of the reflect-padded image (e.g. image {bad[0]})"


@pytest.mark.points(2)
def test_random_crop_offsets_cover_0_to_2p_inclusive(ex):
    """Top and left offsets take every value 0..2*padding (both ends) over a large batch."""
    x = _images(400, 5, 5, seed=2)
    offsets = _offsets(ex.random_crop(x, padding=2, rng=np.random.default_rng(2)), x, 2)
    assert all(o is not None for o in offsets), "some outputs are not crops of the reflect-padded image"
    tops, lefts = {o[0] for o in offsets}, {o[1] for o in offsets}
    assert tops == set(range(5)), f"top offsets seen: {sorted(tops)}, expected 0..4 for padding=2"
    assert lefts == set(range(5)), f"left offsets seen: {sorted(lefts)}, expected 0..4 for padding=2"


@pytest.mark.points(2)
def test_random_crop_draws_an_offset_per_image(ex):
    """Images of one batch get different offsets, and top and left are drawn separately."""
    x = _images(48, seed=3)
    offsets = _offsets(ex.random_crop(x, padding=3, rng=np.random.default_rng(3)), x, 3)
    assert all(o is not None for o in offsets), "some outputs are not crops of the reflect-padded image"
    assert len(set(offsets)) > 10, f"only {len(set(offsets))} distinct (top, left) offsets in a batch of 48"
    assert any(t != left for t, left in offsets), "top always equals left: draw them separately"


@pytest.mark.points(1)
def test_random_crop_padding_zero_returns_a_copy(ex):
    """padding=0 gives back the images unchanged (and not the same array object)."""
    x = _images(3)
    out = ex.random_crop(x, padding=0, rng=np.random.default_rng(0))
    assert np.array_equal(out, x)
    assert out is not x


@pytest.mark.points(1)
def test_random_crop_uses_the_given_rng(ex):
    """Two generators with the same seed give the same crops (no hidden global randomness)."""
    x = _images(16, seed=4)
    a = ex.random_crop(x, padding=2, rng=np.random.default_rng(7))
    b = ex.random_crop(x, padding=2, rng=np.random.default_rng(7))
    assert np.array_equal(a, b), "same seed, different result: draw from `rng`, not from np.random"


@pytest.mark.points(1)
def test_random_crop_matches_the_package(ex, package_function):
    """Same seed, same crops as visiondl_keras.data.augment.random_crop (draw all tops, then all lefts)."""
    pkg = package_function("visiondl_keras.data.augment", "random_crop")
    x = _images(32, 8, 8, seed=5)
    expected = pkg(x, padding=4, rng=np.random.default_rng(11))
    assert np.array_equal(ex.random_crop(x, padding=4, rng=np.random.default_rng(11)), expected)


@pytest.mark.points(2)
def test_random_flip_gives_the_image_or_its_left_right_mirror(ex):
    """Each output is the input image or the same image mirrored along its width; the input is untouched."""
    x = _images(64, seed=6)
    before = x.copy()
    out = ex.random_flip(x, rng=np.random.default_rng(0))
    assert out.shape == x.shape and out.dtype == x.dtype
    assert np.array_equal(x, before), "random_flip modified its input"
    for i in range(len(x)):
        ok = np.array_equal(out[i], x[i]) or np.array_equal(out[i], x[i][:, ::-1])
        assert ok, f"image {i} is neither the original nor its left-right mirror (wrong axis?)"


@pytest.mark.points(2)
def test_random_flip_flips_about_half_independently(ex):
    """About half of a large batch is flipped (one coin per image, not one per batch)."""
    x = _images(1000, 2, 3, 1, seed=7)
    flipped = 0
    for seed in range(3):
        out = ex.random_flip(x, rng=np.random.default_rng(seed))
        flipped += sum(not np.array_equal(out[i], x[i]) for i in range(len(x)))
    fraction = flipped / 3000
    assert 0.45 < fraction < 0.55, f"{fraction:.1%} of the images were flipped, expected about 50%"


@pytest.mark.points(1)
def test_random_flip_matches_the_package(ex, package_function):
    """Same seed, same flips as visiondl_keras.data.augment.random_flip (``rng.random(N) < 0.5``)."""
    pkg = package_function("visiondl_keras.data.augment", "random_flip")
    x = _images(40, seed=8)
    expected = pkg(x, rng=np.random.default_rng(3))
    assert np.array_equal(ex.random_flip(x, rng=np.random.default_rng(3)), expected)


# ------------------------------------------------------------------ the Keras layer: PerImageRandomCrop
# Probes run the layer where the student's code lives and return arrays; the checks happen here.


def _probe_crop(module, images, padding, seed, training):
    layer = module.PerImageRandomCrop(padding=padding, seed=seed)
    import numpy as np
    from keras import ops

    return np.asarray(ops.convert_to_numpy(layer(images, training=training)))


def _probe_crop_in_a_model(module, images, labels):
    import keras
    import numpy as np

    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input(images.shape[1:]), module.PerImageRandomCrop(padding=2, seed=1),
                              keras.layers.Flatten(), keras.layers.Dense(3)])
    model.compile("sgd", keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    history = model.fit(images, labels, batch_size=8, epochs=1, verbose=0)
    predicted = model.predict(images, verbose=0)
    flat = keras.layers.Flatten()(images)
    dense = model.layers[-1]
    direct = np.asarray(keras.ops.convert_to_numpy(dense(flat)))
    config = model.layers[0].get_config()
    return {"loss": float(history.history["loss"][0]), "predicted": np.asarray(predicted), "direct": direct,
            "padding": config.get("padding"), "seed": config.get("seed")}


def _probe_bad_padding(module):
    try:
        module.PerImageRandomCrop(padding=-1)
    except ValueError:
        return "ValueError"
    return "no error"


@pytest.mark.points(3)
def test_layer_crops_every_image_at_its_own_offset(ex):
    """training=True: each output is a window of the reflect-padded image; the offsets differ between images."""
    images = _images(48, h=8, w=8, c=2, dtype=np.float32)
    out = ex.probe(_probe_crop, images, 2, 0, True)
    assert out.shape == images.shape and out.dtype == np.float32, (out.shape, out.dtype)
    offsets = _offsets(out, images, 2)
    assert all(o is not None for o in offsets), "every output must be a crop of the reflect-padded image"
    assert len(set(offsets)) >= 6, f"offsets must be drawn per image; got {sorted(set(offsets))}"
    assert {o[0] for o in offsets} >= {0, 4} and {o[1] for o in offsets} >= {0, 4}, "offsets span 0..2*padding"


@pytest.mark.points(2)
def test_layer_is_the_identity_at_inference_and_for_zero_padding(ex):
    """training=False or None (inference) returns the images unchanged; so does padding=0 while training."""
    images = _images(6, h=5, w=5, c=3, dtype=np.float32)
    for training in (False, None):
        assert np.array_equal(ex.probe(_probe_crop, images, 3, 0, training), images), f"training={training}"
    assert np.array_equal(ex.probe(_probe_crop, images, 0, 0, True), images), "padding=0 crops nothing"
    assert ex.probe(_probe_bad_padding) == "ValueError", "a negative padding is a ValueError"


@pytest.mark.points(2)
def test_layer_trains_inside_a_model_and_saves_its_config(ex):
    """In a Sequential model: fit runs, predict skips the crop (inference), get_config keeps padding and seed."""
    images = _images(16, h=6, w=6, c=1, dtype=np.float32) / 255.0
    labels = np.arange(16) % 3
    out = ex.probe(_probe_crop_in_a_model, images, labels)
    assert np.isfinite(out["loss"]), "fit must run with the layer inside the model"
    np.testing.assert_allclose(out["predicted"], out["direct"], rtol=1e-5, atol=1e-5,
                               err_msg="at inference the layer must pass images through unchanged")
    assert out["padding"] == 2 and out["seed"] == 1, f"get_config() -> padding {out['padding']}, seed {out['seed']}"


# ------------------------------------------------------------------ the contract, clause by clause


@pytest.mark.points(1)
def test_random_crop_draws_all_tops_then_all_lefts(ex):
    """For a seed, the offsets are ``rng.integers(0, 2p+1, N)`` for the tops, then the same call for the lefts."""
    x = _images(24, 7, 9, seed=9)
    out = ex.random_crop(x, padding=3, rng=np.random.default_rng(21))
    rng = np.random.default_rng(21)
    tops, lefts = rng.integers(0, 7, size=24), rng.integers(0, 7, size=24)
    padded = np.pad(x, ((0, 0), (3, 3), (3, 3), (0, 0)), mode="reflect")
    expected = np.stack([padded[i, tops[i] : tops[i] + 7, lefts[i] : lefts[i] + 9] for i in range(24)])
    assert np.array_equal(out, expected), "draw all N tops first, then all N lefts, from `rng`"


@pytest.mark.points(1)
def test_random_crop_and_flip_without_rng_are_not_seeded(ex):
    """rng=None draws from a fresh, unseeded generator: two calls give different results (float32 input untouched)."""
    x = _images(32, 8, 8, seed=10, dtype=np.float32)
    before = x.copy()
    crops = [ex.random_crop(x, padding=4) for _ in range(2)]
    assert not np.array_equal(crops[0], crops[1]), "two calls with rng=None cropped the same way: a fixed seed?"
    flips = [ex.random_flip(x) for _ in range(3)]
    assert not (np.array_equal(flips[0], flips[1]) and np.array_equal(flips[1], flips[2])), "rng=None flips alike"
    assert np.array_equal(x, before), "the input was modified"


@pytest.mark.points(1)
def test_random_flip_flips_where_the_coin_is_below_one_half(ex):
    """Image i is mirrored exactly when ``rng.random(N)[i] < 0.5``; a float32 batch is not modified."""
    x = _images(40, 3, 5, seed=11, dtype=np.float32)
    before = x.copy()
    out = ex.random_flip(x, rng=np.random.default_rng(5))
    coins = np.random.default_rng(5).random(40) < 0.5
    expected = np.where(coins[:, None, None, None], x[:, :, ::-1], x)
    assert np.array_equal(out, expected), "flip image i when rng.random(N)[i] < 0.5 (one call for the batch)"
    assert out.dtype == np.float32 and np.array_equal(x, before), "same dtype, and the input must not change"


@pytest.mark.points(1)
def test_layer_crops_non_square_images_and_refuses_fractional_padding(ex):
    """A 6x9 batch is cropped per image (rows from the height, columns from the width); padding=2.5 is a ValueError."""
    images = _images(32, h=6, w=9, c=1, dtype=np.float32)
    out = ex.probe(_probe_crop, images, 2, 3, True)
    assert out.shape == images.shape, f"shape {out.shape}, expected {images.shape}"
    offsets = _offsets(out, images, 2)
    assert all(o is not None for o in offsets), "every output must be a crop of the reflect-padded image"
    assert ex.probe(_probe_fractional_padding) == "ValueError", "padding=2.5 must raise ValueError"


def _probe_fractional_padding(module):
    try:
        module.PerImageRandomCrop(padding=2.5)
    except ValueError:
        return "ValueError"
    return "no error"
