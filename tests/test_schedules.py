"""Schedules: closed-form values, Keras schedules equal the numpy formulas, NesterovSGD equals Keras SGD."""

from __future__ import annotations

import keras
import numpy as np
import pytest

from visiondl_keras.errors import ConfigError
from visiondl_keras.training import schedules as S
from visiondl_keras.training.optimizers import NesterovSGD


def test_warmup_cosine_known_values():
    assert S.warmup_cosine(0, 100, 0.1, warmup_steps=10) == pytest.approx(0.01)
    assert S.warmup_cosine(9, 100, 0.1, warmup_steps=10) == pytest.approx(0.1)
    assert S.warmup_cosine(10, 100, 0.1, warmup_steps=10) == pytest.approx(0.1)
    assert S.warmup_cosine(55, 100, 0.1, warmup_steps=10) == pytest.approx(0.05)
    assert S.warmup_cosine(100, 100, 0.1, warmup_steps=10, min_lr=0.001) == pytest.approx(0.001)
    lrs = S.warmup_cosine(np.arange(10, 101), 100, 0.1, 10)
    assert np.all(np.diff(lrs) <= 1e-12)


def test_one_cycle_shapes():
    steps = np.arange(0, 1001)
    lr = S.one_cycle_lr(steps, 1000, 0.4, pct_start=0.3)
    mom = S.one_cycle_momentum(steps, 1000, pct_start=0.3)
    assert lr[0] == pytest.approx(0.4 / 25) and lr.max() == pytest.approx(0.4)
    assert int(np.argmax(lr)) == 300 and lr[-1] == pytest.approx(0.4 / 25 / 1e4)
    assert mom[0] == pytest.approx(0.95) and mom[300] == pytest.approx(0.85) and mom[-1] == pytest.approx(0.95)
    assert np.corrcoef(lr, mom)[0, 1] < -0.9


@pytest.mark.parametrize("kind", ["cosine", "onecycle"])
def test_keras_schedules_match_the_numpy_formulas(kind):
    steps = np.array([0, 1, 5, 19, 20, 50, 99, 100, 150])
    if kind == "cosine":
        sched, ref = S.WarmupCosine(100, 0.2, 20), S.warmup_cosine(steps, 100, 0.2, 20)
    else:
        sched, ref = S.OneCycle(100, 0.2, 0.25), S.one_cycle_lr(steps, 100, 0.2, 0.25)
    got = np.array([float(keras.ops.convert_to_numpy(sched(s))) for s in steps])
    np.testing.assert_allclose(got, ref, rtol=1e-4, atol=1e-7)  # float32 evaluation
    again = type(sched).from_config(sched.get_config())
    assert float(keras.ops.convert_to_numpy(again(7))) == pytest.approx(float(keras.ops.convert_to_numpy(sched(7))))


def test_schedule_argument_errors():
    with pytest.raises(ConfigError, match="warmup_steps"):
        S.warmup_cosine(0, 10, 0.1, warmup_steps=10)
    with pytest.raises(ConfigError, match="total_steps"):
        S.WarmupCosine(0, 0.1)
    with pytest.raises(ConfigError, match="unknown schedule"):
        S.make_schedule("step", 10, 0.1)


def _one_step(opt, w0, g):
    v = keras.Variable(w0)
    opt.build([v])
    for _ in range(3):
        opt.apply_gradients([(keras.ops.convert_to_tensor(g), v)])
    return keras.ops.convert_to_numpy(v)


def test_nesterov_sgd_equals_keras_sgd_and_cycles_momentum():
    w0 = np.array([1.0, -2.0, 3.0], np.float32)
    g = np.array([0.5, 0.1, -0.3], np.float32)
    ours = _one_step(NesterovSGD(0.1, momentum=0.9), w0, g)
    ref = _one_step(keras.optimizers.SGD(0.1, momentum=0.9, nesterov=True), w0, g)
    np.testing.assert_allclose(ours, ref, rtol=1e-6)
    opt = NesterovSGD(0.1, cycle_momentum_steps=100, pct_start=0.25)
    opt.build([keras.Variable(w0)])
    assert float(keras.ops.convert_to_numpy(opt.current_momentum())) == pytest.approx(0.95)
    opt.iterations.assign(25)
    assert float(keras.ops.convert_to_numpy(opt.current_momentum())) == pytest.approx(0.85)
