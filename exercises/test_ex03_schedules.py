"""Graded tests of exercise 03 (lesson 03): warmup_cosine, global_norm and clip_by_global_norm.

Run: ``pytest exercises/test_ex03_schedules.py``.
"""

import math

import numpy as np
import pytest


@pytest.mark.points(2)
def test_warmup_cosine_known_values(ex):
    """Warm-up 10 steps to 0.1, then a half cosine to 0 at step 110."""
    f = ex.warmup_cosine
    cases = {0: 0.01, 4: 0.05, 9: 0.1, 10: 0.1, 60: 0.05, 110: 0.0, 500: 0.0}
    for step, expected in cases.items():
        got = f(step, 110, 0.1, 10)
        assert math.isclose(got, expected, abs_tol=1e-9), f"step {step}: got {got!r}, expected {expected}"
    quarter = 0.05 * (1 + math.cos(math.pi * 0.25))
    assert math.isclose(f(35, 110, 0.1, 10), quarter, abs_tol=1e-9), "step 35 is a quarter into the decay"


@pytest.mark.points(1)
def test_warmup_cosine_rises_then_falls(ex):
    """Strictly increasing during the warm-up, non-increasing afterwards, a Python float."""
    lrs = [ex.warmup_cosine(s, 200, 0.4, 20) for s in range(201)]
    assert all(isinstance(v, float) for v in lrs), "return a Python float"
    assert all(a < b for a, b in zip(lrs[:20], lrs[1:20])), "the warm-up must increase linearly"
    assert all(a >= b - 1e-12 for a, b in zip(lrs[19:], lrs[20:])), "the rate must not increase after the warm-up"
    assert math.isclose(max(lrs), 0.4), "the peak must be base_lr"


@pytest.mark.points(2)
def test_warmup_cosine_ends_at_min_lr(ex):
    """With min_lr the decay ends exactly at min_lr, never goes below it, and stays there."""
    lrs = [ex.warmup_cosine(s, 100, 0.1, 5, min_lr=0.001) for s in range(150)]
    assert math.isclose(lrs[100], 0.001, abs_tol=1e-12), f"step 100: {lrs[100]}, expected min_lr 0.001"
    assert min(lrs[5:]) >= 0.001 - 1e-12
    assert math.isclose(lrs[5], 0.1, abs_tol=1e-12), f"first step after the warm-up: {lrs[5]}, expected base_lr"
    assert math.isclose(lrs[52], 0.001 + 0.5 * 0.099 * (1 + math.cos(math.pi * 47 / 95)), abs_tol=1e-12)


@pytest.mark.points(1)
def test_warmup_cosine_without_warmup(ex):
    """warmup_steps=0: step 0 is already base_lr (no division by zero)."""
    assert math.isclose(ex.warmup_cosine(0, 50, 0.2, 0), 0.2)
    assert math.isclose(ex.warmup_cosine(25, 50, 0.2, 0), 0.1)


@pytest.mark.points(2)
def test_warmup_cosine_matches_the_package(ex, package_function):
    """Same values as visiondl_keras.training.schedules.warmup_cosine over whole runs."""
    pkg = package_function("visiondl_keras.training.schedules", "warmup_cosine")
    for total, base, warm, low in [(100, 0.1, 10, 0.0), (37, 0.05, 3, 1e-4), (500, 1.0, 0, 0.01), (20, 0.3, 19, 0.0)]:
        for step in range(total + 5):
            got, expected = ex.warmup_cosine(step, total, base, warm, low), pkg(step, total, base, warm, low)
            assert math.isclose(got, expected, rel_tol=1e-9, abs_tol=1e-12), f"{(step, total, base, warm, low)}: {got} != {expected}"


@pytest.mark.points(1)
def test_global_norm_known_values(ex):
    """[3] and [4] have global norm 5; None entries are skipped; an empty list gives 0."""
    assert math.isclose(ex.global_norm([np.array([3.0]), np.array([[4.0]])]), 5.0)
    assert math.isclose(ex.global_norm([np.array([3.0]), None, np.array([4.0])]), 5.0)
    assert ex.global_norm([]) == 0.0


@pytest.mark.points(2)
def test_global_norm_is_the_norm_of_all_gradients_together(ex):
    """Equals the L2 norm of all arrays flattened into one vector (not the sum of their norms)."""
    rng = np.random.default_rng(0)
    grads = [rng.normal(size=s).astype(np.float32) for s in [(3, 3, 8, 16), (16,), (64, 10), (10,)]]
    expected = float(np.linalg.norm(np.concatenate([g.ravel().astype(np.float64) for g in grads])))
    got = ex.global_norm(grads)
    assert isinstance(got, float), "return a Python float"
    assert math.isclose(got, expected, rel_tol=1e-6), f"got {got}, expected {expected}"


@pytest.mark.points(1)
def test_clip_by_global_norm_leaves_small_gradients_alone(ex):
    """Below the cap nothing changes."""
    grads = [np.array([0.3, -0.4], np.float32), np.array([[0.0, 0.1]], np.float32)]
    out = ex.clip_by_global_norm(grads, 1.0)
    assert len(out) == 2
    for a, b in zip(out, grads):
        assert np.allclose(a, b), "gradients under the cap must come back unchanged"


@pytest.mark.points(2)
def test_clip_by_global_norm_scales_everything_by_one_factor(ex):
    """Above the cap every array is multiplied by the same factor, and the new global norm is the cap."""
    grads = [np.array([30.0, 0.0], np.float32), np.array([[0.0, 40.0]], np.float32), np.array([1e-3], np.float32)]
    norm = float(np.sqrt(30.0**2 + 40.0**2 + 1e-6))
    out = ex.clip_by_global_norm(grads, 5.0)
    for a, b in zip(out, grads):
        assert a.shape == b.shape
        assert np.allclose(a, b * (5.0 / norm), rtol=1e-5), "each array must be scaled by max_norm / global_norm"
    total = np.sqrt(sum(float(np.sum(np.square(a, dtype=np.float64))) for a in out))
    assert math.isclose(total, 5.0, rel_tol=1e-5), f"global norm after clipping {total}, expected 5"


@pytest.mark.points(1)
def test_clip_by_global_norm_keeps_none_dtypes_and_inputs(ex):
    """None stays None, float32 stays float32, the input arrays are not modified."""
    grads = [np.full((2, 2), 10.0, np.float32), None]
    before = grads[0].copy()
    out = ex.clip_by_global_norm(grads, 1.0)
    assert out[1] is None and len(out) == 2
    assert out[0].dtype == np.float32, f"dtype {out[0].dtype}, expected float32"
    assert np.array_equal(grads[0], before), "clip_by_global_norm modified its input"


# ------------------------------------------------------------------ Keras: build_small_cnn and StopOnNaN
# Probes build and train where the student's code lives and return numbers; the checks happen here.


def _probe_cnn(module, input_shape, num_classes, widths):
    import keras
    import numpy as np

    keras.utils.set_random_seed(0)
    model = module.build_small_cnn(input_shape, num_classes, widths)
    x = np.random.default_rng(0).normal(size=(8, *input_shape)).astype("float32")
    y = np.arange(8) % num_classes
    out = np.asarray(model.predict(x, verbose=0))
    kinds = [type(layer).__name__ for layer in model.layers]
    model.compile(keras.optimizers.Adam(0.01), keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    losses = model.fit(x, y, batch_size=8, epochs=40, verbose=0).history["loss"]
    return {"shape": out.shape, "params": int(model.count_params()), "kinds": kinds, "losses": losses,
            "row_sums": out.sum(axis=1)}


def _probe_stop(module, poison_batch):
    import keras
    import numpy as np

    keras.utils.set_random_seed(0)
    x = np.random.default_rng(0).normal(size=(40, 4)).astype("float32")
    y = x.sum(axis=1, keepdims=True)
    if poison_batch is not None and poison_batch % 2:
        y[poison_batch * 8] = np.inf  # an infinite (not NaN) loss for that batch
    elif poison_batch is not None:
        x[poison_batch * 8] = np.nan
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(1)])
    model.compile("sgd", "mse")
    callback = module.StopOnNaN()
    history = model.fit(x, y, batch_size=8, epochs=3, shuffle=False, verbose=0, callbacks=[callback])
    stopped = callback.stopped_at
    return {"epochs": len(history.history["loss"]), "stopped_at": None if stopped is None else tuple(int(v) for v in stopped)}


def _cnn_params(input_shape, num_classes, widths):
    c_in, total = input_shape[-1], 0
    for width in widths:
        total += 9 * c_in * width + 4 * width
        c_in = width
    return total + c_in * num_classes + num_classes


@pytest.mark.points(2)
def test_small_cnn_shapes_layers_and_parameters(ex):
    """Every argument counts: input shape, classes, widths; conv without bias, BN, ReLU, pooling, GAP, Dense."""
    for input_shape, classes, widths in (((16, 16, 1), 7, (8, 16, 24)), ((32, 32, 3), 10, (16, 32))):
        out = ex.probe(_probe_cnn, input_shape, classes, widths)
        assert tuple(out["shape"]) == (8, classes), f"output shape {out['shape']}"
        expected = _cnn_params(input_shape, classes, widths)
        assert out["params"] == expected, f"{out['params']} parameters, expected {expected} (conv without bias?)"
        kinds = out["kinds"]
        assert kinds.count("Conv2D") == len(widths) and kinds.count("BatchNormalization") == len(widths)
        assert kinds.count("MaxPooling2D") == len(widths) and "GlobalAveragePooling2D" in kinds
        assert kinds[-1] == "Dense"


@pytest.mark.points(2)
def test_small_cnn_outputs_logits_and_trains(ex):
    """Logits (rows need not sum to 1); 40 Adam steps on one batch of 8 drive the loss down by half."""
    out = ex.probe(_probe_cnn, (12, 12, 3), 4, (8, 8))
    assert not np.allclose(out["row_sums"], 1.0, atol=1e-3), "the model must output logits, not probabilities"
    losses = out["losses"]
    assert np.all(np.isfinite(losses)) and losses[-1] < 0.5 * losses[0], f"loss {losses[0]:.3f} -> {losses[-1]:.3f}"


@pytest.mark.points(2)
def test_stop_on_nan_stops_at_the_first_bad_batch(ex):
    """A NaN (batch 2) or an infinite (batch 3) loss stops fit in the first epoch, at that batch."""
    for bad in (2, 3):
        out = ex.probe(_probe_stop, bad)
        assert out["stopped_at"] == (0, bad), f"stopped_at {out['stopped_at']}, expected (0, {bad})"
        assert out["epochs"] == 1, f"fit ran {out['epochs']} epochs after the bad batch"


@pytest.mark.points(1)
def test_stop_on_nan_lets_a_healthy_run_finish(ex):
    """Finite losses: all 3 epochs run and stopped_at stays None."""
    out = ex.probe(_probe_stop, None)
    assert out == {"epochs": 3, "stopped_at": None}, out


# ------------------------------------------------------------------ the contract, clause by clause


@pytest.mark.points(1)
def test_warmup_cosine_with_a_warmup_as_long_as_the_run(ex):
    """warmup_steps == total_steps: linear to base_lr at step total_steps - 1, base_lr at total_steps, then min_lr."""
    lrs = [ex.warmup_cosine(s, 20, 0.2, 20, min_lr=0.01) for s in range(23)]
    assert math.isclose(lrs[0], 0.01, abs_tol=1e-12) and math.isclose(lrs[19], 0.2, abs_tol=1e-12)
    assert math.isclose(lrs[20], 0.2, abs_tol=1e-12), f"step 20: {lrs[20]}, expected base_lr"
    assert all(math.isclose(v, 0.01, abs_tol=1e-12) for v in lrs[21:]), f"after the run: {lrs[21:]}, expected min_lr"


@pytest.mark.points(1)
def test_global_norm_of_float16_gradients(ex):
    """float16 gradients [300, 400] have global norm 500 (their squares overflow float16: compute in float64)."""
    got = ex.global_norm([np.array([300.0], np.float16), np.array([[400.0]], np.float16)])
    assert isinstance(got, float) and math.isclose(got, 500.0, rel_tol=1e-6), f"got {got!r}"


@pytest.mark.points(1)
def test_clip_by_global_norm_returns_a_new_list(ex):
    """The caller's list keeps its own arrays (same objects, same values); the result is another list."""
    a, b = np.full(3, 10.0, np.float32), np.full((2, 2), -5.0, np.float32)
    grads = [a, None, b]
    out = ex.clip_by_global_norm(grads, 1.0)
    assert out is not grads and len(grads) == 3, "return a new list"
    assert grads[0] is a and grads[1] is None and grads[2] is b, "the caller's list was rewritten"
    assert np.all(a == 10.0) and np.all(b == -5.0), "the input arrays were modified"
    assert out[1] is None and math.isclose(float(np.sqrt(sum(np.sum(g.astype(np.float64) ** 2)
                                                             for g in (out[0], out[2])))), 1.0, rel_tol=1e-5)


def _probe_layer_kinds(module):
    model = module.build_small_cnn((8, 8, 2), 3, (4, 6))
    return [type(layer).__name__ for layer in model.layers]


@pytest.mark.points(1)
def test_small_cnn_blocks_are_conv_bn_relu_pool_in_that_order(ex):
    """Each block is Conv2D -> BatchNormalization -> ReLU -> MaxPooling2D, then GlobalAveragePooling2D -> Dense."""
    kinds = [k for k in ex.probe(_probe_layer_kinds) if k != "InputLayer"]
    kinds = ["ReLU" if k == "Activation" else k for k in kinds]
    block = ["Conv2D", "BatchNormalization", "ReLU", "MaxPooling2D"]
    assert kinds == block * 2 + ["GlobalAveragePooling2D", "Dense"], f"layers in order: {kinds}"


def _probe_stop_in_a_later_epoch(module):
    import keras
    import numpy as np

    def batches():  # five batches per epoch; the ninth batch overall (epoch 1, batch 3) holds a NaN
        step = 0
        while True:
            x = np.full((4, 2), 0.1 * (step % 5 + 1), "float32")
            if step == 8:
                x[0, 0] = np.nan
            step += 1
            yield x, np.ones((4, 1), "float32")

    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(1)])
    model.compile("sgd", "mse")
    callback = module.StopOnNaN()
    history = model.fit(batches(), steps_per_epoch=5, epochs=4, shuffle=False, verbose=0, callbacks=[callback])
    stopped = callback.stopped_at
    return {"epochs": len(history.history["loss"]), "stopped_at": None if stopped is None else tuple(int(v) for v in stopped)}


@pytest.mark.points(1)
def test_stop_on_nan_reports_the_epoch(ex):
    """A NaN at batch 3 of the second epoch: stopped_at == (1, 3) and fit ends in that epoch."""
    out = ex.probe(_probe_stop_in_a_later_epoch)
    assert out["stopped_at"] == (1, 3), f"stopped_at {out['stopped_at']}, expected (1, 3): track the epoch"
    assert out["epochs"] == 2, f"fit ran {out['epochs']} epochs"
