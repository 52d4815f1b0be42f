"""Graded tests of exercise 10 (lesson 03): train_step, one training step written by hand.

Run: ``pytest exercises/test_ex10_training_loop.py`` (TensorFlow; ``KERAS_BACKEND=jax pytest ...`` grades
it on JAX). The tests build a tiny model here, run your step where your code lives (a probe), and
compare what comes back with Keras' own ``train_on_batch`` run here from the same weights.
"""

import functools

import numpy as np
import pytest

keras = pytest.importorskip("keras")

SGD = ("SGD", (("learning_rate", 0.05), ("momentum", 0.9)))
ADAM = ("Adam", (("learning_rate", 0.01),))
FAST = ("SGD", (("learning_rate", 0.1), ("momentum", 0.9)))


def _model():
    """Frozen Dense -> BatchNorm -> ReLU -> Dense with an L2 penalty -> logits (3 classes)."""
    keras.utils.set_random_seed(0)
    L = keras.layers
    model = keras.Sequential([
        keras.Input((6,)),
        L.Dense(8, name="frozen"),
        L.BatchNormalization(name="bn"),
        L.ReLU(name="relu"),
        L.Dense(8, activation="relu", kernel_regularizer=keras.regularizers.L2(0.01), name="hidden"),
        L.Dense(3, name="head"),
    ])
    model.get_layer("frozen").trainable = False
    return model


def _batch(n=16, seed=0):
    rng = np.random.default_rng(seed)
    return rng.normal(1.0, 2.0, size=(n, 6)).astype("float32"), (np.arange(n) % 3).astype("int64")


@functools.cache
def _reference(optimizer, steps):
    """The built-in step, here: ``train_on_batch`` from the same starting weights (computed once per setting)."""
    model = _model()
    x, y = _batch()
    model.compile(optimizer=getattr(keras.optimizers, optimizer[0])(**dict(optimizer[1])),
                  loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    losses = [float(np.asarray(model.train_on_batch(x, y)).ravel()[0]) for _ in range(steps)]
    return {"losses": losses, "weights": _weights(model),
            "iterations": int(keras.ops.convert_to_numpy(model.optimizer.iterations))}


def _probe_steps(module, model_json, weights, optimizer, steps, x, y):
    """Rebuild the model, run the student's train_step ``steps`` times, return losses and weights."""
    import keras
    import numpy as np

    model = keras.models.model_from_json(model_json)
    model.set_weights(weights)
    opt = getattr(keras.optimizers, optimizer[0])(**dict(optimizer[1]))
    loss_fn = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
    returned = [module.train_step(model, opt, loss_fn, x, y) for _ in range(steps)]
    return {"types": [type(v).__name__ for v in returned],
            "losses": [float(v) if isinstance(v, (int, float)) else float("nan") for v in returned],
            "weights": {f"{layer.name}/{w.name}": np.asarray(keras.ops.convert_to_numpy(w))
                        for layer in model.layers for w in layer.weights},
            "iterations": int(keras.ops.convert_to_numpy(opt.iterations))}


@functools.cache
def _start():
    """The model to train, as JSON, and its initial weights (built once)."""
    model = _model()
    return model.to_json(), model.get_weights(), _weights(model)


def _student(ex, optimizer, steps):
    x, y = _batch()
    model_json, weights, _ = _start()
    return ex.probe(_probe_steps, model_json, weights, optimizer, steps, x, y)


def _weights(model):
    """``{"layer/variable": value}`` (names that do not depend on how many models were built before)."""
    return {f"{layer.name}/{w.name}": np.asarray(keras.ops.convert_to_numpy(w)) for layer in model.layers for w in layer.weights}


def _initial():
    return _start()[2]


@pytest.mark.points(2)
def test_train_step_returns_the_loss_before_the_update(ex):
    """A Python float: the batch's loss *before* the step, including the L2 penalty, as train_on_batch reports it."""
    got, expected = _student(ex, SGD, 2), _reference(SGD, 2)
    assert got["types"] == ["float", "float"], f"train_step returned {got['types']}: return a Python float"
    np.testing.assert_allclose(got["losses"], expected["losses"], rtol=1e-5, atol=1e-6,
                               err_msg="not the loss train_on_batch reports (training mode? the model's "
                                       "regularisation losses? computed before the update?)")


@pytest.mark.points(3)
def test_train_step_matches_the_built_in_step(ex):
    """Four steps of SGD with momentum from the same weights: every variable as after train_on_batch."""
    got, expected = _student(ex, SGD, 4), _reference(SGD, 4)
    assert sorted(got["weights"]) == sorted(expected["weights"]), "the model's variables changed"
    for path, value in expected["weights"].items():
        np.testing.assert_allclose(got["weights"][path], value, rtol=1e-4, atol=1e-5,
                                   err_msg=f"{path} differs from the built-in step's")
    assert got["iterations"] == 4, f"optimizer.iterations is {got['iterations']} after 4 steps: one apply() per step"


@pytest.mark.points(1)
def test_train_step_matches_the_built_in_step_with_adam(ex):
    """With Adam (whose update depends on the step count): the same weights as train_on_batch after three steps."""
    got, expected = _student(ex, ADAM, 3), _reference(ADAM, 3)
    for path, value in expected["weights"].items():
        np.testing.assert_allclose(got["weights"][path], value, rtol=1e-4, atol=1e-5,
                                   err_msg=f"{path} differs from the built-in step's")


@pytest.mark.points(2)
def test_train_step_lowers_the_loss(ex):
    """Forty steps on one small batch: the loss falls to less than half, and every trainable variable moved."""
    got = _student(ex, FAST, 40)
    losses = got["losses"]
    assert np.all(np.isfinite(losses)), f"losses {losses[:3]}..."
    assert losses[-1] < 0.5 * losses[0], f"loss {losses[0]:.3f} -> {losses[-1]:.3f}: step down the gradient"
    start = _initial()
    trainable = [p for p in start if p.startswith(("hidden/", "head/")) or p in ("bn/gamma", "bn/beta")]
    assert len(trainable) == 6, sorted(start)
    frozen_in_place = [p for p in trainable if np.array_equal(got["weights"][p], start[p])]
    assert not frozen_in_place, f"these trainable variables never changed: {frozen_in_place}"


@pytest.mark.points(2)
def test_train_step_leaves_frozen_weights_alone(ex):
    """The frozen layer keeps its weights exactly; BatchNorm's moving statistics move as in fit (training mode)."""
    got, expected, start = _student(ex, SGD, 3), _reference(SGD, 3), _initial()
    for path in ("frozen/kernel", "frozen/bias"):
        assert np.array_equal(got["weights"][path], start[path]), f"{path} changed: a frozen layer must not train"
    for path in ("bn/moving_mean", "bn/moving_variance"):
        assert not np.array_equal(got["weights"][path], start[path]), \
            f"{path} did not move: call the model with training=True"
        np.testing.assert_allclose(got["weights"][path], expected["weights"][path], rtol=1e-4, atol=1e-5)
