"""Backend smoke subset: the backend-agnostic core runs on whichever Keras backend is active.

CI runs the whole suite on TensorFlow and this file (with the schedule and augmentation tests) on
JAX: ``KERAS_BACKEND=jax pytest tests/test_backend_smoke.py``.
"""

from __future__ import annotations

import keras
import numpy as np
from conftest import make_splits

from visiondl_keras.data import augment
from visiondl_keras.evaluation.gradients import predict_logits
from visiondl_keras.models.scratch import build_scratch_model
from visiondl_keras.training.callbacks import global_grad_norm
from visiondl_keras.training.config import TrainConfig
from visiondl_keras.training.scratch import train


def test_build_train_predict_and_gradient_norm_on_the_active_backend(tmp_path):
    splits = make_splits(n_train=120, n_val=40, n_test=40)
    cfg = TrainConfig(arch="simple", width=4, epochs=2, batch_size=40, lr=0.05, val_size=40, warmup_epochs=0.5)
    metrics = train(cfg, tmp_path / "run", splits=splits, progress=False)
    assert 0 <= metrics["test_accuracy"] <= 1
    model = keras.saving.load_model(tmp_path / "run" / "best.keras", compile=False)
    logits = predict_logits(model, splits.x_test)
    assert logits.shape == (40, 10) and logits.dtype == np.float32
    y = augment.one_hot(splits.y_test[:8], 10)
    loss_fn = keras.losses.CategoricalCrossentropy(from_logits=True)
    norm = global_grad_norm(model, splits.x_test[:8].astype("float32"), y, loss_fn)
    assert np.isfinite(norm) and norm > 0


def test_gradient_norm_agrees_with_finite_differences():
    """The per-backend gradient dispatch returns the true gradient (checked along one direction)."""
    model = build_scratch_model("simple", 4)
    rng = np.random.default_rng(0)
    x = rng.integers(0, 255, (4, 32, 32, 3)).astype("float32")
    y = augment.one_hot(np.arange(4), 10)
    loss_fn = keras.losses.CategoricalCrossentropy(from_logits=True)
    dense = model.get_layer("logits")
    kernel = dense.kernel
    base = keras.ops.convert_to_numpy(kernel).copy()

    def loss_at(k):
        kernel.assign(k)
        return float(keras.ops.convert_to_numpy(loss_fn(y, model(x, training=False))))

    # perturb only the last layer: gradient norm must be >= |directional derivative| along a unit direction
    d = rng.normal(size=base.shape).astype("float32")
    d /= np.linalg.norm(d)
    eps = 1e-2
    deriv = (loss_at(base + eps * d) - loss_at(base - eps * d)) / (2 * eps)
    kernel.assign(base)
    norm = global_grad_norm(model, x, y, loss_fn)
    assert norm >= abs(deriv) * 0.99


def test_fast_recipe_learns_on_the_active_backend(tmp_path):
    """The fast recipe (whitening, ScaledSGD rules, lookahead, TTA) trains on every backend to the accuracy the
    TensorFlow suite asks for on the same synthetic task (tests/test_fast_recipe.py)."""
    from visiondl_keras.training.config import preset_config

    splits = make_splits(n_train=600, n_val=60, n_test=100)
    cfg = preset_config("fast", widths=[8, 16, 16], epochs=6, batch_size=64, precision="float32")
    metrics = train(cfg, tmp_path / "run", splits=splits, progress=False, log=lambda *a: None)
    assert metrics["test_accuracy"] > 0.6  # chance is 0.1
    from visiondl_keras.models.airbench import whitening_kernel

    kernel = keras.saving.load_model(tmp_path / "run" / "last.keras", compile=False).get_layer("whiten").kernel
    initial = whitening_kernel(splits.x_train[:5000], splits.mean, splits.std)
    # frozen: still the patch-whitening kernel it started as (the lookahead's averaging may move the last bit)
    np.testing.assert_allclose(keras.ops.convert_to_numpy(kernel), initial, rtol=1e-5, atol=1e-6)


def test_fast_recipe_in_bfloat16_is_finite_and_learns(tmp_path):
    """The mixed-bfloat16 configuration (the accelerator setting) trains correctly on a CPU too."""
    from visiondl_keras.training.config import preset_config

    splits = make_splits(n_train=600, n_val=60, n_test=100)
    cfg = preset_config("fast", widths=[8, 16, 16], epochs=6, batch_size=64, precision="mixed_bfloat16")
    metrics = train(cfg, tmp_path / "run", splits=splits, progress=False, log=lambda *a: None)
    assert metrics["precision"] == "mixed_bfloat16"
    assert np.isfinite(metrics["test_loss"]) and metrics["test_accuracy"] > 0.5
    model = keras.saving.load_model(tmp_path / "run" / "best.keras", compile=False)
    assert predict_logits(model, splits.x_test[:4]).dtype == np.float32
