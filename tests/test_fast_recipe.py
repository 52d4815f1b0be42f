"""The fast recipe: whitening, identity init, ScaledSGD rules, triangular schedule, alternating flip,
lookahead, TTA, presets; reproducibility across processes and exact resume after kill -9."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import keras
import numpy as np
import pytest
from conftest import make_splits, synthetic_images

from visiondl_keras.data import augment
from visiondl_keras.errors import ConfigError
from visiondl_keras.evaluation.gradients import predict_logits
from visiondl_keras.evaluation.tta import TestTimeAugmentation, tta_logits, tta_model
from visiondl_keras.io import read_json
from visiondl_keras.models.airbench import (
    airbench_gradient_rules,
    build_airbench,
    dirac_init,
    whitening_kernel,
)
from visiondl_keras.training.callbacks import Lookahead
from visiondl_keras.training.config import PRESETS, TrainConfig, preset_config
from visiondl_keras.training.optimizers import ScaledSGD, make_optimizer
from visiondl_keras.training.schedules import Triangular, triangular_lr
from visiondl_keras.training.scratch import train

SMALL = (8, 16, 16)


def test_whitening_kernel_whitens_patches():
    rng = np.random.default_rng(0)
    # correlated channels: the whitening must decorrelate them
    base = rng.normal(120, 40, size=(300, 8, 8, 1))
    x = np.concatenate([base, 0.8 * base + rng.normal(0, 10, base.shape), 255 - base + rng.normal(0, 20, base.shape)], -1)
    mean, std = x.reshape(-1, 3).mean(0), x.reshape(-1, 3).std(0)
    k = whitening_kernel(x, mean, std, eps=0.0)
    assert k.shape == (2, 2, 3, 24)
    z = (x - mean) / std
    patches = np.lib.stride_tricks.sliding_window_view(z, (2, 2), axis=(1, 2)).transpose(0, 1, 2, 4, 5, 3).reshape(-1, 12)
    out = patches @ k.reshape(12, 24)
    cov = out[:, :12].T @ out[:, :12] / len(out)
    np.testing.assert_allclose(cov, np.eye(12), atol=1e-3)
    np.testing.assert_allclose(out[:, 12:], -out[:, :12], atol=1e-6)  # +/- pairs


def test_dirac_init_makes_identity_filters():
    model = keras.Sequential([keras.Input((6, 6, 3)), keras.layers.Conv2D(5, 3, padding="same", use_bias=False)])
    dirac_init(model)
    x = np.random.default_rng(0).normal(size=(2, 6, 6, 3)).astype("float32")
    y = keras.ops.convert_to_numpy(model(x))
    np.testing.assert_allclose(y[..., :3], x, atol=1e-6)


def test_airbench_model_shape_and_builtin_layers(tmp_path):
    splits = make_splits(n_train=64, n_val=8, n_test=8)
    model = build_airbench(SMALL, 10, splits.mean, splits.std, whitening_images=splits.x_train)
    assert model.output_shape == (None, 10)
    assert model.get_layer("whiten").kernel.shape == (2, 2, 3, 24)
    assert all(type(layer).__module__.startswith("keras") for layer in model.layers)
    path = tmp_path / "m.keras"
    model.save(path)
    again = keras.models.load_model(path, safe_mode=True)
    x = splits.x_test[:4]
    np.testing.assert_allclose(predict_logits(again, x), predict_logits(model, x), atol=1e-5)
    with pytest.raises(ConfigError, match="three integers"):
        build_airbench((8, 16))


def test_scaled_sgd_freezes_scales_and_stops():
    w = keras.Variable(np.ones(3, "float32"), name="kernel")
    opt = ScaledSGD(learning_rate=0.1, momentum=0.0, rules=[{"match": "kernel", "scale": 0.0, "decay": False}],
                    coupled_weight_decay=0.5)
    opt.apply([keras.ops.ones(3)], [w])
    np.testing.assert_allclose(keras.ops.convert_to_numpy(w), 1.0)  # frozen: no gradient, no decay

    b = keras.Variable(np.ones(2, "float32"), name="beta")
    opt = ScaledSGD(learning_rate=0.1, momentum=0.0, rules=[{"match": "beta", "scale": 4.0, "until_step": 1}],
                    coupled_weight_decay=0.5)
    opt.apply([keras.ops.ones(2)], [b])  # step 0: 1 - 0.1 * (4 * 1 + 0.5 * 1)
    np.testing.assert_allclose(keras.ops.convert_to_numpy(b), 1 - 0.1 * 4.5, rtol=1e-6)
    before = keras.ops.convert_to_numpy(b).copy()
    opt.apply([keras.ops.ones(2)], [b])  # step 1: past until_step, no update
    np.testing.assert_allclose(keras.ops.convert_to_numpy(b), before)
    assert ScaledSGD.from_config(opt.get_config()).rules == opt.rules


def test_airbench_rules_match_the_model_variables():
    model = build_airbench(SMALL)
    opt = ScaledSGD(rules=airbench_gradient_rules(64.0, 10))
    by_path = {v.path: opt.rule_for(v) for v in model.trainable_variables}
    assert by_path["whiten/kernel"]["scale"] == 0.0
    assert by_path["whiten/bias"]["until_step"] == 10
    betas = [p for p in by_path if p.endswith("/beta")]
    assert betas and all(by_path[p]["scale"] == 64.0 for p in betas)
    assert by_path["head/kernel"] == {}


def test_triangular_schedule_values():
    total = 100
    np.testing.assert_allclose(triangular_lr([0, 23, 100], total, 2.0), [0.4, 2.0, 0.14], rtol=1e-6)
    sched = Triangular(total, 2.0)
    steps = np.arange(0, 101, 7)
    ours = np.array([float(keras.ops.convert_to_numpy(sched(s))) for s in steps])
    np.testing.assert_allclose(ours, triangular_lr(steps, total, 2.0), rtol=1e-6)


def test_make_optimizer_converts_per_1024_hyperparameters():
    cfg = preset_config("fast", batch_size=512)
    opt = make_optimizer(cfg, steps_per_epoch=10)
    peak = 11.5 * 512 / (1024 * (1 + 1 / (1 - 0.85)))
    schedule = opt.get_config()["learning_rate"]["config"]
    assert schedule["peak_lr"] == pytest.approx(peak) and schedule["total_steps"] == 10 * cfg.epochs
    assert opt.coupled_weight_decay == pytest.approx(0.0153 / 11.5)


def test_alternating_flip_is_pure_and_alternates():
    x, y = synthetic_images(40)
    a0, ya = augment.alternating_flip_epoch(x, y, seed=3, epoch=0, translate=0)
    b0, _ = augment.alternating_flip_epoch(x, y, seed=3, epoch=0, translate=0)
    np.testing.assert_array_equal(a0, b0)
    order0 = np.random.default_rng([3, 0]).permutation(40)
    order1 = np.random.default_rng([3, 1]).permutation(40)
    a1, _ = augment.alternating_flip_epoch(x, y, seed=3, epoch=1, translate=0)
    flipped0 = np.array([not np.array_equal(a0[i], x[order0[i]]) for i in range(40)])
    flipped1 = {order1[i]: not np.array_equal(a1[i], x[order1[i]]) for i in range(40)}
    for i in range(40):  # every image is seen both ways in two consecutive epochs
        assert flipped0[i] != flipped1[order0[i]]
    assert 0 < flipped0.sum() < 40
    np.testing.assert_array_equal(ya.argmax(1), y[order0])
    t, _ = augment.alternating_flip_epoch(x, y, seed=3, epoch=0, translate=2)
    assert t.shape == x.shape and not np.array_equal(t, a0)


def test_lookahead_decay_schedule_and_final_average():
    model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(1, use_bias=False)])
    model.compile(optimizer=keras.optimizers.SGD(0.0), loss="mse")
    la = Lookahead(total_steps=10, every=5)
    la.set_model(model)
    assert la.decay(0) == 0.0 and la.decay(10) == pytest.approx(0.95**5)
    assert la.decay(5) == pytest.approx(0.95**5 * 0.5**3)
    w0 = keras.ops.convert_to_numpy(model.weights[0]).copy()
    model.optimizer.iterations.assign(1)
    la.on_train_batch_end(0)
    model.weights[0].assign(w0 + 1.0)
    model.optimizer.iterations.assign(10)
    la.on_train_batch_end(1)  # last step: the weights become the average, which had only seen w0
    np.testing.assert_allclose(keras.ops.convert_to_numpy(model.weights[0]), w0)


def test_tta_levels_agree_between_numpy_and_layer(tmp_path):
    splits = make_splits(n_train=64, n_val=8, n_test=16)
    model = build_airbench(SMALL, 10, splits.mean, splits.std, whitening_images=splits.x_train)
    x = splits.x_test
    base = predict_logits(model, x)
    np.testing.assert_allclose(tta_logits(model, x, 0), base, atol=1e-5)
    mirror = 0.5 * base + 0.5 * predict_logits(model, x[:, :, ::-1])
    np.testing.assert_allclose(tta_logits(model, x, 1), mirror, atol=1e-5)
    for level in (1, 2):
        wrapped = tta_model(model, level)
        np.testing.assert_allclose(predict_logits(wrapped, x), tta_logits(model, x, level), atol=1e-4)
    path = tmp_path / "tta.keras"
    tta_model(model, 2).save(path)
    again = keras.models.load_model(path, custom_objects={"TestTimeAugmentation": TestTimeAugmentation})
    np.testing.assert_allclose(predict_logits(again, x), tta_logits(model, x, 2), atol=1e-4)
    with pytest.raises(ConfigError, match="TTA level"):
        tta_logits(model, x, 3)



def test_fast_policy_names_parse_and_reject_bad_parts():
    assert augment.parse_fast_policy("altflip+translate") == ("altflip+translate", ())
    assert augment.parse_fast_policy("flip+translate+randaugment+cutmix") == ("flip+translate", ("randaugment", "cutmix"))
    assert augment.parse_fast_policy("altflip+mixup") == ("altflip", ("mixup",))
    for other in ("baseline", "none", "randaugment+cutmix", "translate", "flip"):
        assert augment.parse_fast_policy(other) is None
    for bad in ("altflip+translate+autoaugment", "altflip+mixup+mixup", "altflip+translate+mixup+cutmix",
                "altflip+translate+translate"):
        with pytest.raises(ConfigError):
            augment.parse_fast_policy(bad)
        with pytest.raises(ConfigError):
            TrainConfig(policy=bad).validate()
    assert isinstance(augment.get_policy("altflip+translate+cutmix"), augment.FastPolicy)
    TrainConfig(policy="altflip+translate+randaugment").validate()


def test_fast_policy_epoch_adds_extras_per_batch_and_stays_pure():
    x, y = synthetic_images(100)
    base, yb = augment.alternating_flip_epoch(x, y, seed=5, epoch=1, translate=2)
    plain, yp = augment.fast_policy_epoch(x, y, "altflip+translate", seed=5, epoch=1, batch_size=32)
    np.testing.assert_array_equal(plain, base)  # no extras: exactly the recipe's own data
    np.testing.assert_array_equal(yp, yb)
    for extra in ("mixup", "cutmix", "randaugment"):
        name = f"altflip+translate+{extra}"
        a, ya = augment.fast_policy_epoch(x, y, name, seed=5, epoch=1, batch_size=32)
        b, yb2 = augment.fast_policy_epoch(x, y, name, seed=5, epoch=1, batch_size=32)
        np.testing.assert_array_equal(a, b)  # a pure function of (seed, epoch): resume stays exact
        np.testing.assert_array_equal(ya, yb2)
        assert a.shape == x.shape and a.dtype == np.float32 and not np.array_equal(a, base)
        np.testing.assert_allclose(ya.sum(1), 1.0, rtol=1e-6)
        c, _ = augment.fast_policy_epoch(x, y, name, seed=5, epoch=2, batch_size=32)
        assert not np.array_equal(a, c)
        if extra == "randaugment":
            np.testing.assert_array_equal(ya, yb)  # labels untouched
        else:  # mixing happens within each training batch: the label mass of a batch stays that batch's
            for start in range(0, 100, 32):
                np.testing.assert_allclose(ya[start:start + 32].sum(0), yb[start:start + 32].sum(0), atol=1e-4)
    one_batch, labels = augment.get_policy("altflip+translate+cutmix")(x[:8], y[:8], np.random.default_rng(0))
    assert one_batch.shape == (8, *x.shape[1:]) and labels.shape == (8, 10)


def test_metrics_report_accuracy_on_clean_training_images(tmp_path):
    splits = make_splits(n_train=300, n_val=40, n_test=60)
    cfg = preset_config("fast", widths=list(SMALL), epochs=2, batch_size=100, precision="float32",
                        policy="altflip+translate+mixup", tta_level=0)
    m = train(cfg, tmp_path / "run", splits=splits, progress=False, log=lambda *a: None)
    best = keras.saving.load_model(tmp_path / "run" / "best.keras", compile=False)
    expected = np.mean(predict_logits(best, splits.x_train).argmax(1) == splits.y_train)
    assert m["train_accuracy_images"] == 300 and m["train_accuracy"] == pytest.approx(expected)


def test_presets_and_quick_training(tmp_path):
    assert set(PRESETS) == {"94", "fast", "resnet9"}
    assert preset_config("resnet9") == TrainConfig()
    with pytest.raises(ConfigError, match="unknown preset"):
        preset_config("95")
    splits = make_splits(n_train=600, n_val=60, n_test=100)
    cfg = preset_config("fast", widths=list(SMALL), epochs=6, batch_size=64, precision="float32")
    metrics = train(cfg, tmp_path / "run", splits=splits, progress=False, log=lambda *a: None)
    assert metrics["test_accuracy"] > 0.6  # chance is 0.1
    assert set(metrics["tta"]) == {"0", "2"} and metrics["tta"]["2"]["forward_passes_per_image"] == 6
    assert metrics["test_accuracy"] == metrics["tta"]["0"]["test_accuracy"]
    assert list((tmp_path / "run").glob("lookahead-*.npz"))


# ------------------------------------------------------------------------------------------------
# As users run it: separate processes, the fast recipe, a partial last batch, kill -9
# ------------------------------------------------------------------------------------------------


def _data_tree(tmp_path):
    from PIL import Image

    from visiondl_keras.data.cifar10 import CLASS_NAMES

    root = tmp_path / "tree"
    x, y = synthetic_images(1300, seed=1)
    for i, (img, label) in enumerate(zip(x, y)):
        folder = root / ("train" if i < 1100 else "test") / CLASS_NAMES[label]
        folder.mkdir(parents=True, exist_ok=True)
        Image.fromarray(img).save(folder / f"{i:04d}.png")
    return root


def _cmd(tmp_path, run):
    # 1000 training images at batch 192: 5 full batches and a partial one of 40
    return [sys.executable, "-m", "visiondl_keras", "train", "--preset", "fast", "--widths", "16,32,32",
            "--epochs", "4", "--batch-size", "192", "--val-size", "100", "--precision", "float32",
            "--data", str(_data_tree(tmp_path) if not (tmp_path / "tree").is_dir() else tmp_path / "tree"),
            "--run-dir", str(run), "--quiet"]


def _env(tmp_path):
    return dict(os.environ, VISIONDL_CACHE=str(tmp_path / "cache"), TF_CPP_MIN_LOG_LEVEL="3")


def _history(run):
    return (run / "history.csv").read_text().splitlines()


def _kill_when(proc, run, ready, timeout=600):
    deadline = time.time() + timeout
    while time.time() < deadline and proc.poll() is None:
        state = run / "state.json"
        if state.is_file():
            try:
                if ready(json.loads(state.read_text())):
                    break
            except ValueError:
                pass
        time.sleep(0.01)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    return json.loads((run / "state.json").read_text())


@pytest.mark.slow
def test_separate_processes_agree_and_kill9_resumes_exactly(tmp_path):
    env = _env(tmp_path)
    ref, twin = tmp_path / "ref", tmp_path / "twin"
    for run in (ref, twin):
        r = subprocess.run(_cmd(tmp_path, run), env=env, capture_output=True, text=True, timeout=900)
        assert r.returncode == 0, r.stderr[-3000:]
    assert _history(ref)[1:] != [] and [r.split(",")[:5] for r in _history(ref)] == \
        [r.split(",")[:5] for r in _history(twin)]
    a = read_json(ref / "metrics.json")
    assert read_json(twin / "metrics.json")["test_accuracy"] == a["test_accuracy"]

    for name, ready in (("killed_training", lambda s: s.get("epochs_done", 0) >= 1),
                        ("killed_evaluating", lambda s: s.get("epochs_done", 0) >= 4)):
        run = tmp_path / name
        proc = subprocess.Popen(_cmd(tmp_path, run), env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        state = _kill_when(proc, run, ready)
        assert state["status"] == "running", state
        again = subprocess.run(_cmd(tmp_path, run), env=env, capture_output=True, text=True, timeout=900)
        assert again.returncode == 0, again.stderr[-3000:]
        b = read_json(run / "metrics.json")
        for key in ("test_accuracy", "test_loss", "per_class_accuracy", "val_accuracy", "best_epoch", "tta"):
            if key == "tta":
                assert {k: v["test_accuracy"] for k, v in a[key].items()} == \
                    {k: v["test_accuracy"] for k, v in b[key].items()}
            else:
                assert a[key] == b[key], (name, key)
        assert [r.split(",")[:5] for r in _history(ref)] == [r.split(",")[:5] for r in _history(run)]


def test_ablate_recipe_removes_one_piece_at_a_time(tmp_path):
    from visiondl_keras.training.ablation import ablate_recipe

    splits = make_splits(n_train=300, n_val=30, n_test=60)
    base = preset_config("fast", widths=list(SMALL), epochs=2, batch_size=100, precision="float32", tta_level=1)
    report = ablate_recipe(base, ("lookahead", "tta"), seeds=(0,), runs_dir=tmp_path / "runs", out_dir=tmp_path,
                           splits=splits, progress=False, log=lambda *a: None)
    assert [r["removed"] for r in report["rows"]] == ["none", "lookahead", "tta"]
    cfg = read_json(tmp_path / "runs" / "without-lookahead-seed0" / "config.json")
    assert cfg["lookahead"] is False and cfg["policy"] == base.policy
    full = report["runs"][0]
    assert report["rows"][2]["accuracies"] == [full["test_accuracy_no_tta"]]
    assert (tmp_path / "metrics" / "recipe_ablation.md").read_text().count("|") > 10
    with pytest.raises(ConfigError, match="unknown recipe pieces"):
        ablate_recipe(base, ("dropout",), splits=splits)


def test_export_with_tta_matches_tta_logits(tmp_path):
    pytest.importorskip("tensorflow")
    from visiondl_keras.deploy.export import export_checkpoint
    from visiondl_keras.deploy.predictor import load_predictor
    from visiondl_keras.evaluation.metrics import softmax

    splits = make_splits(n_train=64, n_val=8, n_test=8)
    model = build_airbench(SMALL, 10, splits.mean, splits.std, whitening_images=splits.x_train)
    ckpt = tmp_path / "m.keras"
    model.save(ckpt)
    with pytest.warns(UserWarning, match="no calibration sidecar"):
        files = export_checkpoint(ckpt, tmp_path / "m.tflite", fmt="tflite", tta=2, log=lambda *a: None)
    predictor = load_predictor(next(iter(files.values())), calibrated=True)
    probs = predictor.predict(splits.x_test)
    np.testing.assert_allclose(probs, softmax(tta_logits(model, splits.x_test, 2)), atol=1e-4)
