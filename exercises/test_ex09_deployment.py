"""Graded tests of exercise 09 (lesson 09): preprocess_image and top_k.

Run: ``pytest exercises/test_ex09_deployment.py``.
"""

import numpy as np
import pytest
from PIL import Image


def _rgb(h, w, seed=0):
    return np.random.default_rng(seed).integers(0, 256, size=(h, w, 3)).astype(np.uint8)


def _reference(rgb_array):
    """Central square, then BOX resize to 32x32 (written independently of the exercise)."""
    h, w = rgb_array.shape[:2]
    side = min(h, w)
    top, left = (h - side) // 2, (w - side) // 2
    square = Image.fromarray(rgb_array[top : top + side, left : left + side])
    return np.asarray(square.resize((32, 32), Image.Resampling.BOX))


@pytest.mark.points(1)
def test_preprocess_returns_32x32x3_uint8(ex):
    """Whatever the size, a (32, 32, 3) uint8 array comes back; the input image is unchanged."""
    im = Image.fromarray(_rgb(50, 70))
    before = np.asarray(im).copy()
    out = ex.preprocess_image(im)
    assert isinstance(out, np.ndarray), f"return a numpy array, got {type(out).__name__}"
    assert out.shape == (32, 32, 3) and out.dtype == np.uint8, f"got {out.shape} {out.dtype}"
    assert np.array_equal(np.asarray(im), before)


@pytest.mark.points(3)
def test_preprocess_crops_the_central_square_and_box_resizes(ex):
    """A wide and a tall photo: central square crop (no squashing), then Pillow's BOX filter to 32x32."""
    for h, w, seed in [(64, 96, 1), (97, 40, 2), (32, 45, 3)]:
        array = _rgb(h, w, seed)
        out = ex.preprocess_image(Image.fromarray(array))
        assert np.array_equal(out, _reference(array)), f"{w}x{h} image: not the central square, BOX-resized"


@pytest.mark.points(1)
def test_preprocess_keeps_a_32x32_rgb_image(ex):
    """A 32x32 RGB image is already the model's input: returned pixel for pixel."""
    array = _rgb(32, 32, 4)
    assert np.array_equal(ex.preprocess_image(Image.fromarray(array)), array)


@pytest.mark.points(1)
def test_preprocess_keeps_the_channel_order(ex):
    """A pure red image stays red: [255, 0, 0], not BGR."""
    out = ex.preprocess_image(Image.new("RGB", (40, 40), (255, 0, 0)))
    assert np.all(out == [255, 0, 0]), f"pixel {out[0, 0].tolist()}, expected [255, 0, 0]"


@pytest.mark.points(1)
def test_preprocess_grey_gives_three_equal_channels(ex):
    """Mode L (grey) becomes RGB with three identical channels."""
    grey = np.random.default_rng(5).integers(0, 256, size=(48, 48)).astype(np.uint8)
    out = ex.preprocess_image(Image.fromarray(grey, mode="L"))
    assert out.shape == (32, 32, 3)
    assert np.array_equal(out[..., 0], out[..., 1]) and np.array_equal(out[..., 1], out[..., 2])
    assert np.array_equal(out[..., 0], np.asarray(Image.fromarray(grey).resize((32, 32), Image.Resampling.BOX)))


@pytest.mark.points(2)
def test_preprocess_composites_transparency_on_white(ex):
    """RGBA: a fully transparent pixel becomes white, an opaque one keeps its colour, half-transparent is in between."""
    rgba = np.zeros((32, 32, 4), np.uint8)
    rgba[:, :16] = [10, 20, 30, 255]  # opaque, left half
    rgba[:, 16:24] = [0, 0, 0, 0]  # fully transparent black
    rgba[:, 24:] = [0, 0, 200, 128]  # half-transparent blue
    out = ex.preprocess_image(Image.fromarray(rgba, mode="RGBA")).astype(int)
    assert out.shape == (32, 32, 3), f"shape {out.shape}: drop the alpha channel after compositing"
    assert np.all(out[:, :16] == [10, 20, 30]), "opaque pixels must keep their colour"
    assert np.all(out[:, 16:24] == 255), f"transparent pixels: {out[0, 20].tolist()}, expected white [255, 255, 255]"
    assert np.all(np.abs(out[:, 24:] - [127, 127, 227]) <= 1), f"half-transparent blue on white: {out[0, 30].tolist()}"


@pytest.mark.points(1)
def test_preprocess_matches_the_package(ex, package_function):
    """Same arrays as visiondl_keras.deploy.predictor.preprocess_image for RGB, grey, RGBA and palette images."""
    pkg = package_function("visiondl_keras.deploy.predictor", "preprocess_image")
    rng = np.random.default_rng(6)
    images = [
        Image.fromarray(_rgb(41, 77, 7)),
        Image.fromarray(rng.integers(0, 256, size=(90, 60)).astype(np.uint8), mode="L"),
        Image.fromarray(rng.integers(0, 256, size=(50, 50, 4)).astype(np.uint8), mode="RGBA"),
        Image.fromarray(_rgb(36, 36, 8)).convert("P"),
    ]
    for im in images:
        got, expected = ex.preprocess_image(im.copy()).astype(int), pkg(im.copy()).astype(int)
        assert got.shape == expected.shape and np.abs(got - expected).max() <= 1, f"mode {im.mode}, size {im.size}"


@pytest.mark.points(2)
def test_top_k_known_values(ex):
    """The k most probable classes, most probable first, as (name, float) pairs."""
    names = ["airplane", "automobile", "bird", "cat"]
    got = ex.top_k(np.array([0.1, 0.2, 0.6, 0.1], np.float32), names, 2)
    assert [n for n, _ in got] == ["bird", "automobile"], f"got {got}"
    assert all(isinstance(p, float) for _, p in got), "probabilities must be Python floats"
    assert np.allclose([p for _, p in got], [0.6, 0.2])


@pytest.mark.points(1)
def test_top_k_edge_cases(ex):
    """k larger than the number of classes gives them all; equal probabilities keep the class order."""
    names = ["a", "b", "c"]
    got = ex.top_k(np.array([0.25, 0.5, 0.25]), names, 10)
    assert [n for n, _ in got] == ["b", "a", "c"], f"got {got}"
    assert ex.top_k(np.array([0.25, 0.5, 0.25]), names, 1) == [("b", 0.5)]


# ------------------------------------------------------------------ the contract, clause by clause


@pytest.mark.points(1)
def test_preprocess_composites_la_and_palette_transparency_on_white(ex):
    """Grey with alpha (LA) and a palette image with a transparent index (P) put transparent pixels on white."""
    la = np.zeros((32, 32, 2), np.uint8)
    la[:, :16] = [60, 255]  # opaque grey
    la[:, 16:] = [0, 0]  # transparent black
    out = ex.preprocess_image(Image.fromarray(la, mode="LA")).astype(int)
    assert np.all(out[:, :16] == 60) and np.all(out[:, 16:] == 255), f"LA: {out[0, 0].tolist()}, {out[0, 20].tolist()}"
    rgb = np.zeros((32, 32, 3), np.uint8)
    rgb[:, :16] = [200, 10, 10]
    pal = Image.fromarray(rgb).convert("P", palette=Image.Palette.ADAPTIVE, colors=2)
    black = int(np.asarray(pal)[0, 20])
    pal.info["transparency"] = black
    out = ex.preprocess_image(pal).astype(int)
    assert np.all(out[:, 16:] == 255), f"P with transparency: {out[0, 20].tolist()}, expected white"
    assert np.all(np.abs(out[:, :16] - [200, 10, 10]) <= 2), f"opaque palette pixels: {out[0, 0].tolist()}"


@pytest.mark.points(1)
def test_preprocess_honours_the_size(ex):
    """size=20 and size=48 (smaller and larger than the square) give (size, size, 3) BOX-resized central squares."""
    array = _rgb(30, 40, 9)
    square = Image.fromarray(array[:, 5:35])
    for size in (20, 48):
        out = ex.preprocess_image(Image.fromarray(array), size=size)
        assert out.shape == (size, size, 3), f"size={size}: shape {out.shape}"
        assert np.array_equal(out, np.asarray(square.resize((size, size), Image.Resampling.BOX)))
    assert np.array_equal(ex.preprocess_image(Image.fromarray(array), size=30), array[:, 5:35])


@pytest.mark.points(1)
def test_top_k_many_ties_keep_the_class_order(ex):
    """100 classes with two distinct probabilities: the ties come out in class order (a stable sort), as tuples."""
    rng = np.random.default_rng(10)
    p = rng.choice([1.0, 2.0], size=100)
    p /= p.sum()
    names = [f"class{i}" for i in range(100)]
    got = ex.top_k(p, names, 30)
    expected = [names[i] for i in np.argsort(-p, kind="stable")[:30]]
    assert all(isinstance(pair, tuple) and len(pair) == 2 for pair in got), "return (name, probability) tuples"
    assert [n for n, _ in got] == expected, "equal probabilities must keep the class order"
