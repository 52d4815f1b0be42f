"""Storage precision: a bfloat16 copy of a network keeps its predictions, halves the file, loads safely
and exports (the exporter widens it back to float32)."""

from __future__ import annotations

import keras
import numpy as np
import pytest

from visiondl_keras.errors import ConfigError
from visiondl_keras.models.airbench import build_airbench
from visiondl_keras.models.storage import cast_model, model_storage_dtype


@pytest.fixture(scope="module")
def net():
    keras.utils.set_random_seed(0)
    model = build_airbench((16, 64, 64))
    images = np.random.default_rng(0).integers(0, 256, size=(64, 32, 32, 3)).astype(np.float32)
    return model, images


def test_bfloat16_copy_is_smaller_close_and_loads_in_safe_mode(net, tmp_path):
    model, images = net
    small = cast_model(model, "bfloat16")
    assert model_storage_dtype(small) == "bfloat16" and model_storage_dtype(model) == "float32"
    assert small.get_layer("logits").dtype_policy.name == "float32"
    model.save(tmp_path / "f32.keras")
    small.save(tmp_path / "bf16.keras")
    assert (tmp_path / "bf16.keras").stat().st_size < 0.75 * (tmp_path / "f32.keras").stat().st_size
    loaded = keras.saving.load_model(tmp_path / "bf16.keras", safe_mode=True)
    ref = np.asarray(model.predict(images, verbose=0))
    out = loaded.predict(images, verbose=0)
    assert out.dtype == np.float32
    assert np.abs(out - ref).max() < 0.05 * np.abs(ref).max() + 1e-3
    assert np.mean(out.argmax(1) == ref.argmax(1)) >= 0.9
    # the original is untouched and a float32 round trip is exact for bfloat16 values
    widened = cast_model(loaded, "float32")
    assert model_storage_dtype(widened) == "float32"
    for a, b in zip(widened.weights, loaded.weights):
        np.testing.assert_array_equal(keras.ops.convert_to_numpy(a),
                                      keras.ops.convert_to_numpy(keras.ops.cast(b, "float32")))


def test_unknown_dtype_is_a_config_error(net):
    with pytest.raises(ConfigError, match="dtype must be one of"):
        cast_model(net[0], "int8")


def test_export_of_a_bfloat16_checkpoint_matches_its_keras_outputs(net, tmp_path):
    from visiondl_keras.deploy.export import export_checkpoint
    from visiondl_keras.deploy.predictor import load_predictor

    model, images = net
    ckpt = tmp_path / "small.keras"
    cast_model(model, "bfloat16").save(ckpt)
    paths = export_checkpoint(ckpt, tmp_path / "small.tflite", calibrated=False, progress=False, log=lambda *a: None)
    keras_probs = load_predictor(ckpt, calibrated=False).predict(images[:16].astype(np.uint8))
    tfl_probs = load_predictor(paths["tflite"]).predict(images[:16].astype(np.uint8))
    assert np.abs(tfl_probs - keras_probs).max() < 0.02


def test_a_mixed_bfloat16_model_exports_as_float32(tmp_path):
    """A network trained under mixed_bfloat16 stores float32 weights but computes in bfloat16; the
    TFLite converter cannot translate bfloat16 ops, so export works on a float32 copy."""
    from visiondl_keras.deploy.export import export_tflite
    from visiondl_keras.deploy.predictor import load_predictor
    from visiondl_keras.models.storage import is_float32

    keras.mixed_precision.set_global_policy("mixed_bfloat16")
    try:
        mixed = build_airbench((8, 16, 16))
    finally:
        keras.mixed_precision.set_global_policy("float32")
    assert model_storage_dtype(mixed) == "float32" and not is_float32(mixed)
    images = np.random.default_rng(1).integers(0, 256, size=(8, 32, 32, 3)).astype(np.uint8)
    out = export_tflite(mixed, tmp_path / "mixed.tflite")
    ref = np.asarray(cast_model(mixed, "float32").predict(images.astype(np.float32), verbose=0))
    probs = load_predictor(out).predict(images)
    e = np.exp(ref - ref.max(axis=1, keepdims=True))
    np.testing.assert_allclose(probs, e / e.sum(axis=1, keepdims=True), atol=1e-5)
