"""Transfer learning: model contract, offline weights and their error paths, strategies, the feature
cache, discriminative learning rates, the two-stage recipe on the shared engine (resumable, also after
``kill -9``) and the transfer-compare / transfer-train commands.

Models are tiny (MobileNet alpha 0.25 at 32 px, random weights) except where the offline ImageNet
files are the point; those tests are skipped when ``../shared/weights/keras-models`` is missing.
"""

from __future__ import annotations

import json
import logging
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import keras
import numpy as np
import pytest
from conftest import make_splits

from visiondl_keras.errors import ConfigError, ModelError
from visiondl_keras.models import backbones
from visiondl_keras.models.backbones import (
    apply_strategy,
    build_transfer_model,
    freeze_all_but_top,
    freeze_bottom_layers,
    get_backbone,
    head_model,
    keras_weights_filename,
    trainable_params,
    unfreezable_layers,
)
from visiondl_keras.runs import RunDir
from visiondl_keras.training.engine import fit_epoch
from visiondl_keras.training.transfer import (
    EpochCosine,
    compile_transfer_model,
    copy_weights,
    discriminative_optimizer,
    fit_two_stages,
    image_epochs,
    reference_recipe,
)

SHARED_WEIGHTS = Path(__file__).resolve().parents[1].parent / "shared" / "weights" / "keras-models"
V2_224 = "mobilenet_v2_weights_tf_dim_ordering_tf_kernels_0.35_224_no_top.h5"


def tiny(strategy="frozen", backbone="mobilenet", **kw):
    kw.setdefault("alpha", 0.25 if backbone == "mobilenet" else None)
    kw.setdefault("input_size", 32)
    kw.setdefault("weights", None)
    return build_transfer_model(backbone, strategy, **kw)


def images(n, seed=0):
    return np.random.default_rng(seed).integers(0, 256, size=(n, 32, 32, 3), dtype=np.uint8)


@pytest.fixture
def offline_weights(monkeypatch):
    """Only the project's offline folder is searched (not ~/.keras), so tests see what CI sees."""
    if not (SHARED_WEIGHTS / V2_224).is_file():
        pytest.skip("offline ImageNet weights (../shared/weights/keras-models) not available")
    monkeypatch.setattr(backbones, "weight_search_dirs", lambda: [SHARED_WEIGHTS])
    return SHARED_WEIGHTS


@pytest.fixture
def no_weights(tmp_path, monkeypatch):
    """No weight file anywhere, and Keras' download fails as it does offline."""
    monkeypatch.setattr(backbones, "weight_search_dirs", lambda: [tmp_path / "empty"])

    def offline_get_file(fname, origin=None, **kwargs):
        raise Exception(f"URL fetch failure on {origin}: None -- [Errno -2] Name or service not known")

    monkeypatch.setattr("keras.src.utils.file_utils.get_file", offline_get_file)
    return tmp_path


# ---------------------------------------------------------------------------------------------
# The model contract
# ---------------------------------------------------------------------------------------------


def test_contract_raw_pixels_in_float32_logits_out():
    model = tiny()
    assert model.input_shape == (None, 32, 32, 3)
    logits = model.get_layer("logits")
    assert model.layers[-1] is logits and logits.dtype == "float32" and logits.get_config()["activation"] == "linear"
    x = images(4)
    out = model.predict(x, verbose=0)  # raw uint8 pixels, no preprocessing outside the model
    assert out.shape == (4, 10) and out.dtype == np.float32 and np.isfinite(out).all()
    np.testing.assert_allclose(out, model.predict(x.astype(np.float32), verbose=0), atol=1e-6)
    assert model.get_layer("resize").output.shape[1:3] == (32, 32)
    assert [layer.name for layer in model.layers[:4]] == ["image", "resize", "preprocess", "backbone"]


@pytest.mark.parametrize(
    "backbone, module",
    [("mobilenet_v2", keras.applications.mobilenet_v2), ("resnet50", keras.applications.resnet50)],
)
def test_preprocessing_equals_the_backbones_preprocess_input(backbone, module):
    model = tiny(backbone=backbone, input_size=40)
    x = images(3).astype(np.float32)
    inner = keras.Model(model.inputs, model.get_layer("preprocess").output)
    resized = keras.ops.convert_to_numpy(model.get_layer("resize")(x))
    expected = module.preprocess_input(resized.copy())
    np.testing.assert_allclose(inner.predict(x, verbose=0), expected, atol=1e-4)


def test_mobilenet_v3_small_preprocessing_is_outside_the_backbone():
    model = tiny(backbone="mobilenet_v3_small", alpha=0.75)
    assert not any(isinstance(layer, keras.layers.Rescaling) for layer in get_backbone(model).layers)
    x = np.full((1, 32, 32, 3), 255.0, np.float32)
    inner = keras.Model(model.inputs, model.get_layer("preprocess").output)
    np.testing.assert_allclose(inner.predict(x, verbose=0), 1.0, atol=1e-6)


@pytest.mark.parametrize("backbone", ["mobilenet", "mobilenet_v3_small", "resnet50"])
def test_trainable_params_frozen_partial_full_increase(backbone):
    model = tiny(backbone=backbone)
    counts = {}
    for strategy in ("frozen", "partial", "full"):
        apply_strategy(model, strategy)
        counts[strategy] = trainable_params(model)
    head = sum(int(np.prod(w.shape)) for w in model.get_layer("logits").weights)
    assert counts["frozen"] == head
    assert counts["frozen"] < counts["partial"] < counts["full"]
    # the fixed preprocessing (resnet50's 1x1 BGR convolution) never trains
    assert counts["full"] == trainable_params(get_backbone(model)) + head
    assert model.output_shape == (None, 10)


# ---------------------------------------------------------------------------------------------
# freeze_all_but_top: the exact semantics the exercise is graded against
# ---------------------------------------------------------------------------------------------


def test_freeze_all_but_top_semantics():
    base = keras.applications.MobileNetV2(input_shape=(32, 32, 3), include_top=False, weights=None, alpha=0.35)
    counted = unfreezable_layers(base)
    assert all(layer.weights and not isinstance(layer, keras.layers.BatchNormalization) for layer in counted)
    assert [layer.name for layer in counted[-2:]] == ["block_16_project", "Conv_1"]

    names = freeze_all_but_top(base, 2)
    assert names == ["block_16_project", "Conv_1"]
    assert base.trainable
    assert {layer.name for layer in base.layers if layer.trainable} == set(names)
    assert all(not layer.trainable for layer in base.layers if isinstance(layer, keras.layers.BatchNormalization))
    expected = sum(int(np.prod(w.shape)) for layer in counted[-2:] for w in layer.weights)
    assert trainable_params(base) == expected

    assert freeze_all_but_top(base, 0) == [] and base.trainable_weights == []  # n = 0: not "all" ([-0:])
    assert len(freeze_all_but_top(base, 10_000)) == len(counted)
    assert all(not layer.trainable for layer in base.layers if isinstance(layer, keras.layers.BatchNormalization))
    for bad in (-1, 1.5, "2", True):
        with pytest.raises(ConfigError, match="n must be"):
            freeze_all_but_top(base, bad)


def test_freeze_bottom_layers_freezes_the_bottom_block_batchnorm_included():
    base = keras.applications.MobileNetV2(input_shape=(32, 32, 3), include_top=False, weights=None, alpha=0.35)
    counted, layers = unfreezable_layers(base), base.layers
    stop = layers.index(counted[9])  # block_3_expand: the first layer that still trains
    full = trainable_params(base)
    bottom = sum(int(np.prod(w.shape)) for layer in layers[:stop] for w in layer.trainable_weights)
    assert freeze_bottom_layers(base, 0) == [] and trainable_params(base) == full
    names = freeze_bottom_layers(base, 9)
    assert names == [layer.name for layer in counted[:9]]
    assert names[0] == "Conv1" and names[-1] == "block_2_project" and counted[9].name == "block_3_expand"
    assert not any(layer.trainable for layer in layers[:stop])
    assert all(layer.trainable for layer in layers[stop:])
    assert not base.get_layer("block_2_project_BN").trainable  # the BatchNorm after the last frozen conv
    assert 0 < bottom < full and trainable_params(base) == full - bottom
    for bad in (-1, 1.5, True, len(counted)):
        with pytest.raises(ConfigError, match="freeze_bottom must be"):
            freeze_bottom_layers(base, bad)


def test_full_strategy_with_frozen_bottom_leaves_those_weights_and_statistics_unchanged():
    keras.utils.set_random_seed(0)
    model = tiny("frozen", backbone="mobilenet_v2", alpha=0.35, dropout=0.0)
    apply_strategy(model, "full", freeze_bottom=3)
    backbone = get_backbone(model)
    before = {layer.name: [keras.ops.convert_to_numpy(w) for w in layer.weights] for layer in backbone.layers}
    compile_transfer_model(model, 1e-2)
    x, y = images(16), np.eye(10, dtype=np.float32)[np.arange(16) % 10]
    for _ in range(2):
        model.train_on_batch(x, y)
    changed = {layer.name for layer in backbone.layers
               if any(not np.array_equal(a, keras.ops.convert_to_numpy(w)) for a, w in zip(before[layer.name], layer.weights))}
    assert not changed & {"Conv1", "bn_Conv1", "expanded_conv_depthwise", "expanded_conv_depthwise_BN",
                          "expanded_conv_project", "expanded_conv_project_BN"}
    assert {"block_1_expand", "block_1_expand_BN", "Conv_1"} <= changed
    assert trainable_params(model) < trainable_params(apply_strategy(model, "full"))
    with pytest.raises(ConfigError, match="full strategy only"):
        apply_strategy(model, "partial", freeze_bottom=3)
    with pytest.raises(ConfigError, match="full strategy only"):
        reference_recipe("partial", freeze_bottom=3)
    with pytest.raises(ConfigError, match="non-negative"):
        reference_recipe("full", freeze_bottom=-2)
    assert reference_recipe("full", freeze_bottom=9)["freeze_bottom"] == 9
    assert reference_recipe("full")["freeze_bottom"] == 0


def test_freeze_all_but_top_on_a_transfer_model_keeps_the_head_trainable():
    model = tiny("frozen")
    names = freeze_all_but_top(model, 3)
    assert len(names) == 3
    assert model.get_layer("logits").trainable and not model.get_layer("preprocess").trainable
    backbone = get_backbone(model)
    assert [layer.name for layer in backbone.layers if layer.trainable] == names
    assert trainable_params(model) == trainable_params(backbone) + 2570  # 256 * 10 + 10


def test_partial_fraction_and_bad_arguments():
    model = tiny("partial", unfreeze=0.5)
    n_counted = len(unfreezable_layers(get_backbone(model)))
    trainable_layers = [layer for layer in get_backbone(model).layers if layer.trainable]
    assert len(trainable_layers) == round(0.5 * n_counted)
    with pytest.raises(ConfigError, match="unfreeze"):
        apply_strategy(model, "partial", unfreeze=1.5)
    with pytest.raises(ConfigError, match="unknown strategy"):
        tiny("half")
    with pytest.raises(ConfigError, match="unknown backbone"):
        build_transfer_model("vgg99", weights=None)
    with pytest.raises(ConfigError, match="no nested 'backbone'"):
        get_backbone(keras.Sequential([keras.Input((4,)), keras.layers.Dense(2)]))


def test_batchnorm_mode_follows_the_strategy():
    """frozen/partial: BatchNorm frozen, so inference mode even under training=True; full: batch statistics."""
    model = tiny("frozen", dropout=0.0)
    x = images(8).astype(np.float32)

    def same_in_both_modes():
        a = keras.ops.convert_to_numpy(model(x, training=True))
        b = keras.ops.convert_to_numpy(model(x, training=False))
        return np.allclose(a, b, rtol=1e-5, atol=1e-5)

    assert same_in_both_modes()
    apply_strategy(model, "partial", unfreeze=5)
    assert same_in_both_modes()
    apply_strategy(model, "full")
    assert not same_in_both_modes()  # Keras passes training=True down to the nested backbone's BatchNorm


# ---------------------------------------------------------------------------------------------
# Weights: offline loading and error paths
# ---------------------------------------------------------------------------------------------


def test_keras_weight_file_names():
    assert keras_weights_filename("mobilenet_v2", 0.35, 96) == "mobilenet_v2_weights_tf_dim_ordering_tf_kernels_0.35_96_no_top.h5"
    assert keras_weights_filename("mobilenet_v2", 0.35, 100) == V2_224
    assert keras_weights_filename("mobilenet", 0.25, 128) == "mobilenet_2_5_128_tf_no_top.h5"
    assert keras_weights_filename("mobilenet", 0.25, 96) == "mobilenet_2_5_224_tf_no_top.h5"  # Keras has no 96 px v1
    assert keras_weights_filename("resnet50") == "resnet50_weights_tf_dim_ordering_tf_kernels_notop.h5"
    assert keras_weights_filename("mobilenet_v3_small") == "weights_mobilenet_v3_small_224_1.0_float_no_top_v2.h5"


def test_offline_224_weights_load_into_a_96_px_model_with_a_log_line(offline_weights, caplog):
    with caplog.at_level(logging.INFO, logger="visiondl_keras.models.backbones"):
        model = build_transfer_model("mobilenet_v2", "frozen", input_size=96)
    assert "loaded the 224 px file" in caplog.text and V2_224 in caplog.text
    assert model.weights_source.endswith(V2_224)
    reference = keras.applications.MobileNetV2(
        input_shape=(224, 224, 3), alpha=0.35, include_top=False, weights=str(offline_weights / V2_224)
    )
    ours = get_backbone(model)
    for name in ("Conv1", "block_8_depthwise", "Conv_1_bn"):
        for a, b in zip(ours.get_layer(name).get_weights(), reference.get_layer(name).get_weights()):
            np.testing.assert_array_equal(a, b)
    assert not np.allclose(ours.get_layer("Conv1").get_weights()[0], 0)


def test_offline_weights_at_224_need_no_fallback(offline_weights, caplog):
    with caplog.at_level(logging.INFO, logger="visiondl_keras.models.backbones"):
        model = build_transfer_model("mobilenet", "frozen", input_size=224)
    assert "224 px file" not in caplog.text
    assert model.weights_source.endswith("mobilenet_2_5_224_tf_no_top.h5")


def test_missing_weights_file_names_the_file_and_the_remedies(no_weights):
    with pytest.raises(ModelError) as err:
        build_transfer_model("mobilenet_v2", "frozen", input_size=96)
    msg = str(err.value)
    assert "mobilenet_v2_weights_tf_dim_ordering_tf_kernels_0.35_96_no_top.h5" in msg and V2_224 in msg
    assert "download failed" in msg
    for remedy in ("KERAS_HOME", "VISIONDL_WEIGHTS", "weights=", "internet", "weights=None"):
        assert remedy in msg
    with pytest.raises(ModelError, match="resnet50_weights_tf_dim_ordering_tf_kernels_notop.h5"):
        build_transfer_model("resnet50", "frozen", input_size=32, download=False)


def test_weights_path_errors(tmp_path):
    with pytest.raises(ModelError, match="weights file not found"):
        tiny(weights=tmp_path / "nope.h5")
    bad = tmp_path / "bad.h5"
    bad.write_bytes(b"not an h5 file")
    with pytest.raises(ModelError, match="could not load"):
        tiny(weights=bad)
    with pytest.raises(ConfigError, match="alpha"):
        build_transfer_model("mobilenet_v2", alpha=0.3, weights="imagenet")


def test_weights_from_the_visiondl_weights_folder(offline_weights, monkeypatch, caplog):
    monkeypatch.undo()  # the real search path, driven by the environment variable
    monkeypatch.setenv("VISIONDL_WEIGHTS", str(offline_weights))
    assert backbones.weight_search_dirs()[0] == offline_weights
    assert backbones.find_weights_file(V2_224) == offline_weights / V2_224


# ---------------------------------------------------------------------------------------------
# Feature cache
# ---------------------------------------------------------------------------------------------


@pytest.fixture
def feature_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("VISIONDL_CACHE", str(tmp_path / "cache"))
    return tmp_path / "cache" / "features"


def test_cached_feature_head_equals_end_to_end_frozen_training(feature_cache):
    from visiondl_keras.models.features import extract_features

    keras.utils.set_random_seed(0)
    end_to_end = tiny("frozen", dropout=0.0)
    cached = tiny("frozen", dropout=0.0)
    cached.set_weights(end_to_end.get_weights())
    x, y = images(96), np.arange(96) % 10
    # plain SGD: its update is linear in the gradient, so float noise in the features stays noise
    # (Adam's m / sqrt(v) turns near-zero gradients into +-lr steps and amplifies it); a fixed batch
    # order, so the comparison is about the features only
    y_onehot = np.eye(10, dtype=np.float32)[y]
    compile_transfer_model(end_to_end, 0.05, optimizer="sgd")
    feats = extract_features(cached, x, progress=False)
    head = compile_transfer_model(head_model(cached), 0.05, optimizer="sgd")
    for _ in range(2):
        fit_epoch(end_to_end, x, y_onehot, 16, progress=False)
        fit_epoch(head, feats, y_onehot, 16, progress=False)
    for a, b in zip(end_to_end.get_layer("logits").get_weights(), cached.get_layer("logits").get_weights()):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5)
    assert not np.allclose(cached.get_layer("logits").get_weights()[1], 0)  # it did train
    np.testing.assert_allclose(
        end_to_end.predict(x.astype(np.float32), verbose=0), cached.predict(x.astype(np.float32), verbose=0), atol=1e-4
    )


def test_feature_cache_hits_and_keys(feature_cache):
    from visiondl_keras.models.features import clear_feature_cache, extract_features

    model = tiny("frozen")
    x = images(20)
    f1, info1 = extract_features(model, x, progress=False, return_info=True)
    f2, info2 = extract_features(model, x, progress=False, return_info=True)
    assert not info1["cache_hit"] and info2["cache_hit"] and info1["key"] == info2["key"]
    np.testing.assert_array_equal(f1, f2)
    assert f1.shape == (20, 256) and f1.dtype == np.float32
    assert Path(info1["path"]).parent == feature_cache and (Path(info1["path"]) / "meta.json").is_file()
    assert info2["seconds"] == pytest.approx(info1["seconds"])  # the original extraction time

    # different data, flipped images, other weights, other input size: other keys
    assert extract_features(model, images(20, seed=1), progress=False, return_info=True)[1]["key"] != info1["key"]
    ff, info_flip = extract_features(model, x, flip=True, progress=False, return_info=True)
    assert info_flip["key"] != info1["key"]
    np.testing.assert_allclose(ff, extract_features(model, x[:, :, ::-1], cache=False, progress=False), atol=1e-5)
    other = tiny("frozen")
    assert extract_features(other, x, progress=False, return_info=True)[1]["key"] != info1["key"]
    bigger = tiny("frozen", input_size=40)
    bigger.set_weights(model.get_weights())
    assert extract_features(bigger, x, progress=False, return_info=True)[1]["key"] != info1["key"]
    assert clear_feature_cache() == 5 and not any(feature_cache.iterdir())
    with pytest.raises(ConfigError, match="shape"):
        extract_features(model, x[:, :16], progress=False)


# ---------------------------------------------------------------------------------------------
# Training helpers
# ---------------------------------------------------------------------------------------------


def test_discriminative_learning_rate_scales_backbone_updates(tmp_path):
    keras.utils.set_random_seed(1)
    a = tiny("full", dropout=0.0)
    b = tiny("full", dropout=0.0)
    b.set_weights(a.get_weights())
    x, y = images(16).astype(np.float32), np.eye(10, dtype=np.float32)[np.arange(16) % 10]

    def kernels(model):
        return get_backbone(model).get_layer("conv_pw_13").get_weights()[0], model.get_layer("logits").get_weights()[0]

    deltas = {}
    for model, mult in ((a, 1.0), (b, 0.1)):
        before = kernels(model)
        compile_transfer_model(model, 0.1, backbone_lr_multiplier=mult, optimizer="sgd")
        model.train_on_batch(x, y)
        deltas[mult] = [after - old for after, old in zip(kernels(model), before)]
    assert np.abs(deltas[1.0][0]).max() > 0 and np.abs(deltas[1.0][1]).max() > 0
    expected = 0.1 * deltas[1.0][0]  # backbone: lr x 0.1 (tolerance: float32 rounding of w + delta)
    np.testing.assert_allclose(deltas[0.1][0], expected, rtol=1e-3, atol=1e-3 * np.abs(expected).max())
    np.testing.assert_allclose(deltas[0.1][1], deltas[1.0][1], rtol=1e-4, atol=1e-6 * np.abs(deltas[1.0][1]).max())
    # the multiplier is part of the checkpoint: a resumed run keeps it
    b.save(tmp_path / "b.keras")
    loaded = keras.saving.load_model(tmp_path / "b.keras", compile=True)
    assert type(loaded.optimizer).__name__ == "DiscriminativeSGD" and loaded.optimizer.backbone_lr_multiplier == 0.1
    with pytest.raises(ConfigError, match="optimizer"):
        discriminative_optimizer("adagrad")
    with pytest.raises(ConfigError, match="backbone_lr_multiplier"):
        discriminative_optimizer("adam", 1e-3, backbone_lr_multiplier=0.0)


def tiny_recipe(**kw):
    recipe = dict(strategy="partial", head_epochs=1, finetune_epochs=1, head_batch_size=32, batch_size=32, lr=1e-3,
                  backbone_lr_multiplier=0.1, unfreeze=4, flip=True, crop_pad=2, head_cosine=False,
                  finetune_cosine=True, budget_s=None, seed=0)
    return {**recipe, **kw}


def test_two_stages_warm_up_the_head_then_unfreeze_in_sub_run_directories(feature_cache, tmp_path):
    keras.utils.set_random_seed(0)
    model = tiny("frozen")
    splits = make_splits(64, 20, 10)
    result = fit_two_stages(model, splits, RunDir(tmp_path / "run"), tiny_recipe(), progress=False, log=lambda *a: None)
    rows = result["history"]
    assert [(r["epoch"], r["stage"]) for r in rows] == [(1, "head"), (2, "partial")]
    assert rows[0]["time_s"] <= rows[1]["time_s"] and 0 <= rows[1]["val_accuracy"] <= 1 and rows[1]["cpu_s"] > 0
    assert sum(layer.trainable for layer in get_backbone(model).layers) == 4
    for stage in ("stage1_head", "stage2_finetune"):
        run = RunDir(tmp_path / "run" / stage)
        assert run.state()["status"] == "completed" and run.last.is_file() and run.best.is_file()
    # a second call finds both stages completed and trains nothing
    again = fit_two_stages(tiny("frozen"), splits, RunDir(tmp_path / "run"), tiny_recipe(), progress=False,
                           log=lambda *a: None)
    assert [r["val_accuracy"] for r in again["history"]] == [r["val_accuracy"] for r in rows]
    with pytest.raises(ConfigError, match="different configuration"):
        fit_two_stages(tiny("frozen"), splits, RunDir(tmp_path / "run"), tiny_recipe(lr=0.5), progress=False,
                       log=lambda *a: None)


def test_image_epochs_are_a_pure_function_of_seed_and_epoch():
    n = 12
    x = images(n)
    data = image_epochs(x, np.eye(n, dtype=np.float32), seed=3, flip=True, crop_pad=4)
    xa, ya = data(2)
    xb, yb = data(2)
    np.testing.assert_array_equal(xa, xb)
    np.testing.assert_array_equal(ya, yb)
    assert not np.array_equal(data(3)[1], ya)  # another epoch, another order
    padded = np.pad(x, ((0, 0), (4, 4), (4, 4), (0, 0)), mode="reflect")
    offsets, flips = set(), []
    for img, label in zip(xa, ya.argmax(1)):  # each image is a flipped or plain crop of its own original
        found = [(r, c, f) for f in (False, True) for r in range(9) for c in range(9)
                 if np.array_equal((padded[label, :, ::-1] if f else padded[label])[r : r + 32, c : c + 32], img)]
        assert found
        offsets.add(found[0][:2])
        flips.append(found[0][2])
    assert len(offsets) > 1 and any(flips) and not all(flips)


def test_epoch_cosine_plans_with_the_budget_and_keeps_the_plan(tmp_path):
    model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(2)])
    compile_transfer_model(model, 0.1)
    state = tmp_path / "schedule.json"
    cb = EpochCosine(0.1, max_epochs=10, budget_s=35.0, state_file=state)
    cb.set_model(model)
    cb.on_epoch_begin(0)
    assert float(keras.ops.convert_to_numpy(model.optimizer.learning_rate)) == pytest.approx(0.1)
    cb.on_epoch_end(0, {"epoch_time_s": 10.0})
    assert cb.total == 3 and json.loads(state.read_text())["total_epochs"] == 3 and not model.stop_training
    resumed = EpochCosine(0.1, max_epochs=10, budget_s=35.0, state_file=state)
    assert resumed.total == 3 and resumed.rate(2) == pytest.approx(cb.rate(2)) == pytest.approx(0.1 * 0.25)
    resumed.set_model(model)
    resumed.on_epoch_end(2, {"epoch_time_s": 99.0})
    assert model.stop_training and resumed.total == 3


def test_copy_weights_and_recipe_errors():
    a, b = tiny("frozen"), tiny("frozen")
    copy_weights(a, b)
    for wa, wb in zip(a.weights, b.weights):
        np.testing.assert_array_equal(keras.ops.convert_to_numpy(wa), keras.ops.convert_to_numpy(wb))
    with pytest.raises(ConfigError, match="different weights"):
        copy_weights(a, tiny("frozen", hidden_units=8))
    with pytest.raises(ConfigError, match="strategy"):
        reference_recipe("half")
    with pytest.raises(ConfigError, match="warmup_epochs"):
        reference_recipe("frozen", warmup_epochs=0)
    assert reference_recipe("frozen")["finetune_epochs"] == 0
    assert reference_recipe("partial", budget_minutes=2)["budget_s"] == 120
    with pytest.raises(ConfigError, match="label_smoothing"):
        reference_recipe("full", label_smoothing=1.0)
    with pytest.raises(ConfigError, match="tta_level"):
        reference_recipe("full", tta_level=3)


def test_transfer_loss_uses_the_label_smoothing_it_is_given():
    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(3, use_bias=False, kernel_initializer="zeros")])
    y = np.eye(3, dtype=np.float32)[[0, 2]]
    logits = np.array([[2.0, 0.0, -1.0], [0.5, 0.5, 3.0]], np.float32)
    logp = logits - np.log(np.exp(logits).sum(1, keepdims=True))
    for eps in (0.0, 0.2):
        compile_transfer_model(model, 1e-3, label_smoothing=eps)
        target = y * (1 - eps) + eps / 3
        expected = float(np.mean(-(target * logp).sum(1)))
        assert float(keras.ops.convert_to_numpy(model.loss(y, logits))) == pytest.approx(expected, rel=1e-5)


KILL_SCRIPT = """
import sys
sys.path.insert(0, {tests!r})
from conftest import make_splits
from visiondl_keras.training.transfer import train_reference
m = train_reference(make_splits(240, 40, 60), sys.argv[1], backbone="mobilenet", alpha=0.25, input_size=32,
                    strategy="full", warmup_epochs=2, max_epochs=3, batch_size=32, weights={weights!r},
                    progress=False, seed=0, log=lambda *a: None)
print("done", m["test_accuracy"])
"""


@pytest.mark.slow
def test_transfer_run_killed_mid_stage_two_resumes_to_identical_results(tmp_path):
    """kill -9 after the first fine-tuning checkpoint, start again: same weights and metrics as uninterrupted."""
    weights = SHARED_WEIGHTS / "mobilenet_2_5_224_tf_no_top.h5"
    script = tmp_path / "train.py"
    script.write_text(KILL_SCRIPT.format(tests=str(Path(__file__).parent),
                                         weights=str(weights) if weights.is_file() else None))
    env = {**os.environ, "VISIONDL_CACHE": str(tmp_path / "cache"), "TF_CPP_MIN_LOG_LEVEL": "2"}

    def run(folder):
        return subprocess.run([sys.executable, str(script), str(folder)], env=env, capture_output=True, text=True,
                              timeout=300)

    assert run(tmp_path / "whole").returncode == 0
    killed = tmp_path / "killed"
    proc = subprocess.Popen([sys.executable, str(script), str(killed)], env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    # state.json is written after last.keras at an epoch end: its presence marks the first complete checkpoint
    first = killed / "stage2_finetune" / "state.json"
    deadline = time.monotonic() + 300
    while not first.is_file() and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.02)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    state = RunDir(killed / "stage2_finetune").state()
    assert state["status"] == "running" and state["epochs_done"] < 3  # killed mid stage 2
    assert not (killed / "metrics.json").exists()
    done = run(killed)
    assert done.returncode == 0, done.stderr[-2000:]

    whole, resumed = RunDir(tmp_path / "whole"), RunDir(killed)
    a, b = whole.read("metrics.json"), resumed.read("metrics.json")
    for key in ("test_accuracy", "test_loss", "per_class_accuracy", "best_epoch", "best_val_accuracy", "epochs_run"):
        assert a[key] == b[key], key
    for name in ("best.keras", "stage2_finetune/last.keras"):
        wa = keras.saving.load_model(whole.path / name, compile=False).get_weights()
        wb = keras.saving.load_model(resumed.path / name, compile=False).get_weights()
        for x, y in zip(wa, wb):
            np.testing.assert_array_equal(x, y)
    cols = ("epoch", "stage", "loss", "val_loss", "val_accuracy", "lr")
    assert [{k: r[k] for k in cols} for r in whole.read_history()] == [{k: r[k] for k in cols}
                                                                      for r in resumed.read_history()]


# ---------------------------------------------------------------------------------------------
# transfer-compare
# ---------------------------------------------------------------------------------------------


def write_tiny_tree(root: Path, per_class_train=12, per_class_test=3):
    from PIL import Image

    from visiondl_keras.data.cifar10 import CLASS_NAMES

    rng = np.random.default_rng(0)
    for split, per in (("train", per_class_train), ("test", per_class_test)):
        for label, name in enumerate(CLASS_NAMES):
            folder = root / split / name
            folder.mkdir(parents=True)
            for i in range(per):
                img = rng.integers(0, 60, size=(32, 32, 3)).astype(np.uint8)
                img[4:28, 4:28, label % 3] = 100 + 15 * label
                Image.fromarray(img).save(folder / f"{i:04d}.png")
    return root


def test_transfer_compare_quick_writes_table_and_figures(tmp_path, monkeypatch):
    from visiondl_keras.cli.main import main
    from visiondl_keras.io import read_json, write_csv

    monkeypatch.setenv("VISIONDL_CACHE", str(tmp_path / "cache"))
    tree = write_tiny_tree(tmp_path / "tree")
    out = tmp_path / "out"
    ref = tmp_path / "scratch" / "history.csv"
    write_csv(ref, [{"epoch": e, "val_accuracy": 0.3 + 0.1 * e, "time_s": 60.0 * e} for e in (1, 2)])
    code = main([
        "transfer-compare", "--quick", "--quiet", "--data", str(tree), "--backbones", "mobilenet:0.25",
        "--weights", "none", "--input-size", "32", "--strategies", "frozen,partial,two_stage", "--val-size", "20",
        "--limit", "100", "--targets", "0,0.99", "--artifacts", str(out), "--run-dir", str(tmp_path / "runs"),
        "--scratch-history", str(ref),
    ])
    assert code == 0
    result = read_json(out / "metrics" / "transfer_quick.json")
    runs = {r["strategy"]: r for r in result["runs"]}
    assert list(runs) == ["frozen", "partial", "two_stage"]
    assert runs["frozen"]["trainable_params"] < runs["partial"]["trainable_params"]
    for r in runs.values():
        assert [h["epoch"] for h in r["history"]] == [1, 2]
        assert all(h["time_s"] > 0 and 0 <= h["val_accuracy"] <= 1 for h in r["history"])
        assert r["time_to"]["0"] == {"epoch": 1, "time_s": round(r["history"][0]["time_s"], 2)}
        assert r["time_to"]["0.99"] is None or r["time_to"]["0.99"]["time_s"] <= r["total_seconds"]
    assert [h["stage"] for h in runs["two_stage"]["history"]] == ["head", "partial"]
    assert runs["frozen"]["feature_seconds"] > 0 and result["budget"]["epochs"] == 2
    assert result["data"]["n_train"] == 100 and "is_jpeg_mirror" in result["data"]
    assert "jpeg_mirror" not in result["data"] and result["scratch_reference"]["path"].endswith("history.csv")
    assert (tmp_path / "runs" / "mobilenet_0.25_partial" / "stage2_finetune" / "last.keras").is_file()
    table = (out / "metrics" / "transfer_quick.md").read_text()
    assert "| mobilenet_a0.25_32px | partial |" in table and "time to 0.99" in table
    for suffix in ("epoch", "time"):
        assert (out / "figures" / f"transfer_quick_accuracy_vs_{suffix}.png").stat().st_size > 10_000


def test_transfer_commands_default_to_runs_and_document_every_flag():
    from visiondl_keras.cli.main import build_parser

    parser = build_parser()
    sub = next(a for a in parser._actions if a.dest == "command")
    for command in ("transfer-compare", "transfer-train"):
        for action in sub.choices[command]._actions:
            assert action.help, f"{command} {action.option_strings} has no help text"
    args = parser.parse_args(["transfer-compare", "--quick"])
    assert args.artifacts is None and args.run_dir is None  # resolved to runs/transfer-quick by the command
    assert "runs/transfer-NAME" in sub.choices["transfer-compare"].format_help()


def test_transfer_train_two_stages_then_publish(tmp_path, monkeypatch):
    """transfer-train: cached-feature head, then partial fine-tuning; --publish ships checkpoint, run files and JSON."""
    from visiondl_keras.cli.main import main
    from visiondl_keras.io import read_csv, read_json

    monkeypatch.setenv("VISIONDL_CACHE", str(tmp_path / "cache"))
    tree = write_tiny_tree(tmp_path / "tree")
    run, artifacts = tmp_path / "run", tmp_path / "artifacts"
    argv = [
        "transfer-train", "--quiet", "--data", str(tree), "--run-dir", str(run), "--backbone", "mobilenet",
        "--alpha", "0.25", "--weights", "none", "--input-size", "32", "--strategy", "partial", "--warmup-epochs", "2",
        "--epochs", "2", "--val-size", "20", "--limit", "100", "--label-smoothing", "0.1", "--tta-level", "1",
        "--publish", "transfer_tiny", "--artifacts", str(artifacts),
    ]
    assert main(argv) == 0
    history = read_csv(run / "history.csv")
    assert [r["stage"] for r in history] == ["head", "head", "partial", "partial"]
    assert [int(r["epoch"]) for r in history] == [1, 2, 3, 4]
    metrics = read_json(artifacts / "metrics" / "transfer_reference.json")
    assert metrics["data"]["n_train"] == 100 and metrics["data"]["n_test"] == 30
    assert 1 <= metrics["best_epoch"] <= 4 and metrics["epochs_run"] == 4
    assert metrics["target_reached"] is (metrics["test_accuracy"] >= 0.91)
    assert metrics["floor_reached"] is (metrics["test_accuracy"] >= 0.90)
    # test-time augmentation is reported beside the checkpoint's own accuracy, never instead of it
    assert metrics["tta_level"] == 1 and sorted(metrics["tta"]) == ["0", "1"]
    assert metrics["tta"]["0"]["test_accuracy"] == pytest.approx(metrics["test_accuracy"])
    assert metrics["tta"]["1"]["forward_passes_per_image"] == 2
    assert metrics["test_accuracy_tta"] == metrics["tta"]["1"]["test_accuracy"]
    assert metrics["target_reached_tta"] is (metrics["test_accuracy_tta"] >= 0.91)
    assert "Both stages use label smoothing 0.1." in metrics["recipe"]
    for stage in ("stage1_head", "stage2_finetune"):
        assert read_json(run / stage / "config.json")["label_smoothing"] == 0.1
    assert "Stage 1: 2 epochs" in metrics["recipe"] and "partial fine-tuning" in metrics["recipe"]
    assert "random initial weights" in metrics["recipe"] and "for 2 epochs with random flips" in metrics["recipe"]
    assert metrics["command"].startswith("python -m visiondl_keras transfer-train") and "--publish transfer_tiny" in metrics["command"]
    # the temporary folders it ran in are machine-local: the shipped files name them portably
    assert "--run-dir runs/run" in metrics["command"] and "--data tree" in metrics["command"]
    for f in ("config.json", "metrics.json"):
        assert str(tmp_path) not in (artifacts / "runs" / "transfer_reference" / f).read_text()
    assert str(tmp_path) not in (artifacts / "metrics" / "transfer_reference.json").read_text()
    ckpt = artifacts / "checkpoints" / "transfer_tiny.keras"
    assert metrics["checkpoint_bytes"] == ckpt.stat().st_size
    model = keras.saving.load_model(ckpt, compile=False)
    x = np.zeros((2, 32, 32, 3), np.float32)
    assert model.predict(x, verbose=0).shape == (2, 10)
    assert sorted(p.name for p in (artifacts / "runs" / "transfer_reference").iterdir()) == [
        "config.json", "environment.json", "history.csv", "metrics.json", "published.json", "state.json"]
    # the published test accuracy is the checkpoint's own
    from visiondl_keras.data.cifar10 import load_cifar10

    ds = load_cifar10(str(tree), progress=False)
    acc = float(np.mean(model.predict(ds.x_test.astype(np.float32), verbose=0).argmax(1) == ds.y_test))
    assert acc == pytest.approx(metrics["test_accuracy"])
    from visiondl_keras.evaluation.tta import tta_logits

    acc_tta = float(np.mean(tta_logits(model, ds.x_test, 1).argmax(1) == ds.y_test))
    assert acc_tta == pytest.approx(metrics["test_accuracy_tta"])
    # started again: the completed run is not retrained; another configuration in the same folder is refused
    assert main(argv) == 0 and read_csv(run / "history.csv") == history
    assert main([*argv[:-4], "--lr", "0.5"]) == 1
    # a run written before label smoothing and TTA were settings used their defaults: still the same run
    config = read_json(run / "config.json")
    assert config["label_smoothing"] == 0.1 and config["tta_level"] == 1
    old = {k: v for k, v in config.items() if k not in ("label_smoothing", "tta_level")}
    (run / "config.json").write_text(json.dumps(old))
    plain = [a for a in argv[:-4] if a not in ("--label-smoothing", "0.1", "--tta-level", "1")]
    assert main(plain) == 0 and read_csv(run / "history.csv") == history
    (run / "config.json").write_text(json.dumps({**old, "label_smoothing": 0.1}))
    assert main(plain) == 1


def test_transfer_compare_user_errors_are_one_line(capsys, tmp_path):
    from visiondl_keras.cli.main import main

    assert main(["transfer-compare", "--backbones", "vgg99", "--data", str(tmp_path)]) == 1
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: unknown backbone 'vgg99'") and "\n" not in err
    assert main(["transfer-compare", "--unfreeze", "some", "--data", str(tmp_path)]) == 1
    assert "--unfreeze" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exit_info:
        main(["transfer-compare", "--strategies", "frozen,half"])
    assert exit_info.value.code == 2 and "unknown strategies" in capsys.readouterr().err


def test_reference_summary_and_run_strategy_errors(tmp_path):
    from visiondl_keras.training.transfer_compare import DEFAULT_BUDGET, reference_summary, run_strategy

    with pytest.raises(ConfigError, match="not a finished transfer-train run"):
        reference_summary(tmp_path, {"checkpoint": "x", "bytes": 0, "run_dir": "y"})
    with pytest.raises(ConfigError, match="unknown strategy"):
        run_strategy(make_splits(20, 10, 10), "mobilenet", 0.25, "half", DEFAULT_BUDGET)


def test_time_to_targets():
    from visiondl_keras.training.transfer_compare import time_to_targets

    rows = [{"epoch": 1, "time_s": 10.0, "val_accuracy": 0.5}, {"epoch": 2, "time_s": 20.0, "val_accuracy": 0.72}]
    assert time_to_targets(rows, (0.5, 0.7, 0.8)) == {
        "0.5": {"epoch": 1, "time_s": 10.0}, "0.7": {"epoch": 2, "time_s": 20.0}, "0.8": None,
    }


def test_epoch_cosine_shortens_its_plan_when_epochs_slow_down(tmp_path):
    model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(2)])
    compile_transfer_model(model, 0.1)
    state = tmp_path / "schedule.json"
    cb = EpochCosine(0.1, max_epochs=10, budget_s=100.0, state_file=state)
    cb.set_model(model)
    cb.on_epoch_end(0, {"epoch_time_s": 10.0, "time_s": 10.0})
    assert cb.total == 10
    cb.on_epoch_end(1, {"epoch_time_s": 10.0, "time_s": 20.0})
    assert cb.total == 10  # on plan: unchanged
    cb.on_epoch_end(2, {"epoch_time_s": 40.0, "time_s": 60.0})  # mean 20 s: 2 more epochs fit in the 40 s left
    assert cb.total == 5 and json.loads(state.read_text())["total_epochs"] == 5 and not model.stop_training
    assert json.loads(state.read_text())["first_epoch_s"] == 10.0  # the first plan is kept beside the new one
    assert cb.rate(4) < cb.rate(3) < 0.1 * 0.5  # the decay now ends within the budget
    cb.on_epoch_end(3, {"epoch_time_s": 5.0, "time_s": 65.0})  # faster again: the plan is never lengthened
    assert cb.total == 5
    cb.on_epoch_end(4, {"epoch_time_s": 5.0, "time_s": 70.0})
    assert model.stop_training
    assert EpochCosine(0.1, max_epochs=10, budget_s=100.0, state_file=state).total == 5  # resumed: same plan


def test_recipe_text_says_when_the_budget_set_the_number_of_fine_tuning_epochs():
    from visiondl_keras.training.transfer_compare import describe_recipe

    config = {"backbone": "mobilenet_v2", "alpha": 0.35, "weights": "imagenet", "input_size": 128, "train_size": 45000,
              "val_size": 5000, "lr": 1e-3, "head_batch_size": 256, "strategy": "full", "finetune_epochs": 30,
              "budget_s": 4200.0, "flip": True, "crop_pad": 4, "backbone_lr_multiplier": 0.3, "batch_size": 64}
    history = [{"stage": "head"}] * 3 + [{"stage": "full"}] * 14
    text = describe_recipe(config, history)
    assert "Stage 1: 3 epochs" in text and "for 14 epochs (at most 30" in text and "70-minute budget" in text
    assert "0.0003 backbone" in text and "reflect-pad-4 crops" in text
    assert "at most" not in describe_recipe({**config, "budget_s": None}, history)  # no budget: no clause
    assert "at most" not in describe_recipe(config, [{"stage": "head"}] * 3 + [{"stage": "full"}] * 30)
    assert "whole backbone trainable" in text and "bottom" not in text
    frozen_bottom = describe_recipe({**config, "freeze_bottom": 9}, history)
    assert "except its bottom 9 weighted layers, which stay frozen" in frozen_bottom
