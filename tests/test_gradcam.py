"""Grad-CAM: the weighting step, localisation, agreement with tf-keras-vis, nested backbones,
the Adebayo et al. sanity check, overlays, galleries and the gradient dispatch (JAX too)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import keras
import numpy as np
import pytest

from visiondl_keras.errors import ConfigError, ModelError
from visiondl_keras.evaluation.gradcam import (
    gradcam,
    gradcam_from_activations,
    gradcam_plus_plus_from_activations,
    gradcam_sanity_check,
    overlay_heatmap,
    select_gallery_examples,
    upsample_maps,
)
from visiondl_keras.evaluation.gradients import (
    find_layer,
    input_gradients,
    last_conv_layer,
    layer_activations_and_gradients,
)
from visiondl_keras.models import build_resnet9, build_simple_cnn

COLOURS = np.array([[255, 40, 40], [40, 255, 40], [40, 40, 255]], dtype=np.float32)


def colour_blobs(n, seed=0):
    """Grey noise with one 8x8 coloured square at a random place; the class is the colour."""
    rng = np.random.default_rng(seed)
    x = rng.uniform(70, 150, (n, 32, 32, 3)).astype(np.float32)
    y = rng.integers(0, 3, n)
    boxes = rng.integers(0, 24, (n, 2))
    for i in range(n):
        r, c = boxes[i]
        x[i, r : r + 8, c : c + 8] = COLOURS[y[i]]
    return x, y, boxes


@pytest.fixture(scope="module")
def trained():
    """A small CNN trained for a few seconds to tell the colour of the square."""
    keras.utils.set_random_seed(0)
    x, y, _ = colour_blobs(768, seed=0)
    model = build_simple_cnn(width=8, num_classes=3)
    model.compile(keras.optimizers.Adam(3e-3), keras.losses.SparseCategoricalCrossentropy(from_logits=True), metrics=["accuracy"])
    model.fit(x, y, epochs=3, batch_size=64, verbose=0)
    xt, yt, boxes = colour_blobs(24, seed=1)
    acc = float((model.predict(xt, verbose=0).argmax(1) == yt).mean())
    assert acc >= 0.9, f"fixture model did not learn the task (accuracy {acc})"
    return model, xt, yt, boxes


# ----------------------------------------------------------------------------- numpy steps


def test_gradcam_from_activations_known_values():
    a = np.zeros((1, 2, 2, 2))
    a[0, 0, 0, 0] = 2.0
    a[0, 1, 1, 1] = 1.0
    a[0, 0, 1, 0] = 1.0
    g = np.zeros_like(a)
    g[..., 0] = 1.0  # channel weight mean = 1
    g[..., 1] = -4.0  # channel weight -4: negative evidence, removed by the ReLU
    out = gradcam_from_activations(a, g)
    np.testing.assert_allclose(out[0], [[1.0, 0.5], [0.0, 0.0]])
    assert out.dtype == np.float32


def test_gradcam_from_activations_matches_reference_formula():
    rng = np.random.default_rng(0)
    a, g = rng.normal(size=(5, 4, 6, 7)), rng.normal(size=(5, 4, 6, 7))
    w = g.mean(axis=(1, 2))
    cam = np.maximum(sum(a[..., c] * w[:, c, None, None] for c in range(7)), 0)
    cam = cam / cam.reshape(5, -1).max(1)[:, None, None]
    np.testing.assert_allclose(gradcam_from_activations(a, g), cam, rtol=1e-5, atol=1e-6)
    assert gradcam_from_activations(a, g).max() == pytest.approx(1.0)


def test_gradcam_without_positive_evidence_is_zero():
    a = np.ones((2, 3, 3, 4))
    g = -np.ones_like(a)
    assert np.all(gradcam_from_activations(a, g) == 0.0)
    assert np.all(gradcam_plus_plus_from_activations(a, np.zeros_like(a)) == 0.0)


def test_shape_errors():
    with pytest.raises(ConfigError, match="activations and gradients"):
        gradcam_from_activations(np.zeros((1, 2, 2, 3)), np.zeros((1, 2, 2, 4)))
    with pytest.raises(ConfigError):
        gradcam_plus_plus_from_activations(np.zeros((2, 2, 3)), np.zeros((2, 2, 3)))


def test_upsample_matches_scipy_zoom():
    from scipy.ndimage import zoom

    rng = np.random.default_rng(1)
    maps = rng.uniform(0, 1, (3, 4, 4))
    up = upsample_maps(maps, (32, 32))
    for m, u in zip(maps, up):
        ref = zoom(m, 8, order=1)
        ref = ref / ref.max()
        np.testing.assert_allclose(u, ref, atol=1e-5)


# ----------------------------------------------------------------------------- model-level


def test_gradcam_localises_the_evidence(trained):
    model, x, y, boxes = trained
    maps = gradcam(model, x)
    assert maps.shape == (len(x), 32, 32)
    assert maps.min() >= 0.0 and maps.max() <= 1.0
    hits = 0
    for m, (r, c) in zip(maps, boxes):  # the peak lies on the 8x8 square (3 px of slack)
        pr, pc = np.unravel_index(m.argmax(), m.shape)
        hits += (r - 3 <= pr < r + 11) and (c - 3 <= pc < c + 11)
    assert hits >= 0.75 * len(x), f"Grad-CAM peaked on the square in only {hits}/{len(x)} images"


def test_agreement_with_tf_keras_vis(trained):
    pytest.importorskip("tf_keras_vis")
    if keras.backend.backend() != "tensorflow":
        pytest.skip("tf-keras-vis runs on TensorFlow only")
    from tf_keras_vis.gradcam import Gradcam
    from tf_keras_vis.gradcam_plus_plus import GradcamPlusPlus
    from tf_keras_vis.utils.scores import CategoricalScore

    model, x, _, _ = trained
    path, layer = last_conv_layer(model)
    assert path == "block3b_relu"
    pred = model.predict(x, verbose=0).argmax(1)
    for method, cls in (("gradcam", Gradcam), ("gradcam++", GradcamPlusPlus)):
        ref = cls(model, clone=True)(CategoricalScore(list(pred)), x, penultimate_layer=path, seek_penultimate_conv_layer=False)
        mine = gradcam(model, x, layer=path, method=method)
        r = [np.corrcoef(a.ravel(), b.ravel())[0, 1] for a, b in zip(mine, ref)]
        assert min(r) >= 0.99, f"{method}: Pearson per map {np.round(r, 4)}"


def test_class_index_options(trained):
    model, x, _, _ = trained
    x = x[:6]
    pred = model.predict(x, verbose=0).argmax(1)
    np.testing.assert_allclose(gradcam(model, x), gradcam(model, x, class_index=pred), atol=1e-6)
    per_image = gradcam(model, x, class_index=np.full(6, 2))
    np.testing.assert_allclose(per_image, gradcam(model, x, class_index=2), atol=1e-6)
    # explaining another class gives another map somewhere
    other = gradcam(model, x, class_index=(pred + 1) % 3)
    assert np.abs(other - gradcam(model, x)).max() > 0.1
    with pytest.raises(ConfigError, match="class_index"):
        gradcam(model, x, class_index=7)
    with pytest.raises(ConfigError, match="class_index"):
        gradcam(model, x, class_index=[0, 1])
    with pytest.raises(ConfigError, match="method"):
        gradcam(model, x, method="scorecam")
    with pytest.raises(ConfigError, match="no layer"):
        gradcam(model, x, layer="nope")


def test_model_without_convolution_is_a_clear_error():
    inp = keras.Input((8, 8, 3))
    model = keras.Model(inp, keras.layers.Dense(2)(keras.layers.Flatten()(inp)))
    with pytest.raises(ModelError, match="no convolutional layer"):
        gradcam(model, np.zeros((1, 8, 8, 3)))


def test_resnet9_default_layer_is_the_last_residual_output():
    model = build_resnet9(width=4)
    assert last_conv_layer(model)[0] == "res3_add"


@pytest.fixture(scope="module")
def nested():
    keras.utils.set_random_seed(1)
    backbone = keras.applications.MobileNetV2(alpha=0.35, weights=None, include_top=False, input_shape=(96, 96, 3))
    inp = keras.Input((32, 32, 3))
    h = keras.layers.Resizing(96, 96)(inp)
    h = keras.layers.Rescaling(1 / 127.5, offset=-1)(h)
    h = backbone(h)
    h = keras.layers.GlobalAveragePooling2D()(h)
    out = keras.layers.Dense(10, name="logits")(h)
    return keras.Model(inp, out), backbone


def test_nested_backbone_layer_found_and_exact(nested):
    import tensorflow as tf

    model, backbone = nested
    path, layer = last_conv_layer(model)
    assert path == f"{backbone.name}/out_relu"
    assert find_layer(model, "out_relu")[1] is layer
    x = np.random.default_rng(0).uniform(0, 255, (3, 32, 32, 3)).astype(np.float32)
    acts, grads, logits = layer_activations_and_gradients(model, x, class_index=4)
    # independent computation: split the model at the backbone's output
    pre = keras.Model(model.inputs, model.layers[2].output)
    with tf.GradientTape() as tape:
        feats = backbone(pre(x), training=False)
        tape.watch(feats)
        score = tf.reduce_sum(model.layers[-1](model.layers[-2](feats))[:, 4])
    ref = tape.gradient(score, feats).numpy()
    np.testing.assert_allclose(acts, feats.numpy(), atol=1e-5)
    np.testing.assert_allclose(grads, ref, atol=1e-6 + 1e-4 * np.abs(ref).max())
    np.testing.assert_allclose(logits, model.predict(x, verbose=0), atol=1e-4)
    maps = gradcam(model, x, class_index=4)
    assert maps.shape == (3, 32, 32) and 0.0 <= maps.min() and maps.max() <= 1.0


def test_sanity_check_passes_reports_and_restores_weights(trained):
    model, x, _, _ = trained
    before = [w.copy() for w in model.get_weights()]
    result = gradcam_sanity_check(model, x[:12], num_layers=3, seed=0)
    after = model.get_weights()
    for a, b in zip(before, after):
        np.testing.assert_array_equal(a, b)
    assert result["passed"], result
    assert result["mean_spearman"] < 0.5
    assert [s["reinitialised"][-1] for s in result["steps"]] == ["logits", "block3b_bn", "block3b_conv"]
    assert len(result["spearman_per_image"]) == 12
    json.dumps(result)  # reportable as JSON
    _, orig, rand = gradcam_sanity_check(model, x[:4], num_layers=1, return_maps=True)
    assert orig.shape == rand.shape == (4, 32, 32)


def test_overlay_heatmap():
    import matplotlib

    img = np.full((4, 4, 3), 100, np.uint8)
    hm = np.linspace(0, 1, 16).reshape(4, 4)
    np.testing.assert_array_equal(overlay_heatmap(img, hm, alpha=0.0), img)
    full = overlay_heatmap(img, hm, alpha=1.0)
    np.testing.assert_array_equal(full, np.round(matplotlib.colormaps["jet"](hm)[..., :3] * 255).astype(np.uint8))
    assert overlay_heatmap(img, hm[:2, :2]).shape == (4, 4, 3)
    with pytest.raises(ConfigError):
        overlay_heatmap(img[..., 0], hm)
    with pytest.raises(ConfigError):
        overlay_heatmap(img, hm, alpha=2.0)


def test_select_gallery_examples_mixes_right_and_wrong_across_classes():
    rng = np.random.default_rng(0)
    labels = np.repeat(np.arange(10), 30)
    probs = rng.dirichlet(np.ones(10), size=300)
    probs[np.arange(300)[::2], labels[::2]] += 5.0  # half of them right
    probs /= probs.sum(1, keepdims=True)
    sel = select_gallery_examples(probs, labels, n=24)
    assert len(sel) == 24 and len(set(sel.tolist())) == 24
    right = probs[sel].argmax(1) == labels[sel]
    assert right.sum() == 12
    assert len(set(labels[sel[right]].tolist())) == 10 and len(set(labels[sel[~right]].tolist())) == 10


def test_input_gradients_finite_differences():
    keras.utils.set_random_seed(0)
    model = build_simple_cnn(width=4, num_classes=3)
    x = np.random.default_rng(0).uniform(0, 255, (3, 32, 32, 3)).astype(np.float32)
    y = np.array([0, 1, 2])
    g = input_gradients(model, x, y)

    def loss(xx):
        z = model.predict(xx, verbose=0).astype(np.float64)
        z -= z.max(1, keepdims=True)
        return float(-(z[np.arange(3), y] - np.log(np.exp(z).sum(1))).sum())

    for pos in [(0, 3, 4, 0), (1, 20, 10, 2), (2, 31, 31, 1)]:
        e = np.zeros_like(x)
        e[pos] = 1.0
        fd = (loss(x + e) - loss(x - e)) / 2.0
        assert g[pos] == pytest.approx(fd, rel=0.05, abs=2e-5)
    # a score function instead of labels: d(sum of logit 1)/dx
    g1 = input_gradients(model, x, lambda out: out[:, 1])
    assert g1.shape == x.shape and np.abs(g1).sum() > 0
    with pytest.raises(ConfigError, match="labels"):
        input_gradients(model, x, np.array([0, 1]))


@pytest.mark.slow
@pytest.mark.parametrize("backend", ["jax", "torch"])
def test_other_backends_give_the_same_maps_and_gradients(trained, tmp_path, backend):
    """The dispatch on JAX and PyTorch (in a subprocess) agrees with TensorFlow on the same saved model."""
    pytest.importorskip(backend)
    model, x, y, _ = trained
    path = tmp_path / "m.keras"
    model.save(path)
    np.save(tmp_path / "x.npy", x[:4])
    np.save(tmp_path / "y.npy", y[:4])
    script = textwrap.dedent(
        f"""
        import numpy as np, keras
        from visiondl_keras.evaluation.gradcam import gradcam
        from visiondl_keras.evaluation.gradients import input_gradients
        m = keras.saving.load_model({str(path)!r})
        x = np.load({str(tmp_path / "x.npy")!r}); y = np.load({str(tmp_path / "y.npy")!r})
        np.save({str(tmp_path / "maps.npy")!r}, gradcam(m, x))
        np.save({str(tmp_path / "grads.npy")!r}, input_gradients(m, x, y))
        print(keras.backend.backend())
        """
    )
    env = dict(os.environ, KERAS_BACKEND=backend, JAX_PLATFORMS="cpu")
    proc = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.strip().endswith(backend)
    np.testing.assert_allclose(np.load(tmp_path / "maps.npy"), gradcam(model, x[:4]), atol=1e-3)
    g_tf = input_gradients(model, x[:4], y[:4])
    np.testing.assert_allclose(np.load(tmp_path / "grads.npy"), g_tf, atol=1e-4 * np.abs(g_tf).max() + 1e-8)
