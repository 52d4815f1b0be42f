"""Graded tests of exercise 04 (lesson 04): freeze_all_but_top and count_trainable_params.

Run: ``pytest exercises/test_ex04_transfer.py`` (builds tiny Keras models; a few seconds).
"""

import numpy as np
import pytest

keras = pytest.importorskip("keras")

LAYERS = ["conv_a", "bn_a", "relu_a", "conv_b", "bn_b", "pool", "dense_a", "dense_b"]
COUNTED = ["conv_a", "conv_b", "dense_a", "dense_b"]  # weighted, not BatchNormalization


def _model():
    L = keras.layers
    return keras.Sequential(
        [
            keras.Input((8, 8, 3)),
            L.Conv2D(4, 3, name="conv_a"),
            L.BatchNormalization(name="bn_a"),
            L.Activation("relu", name="relu_a"),
            L.Conv2D(6, 3, name="conv_b"),
            L.BatchNormalization(name="bn_b"),
            L.GlobalAveragePooling2D(name="pool"),
            L.Dense(5, name="dense_a"),
            L.Dense(3, name="dense_b"),
        ]
    )


def _flags(model):
    return {layer.name: layer.trainable for layer in model.layers}


def _expect(trainable_names):
    return {name: name in trainable_names for name in LAYERS}


@pytest.mark.points(2)
def test_freeze_all_but_top_two(ex):
    """n=2: only the two Dense layers train; the function returns their names, bottom to top."""
    model = _model()
    names = ex.freeze_all_but_top(model, 2)
    assert _flags(model) == _expect({"dense_a", "dense_b"}), f"trainable flags: {_flags(model)}"
    assert list(names) == ["dense_a", "dense_b"], f"returned {names!r}"


@pytest.mark.points(2)
def test_freeze_all_but_top_skips_batchnorm(ex):
    """n=3 reaches conv_b but its BatchNormalization stays frozen (BN layers never count and never train)."""
    model = _model()
    names = ex.freeze_all_but_top(model, 3)
    assert _flags(model) == _expect({"conv_b", "dense_a", "dense_b"}), f"trainable flags: {_flags(model)}"
    assert list(names) == ["conv_b", "dense_a", "dense_b"], f"returned {names!r}"


@pytest.mark.points(1)
def test_freeze_all_but_top_zero_freezes_everything(ex):
    """n=0 freezes every layer (watch out for layers[-0:]) and returns an empty list."""
    model = _model()
    names = ex.freeze_all_but_top(model, 0)
    assert not any(_flags(model).values()), f"trainable flags: {_flags(model)}"
    assert list(names) == [] and len(model.trainable_weights) == 0


@pytest.mark.points(1)
def test_freeze_all_but_top_more_than_there_are(ex):
    """n larger than the counted layers unfreezes all of them; BatchNormalization still frozen."""
    model = _model()
    names = ex.freeze_all_but_top(model, 50)
    assert _flags(model) == _expect(set(COUNTED)), f"trainable flags: {_flags(model)}"
    assert list(names) == COUNTED


@pytest.mark.points(2)
def test_freeze_all_but_top_weights_are_really_trainable(ex):
    """After freezing, model.trainable is True and the model's trainable weights are exactly the chosen layers'."""
    model = _model()
    model.trainable = False  # a previous strategy froze the whole model
    ex.freeze_all_but_top(model, 1)
    assert model.trainable, "model.trainable must be True, or the model hides every weight from the optimiser"
    got = sorted(w.path for w in model.trainable_weights)
    expected = sorted(w.path for w in model.get_layer("dense_b").weights)
    assert got == expected, f"trainable weights {got}, expected {expected}"


@pytest.mark.points(1)
def test_freeze_all_but_top_matches_the_package(ex, package_function):
    """Same flags and names as visiondl_keras.models.backbones.freeze_all_but_top."""
    pkg = package_function("visiondl_keras.models.backbones", "freeze_all_but_top")
    for n in (0, 1, 3, 9):
        mine, theirs = _model(), _model()
        names = ex.freeze_all_but_top(mine, n)
        expected = pkg(theirs, n)
        assert _flags(mine) == _flags(theirs), f"n={n}: flags {_flags(mine)} != {_flags(theirs)}"
        assert list(names) == list(expected)


@pytest.mark.points(2)
def test_count_trainable_params_of_a_fresh_model(ex):
    """All layers trainable: conv_a 112 + bn_a 8 + conv_b 222 + bn_b 12 + dense_a 35 + dense_b 18 = 407 (no BN moving stats)."""
    model = _model()
    got = ex.count_trainable_params(model)
    assert isinstance(got, (int, np.integer)), "return an int"
    assert got == 407, f"got {got}, expected 407 (model.count_params() would say {model.count_params()})"


@pytest.mark.points(2)
def test_count_trainable_params_after_freezing(ex):
    """Frozen layers do not count: top 3 leaves conv_b, dense_a, dense_b = 222 + 35 + 18 = 275."""
    model = _model()
    model.trainable = True
    for layer in model.layers:
        layer.trainable = layer.name in {"conv_b", "dense_a", "dense_b"}
    assert ex.count_trainable_params(model) == 275


@pytest.mark.points(1)
def test_count_trainable_params_matches_the_package(ex, package_function):
    """Same count as visiondl_keras.models.backbones.trainable_params for a few freezing patterns."""
    pkg = package_function("visiondl_keras.models.backbones", "trainable_params")
    model = _model()
    for pattern in ([], ["dense_b"], ["bn_a", "conv_a"], LAYERS):
        model.trainable = True
        for layer in model.layers:
            layer.trainable = layer.name in pattern
        assert ex.count_trainable_params(model) == pkg(model), f"trainable layers {pattern}"


def _probe_train_after_freezing(module, n):
    """Freeze with the student's function, train one epoch, return which weights and BN statistics moved."""
    import keras
    import numpy as np

    keras.utils.set_random_seed(0)
    L = keras.layers
    model = keras.Sequential([keras.Input((8, 8, 3)), L.Conv2D(4, 3, name="conv_a"), L.BatchNormalization(name="bn_a"),
                              L.Activation("relu", name="relu_a"), L.Conv2D(6, 3, name="conv_b"),
                              L.BatchNormalization(name="bn_b"), L.GlobalAveragePooling2D(name="pool"),
                              L.Dense(5, name="dense_a"), L.Dense(3, name="dense_b")])
    module.freeze_all_but_top(model, n)
    weights = {f"{layer.name}/{i}": w for layer in model.layers for i, w in enumerate(layer.weights)}
    before = {key: np.array(keras.ops.convert_to_numpy(w)) for key, w in weights.items()}
    x = np.random.default_rng(0).normal(2.0, 3.0, size=(32, 8, 8, 3)).astype("float32")
    y = np.arange(32) % 3
    model.compile(keras.optimizers.SGD(0.1), keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    model.fit(x, y, batch_size=16, epochs=1, verbose=0)
    return {key: bool(not np.array_equal(before[key], keras.ops.convert_to_numpy(w))) for key, w in weights.items()}


@pytest.mark.points(2)
def test_freeze_all_but_top_by_behaviour_after_a_training_step(ex):
    """What actually trains: after fit, only the top layers' weights moved; frozen BatchNorm layers keep
    their moving statistics (they run in inference mode), and so do the frozen convolutions."""
    moved = ex.probe(_probe_train_after_freezing, 3)
    changed = {path.split("/")[0] for path, m in moved.items() if m}
    assert changed == {"conv_b", "dense_a", "dense_b"}, f"weights that changed during fit: {sorted(changed)}"
    assert not any(m for path, m in moved.items() if path.startswith(("bn_a/", "bn_b/"))), \
        "a frozen BatchNormalization must not update its moving mean/variance"


# ------------------------------------------------------------------ the contract, clause by clause


def _mobile_model():
    """A MobileNet-like stack: every weighted layer counts, whatever its kind (BatchNormalization excepted)."""
    L = keras.layers
    return keras.Sequential([
        keras.Input((8, 8, 3)),
        L.Conv2D(4, 3, name="stem"),
        L.BatchNormalization(name="stem_bn"),
        L.DepthwiseConv2D(3, name="depthwise"),
        L.LayerNormalization(name="norm"),
        L.SeparableConv2D(6, 1, name="separable"),
        L.GlobalAveragePooling2D(name="pool"),
        L.Dense(3, name="head"),
    ])


@pytest.mark.points(1)
def test_freeze_all_but_top_counts_every_kind_of_weighted_layer(ex):
    """DepthwiseConv2D, LayerNormalization and SeparableConv2D own weights, so they count like Conv2D and Dense."""
    model = _mobile_model()
    names = ex.freeze_all_but_top(model, 3)
    assert list(names) == ["norm", "separable", "head"], f"returned {names!r}"
    flags = _flags(model)
    assert flags == {"stem": False, "stem_bn": False, "depthwise": False, "norm": True, "separable": True,
                     "pool": False, "head": True}, f"trainable flags: {flags}"
    model = _mobile_model()
    assert list(ex.freeze_all_but_top(model, 4)) == ["depthwise", "norm", "separable", "head"]


@pytest.mark.points(1)
def test_count_trainable_params_returns_a_python_int(ex):
    """A Python int (not a numpy integer), also when nothing is trainable (0)."""
    model = _model()
    got = ex.count_trainable_params(model)
    assert type(got) is int, f"returned a {type(got).__name__}: return a Python int"
    model.trainable = False
    got = ex.count_trainable_params(model)
    assert type(got) is int and got == 0, f"frozen model: {got!r}, expected 0"
