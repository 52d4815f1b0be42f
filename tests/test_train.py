"""Training engine: run directory, determinism, resume after kill -9, divergence, precision, CLI errors."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import keras
import numpy as np
import pytest
from conftest import make_splits, synthetic_images

from visiondl_keras.cli.main import main
from visiondl_keras.data import augment
from visiondl_keras.errors import ConfigError
from visiondl_keras.evaluation.gradients import predict_logits
from visiondl_keras.io import read_csv, read_json
from visiondl_keras.models.scratch import build_resnet9, build_scratch_model, count_flops, model_summary
from visiondl_keras.reproducibility import cpu_info
from visiondl_keras.runs import publish_run
from visiondl_keras.training.callbacks import StabilityMonitor, TrainingDiverged
from visiondl_keras.training.config import TrainConfig, resolve_precision
from visiondl_keras.training.engine import fit_epoch
from visiondl_keras.training.lr_finder import lr_find
from visiondl_keras.training.optimizers import compile_model, current_lr_momentum, make_optimizer
from visiondl_keras.training.scratch import evaluate_arrays, train

TINY = dict(arch="simple", width=8, epochs=3, batch_size=50, lr=0.05, warmup_epochs=0.5, val_size=50)
TIMING = {"epoch_time_s", "time_s"}


def _rows(run_dir):
    return [{k: v for k, v in r.items() if k not in TIMING} for r in read_csv(Path(run_dir) / "history.csv")]


def test_run_directory_contents(tmp_path, tiny_splits):
    metrics = train(TrainConfig(**TINY), tmp_path / "run", splits=tiny_splits, progress=False)
    run = tmp_path / "run"
    for name in ("config.json", "history.csv", "metrics.json", "environment.json", "best.keras", "last.keras",
                 "state.json", "figures/curves.png"):
        assert (run / name).is_file(), name
    assert any((run / "tensorboard").iterdir())
    hist = read_csv(run / "history.csv")
    assert [int(r["epoch"]) for r in hist] == [1, 2, 3]
    for col in ("loss", "accuracy", "val_loss", "val_accuracy", "lr", "momentum", "grad_norm", "loss_spikes"):
        assert col in hist[0]
    assert all(np.isfinite(float(r["grad_norm"])) and float(r["grad_norm"]) > 0 for r in hist)
    env = read_json(run / "environment.json")
    assert env["dataset_fingerprint"] == "synthetic" and env["backend"] == keras.backend.backend()
    assert set(metrics["per_class_accuracy"]) == set(tiny_splits.class_names)
    assert metrics == read_json(run / "metrics.json")
    # metrics.json's test accuracy is that of best.keras on the test split
    best = keras.saving.load_model(run / "best.keras", compile=False)
    acc = evaluate_arrays(best, tiny_splits.x_test, tiny_splits.y_test, tiny_splits.class_names)["accuracy"]
    assert metrics["test_accuracy"] == pytest.approx(acc)
    assert read_json(run / "state.json")["status"] == "completed"
    assert read_json(run / "config.json") == TrainConfig(**TINY).to_dict()


def test_training_learns_the_synthetic_task(tmp_path):
    splits = make_splits(n_train=600, n_val=100, n_test=200)
    cfg = TrainConfig(**{**TINY, "epochs": 6, "lr": 0.1})
    metrics = train(cfg, tmp_path / "run", splits=splits, progress=False)
    assert metrics["test_accuracy"] > 0.6  # chance is 0.1


def test_same_seed_deterministic_runs_have_identical_histories(tmp_path, tiny_splits):
    cfg = TrainConfig(**{**TINY, "deterministic": True, "policy": "cutmix"})
    train(cfg, tmp_path / "a", splits=tiny_splits, progress=False)
    train(cfg, tmp_path / "b", splits=tiny_splits, progress=False)
    assert _rows(tmp_path / "a") == _rows(tmp_path / "b")
    other = TrainConfig(**{**TINY, "deterministic": True, "policy": "cutmix", "seed": 1})
    train(other, tmp_path / "c", splits=tiny_splits, progress=False)
    assert _rows(tmp_path / "a") != _rows(tmp_path / "c")


def _tree(tmp_path):
    from conftest import write_tree

    root = tmp_path / "tree"
    write_tree(root, per_class_train=1, per_class_test=1)
    # overwrite with learnable synthetic images: 40 train / 10 test per class
    from PIL import Image

    x, y = synthetic_images(500, seed=1)
    for i, (img, label) in enumerate(zip(x, y)):
        split = "train" if i < 400 else "test"
        Image.fromarray(img).save(root / split / str(np.array(__import__("visiondl_keras").CLASS_NAMES)[label]) / f"s{i}.png")
    return root


@pytest.mark.slow
def test_run_killed_with_sigkill_resumes_to_the_same_result(tmp_path):
    data = _tree(tmp_path)
    env = dict(os.environ, VISIONDL_CACHE=str(tmp_path / "cache"), TF_CPP_MIN_LOG_LEVEL="3")
    args = ["--data", str(data), "--arch", "simple", "--width", "8", "--epochs", "8", "--batch-size", "40",
            "--lr", "0.05", "--val-size", "50", "--deterministic", "--quiet"]
    cmd = [sys.executable, "-m", "visiondl_keras", "train"]
    ref = subprocess.run(cmd + args + ["--run-dir", str(tmp_path / "ref")], env=env, capture_output=True, text=True,
                         timeout=600)
    assert ref.returncode == 0, ref.stderr[-3000:]

    run = tmp_path / "killed"
    proc = subprocess.Popen(cmd + args + ["--run-dir", str(run)], env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    state = run / "state.json"
    deadline = time.time() + 600
    done = 0
    while time.time() < deadline and proc.poll() is None:
        if state.is_file():
            try:
                done = json.loads(state.read_text())["epochs_done"]
            except (ValueError, KeyError):
                done = 0
            if done >= 3:
                break
        time.sleep(0.02)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    killed_at = json.loads(state.read_text())
    assert killed_at["status"] == "running" and 3 <= killed_at["epochs_done"] < 8, killed_at

    again = subprocess.run(cmd + args + ["--run-dir", str(run)], env=env, capture_output=True, text=True, timeout=600)
    assert again.returncode == 0, again.stderr[-3000:]
    a, b = read_json(tmp_path / "ref" / "metrics.json"), read_json(run / "metrics.json")
    for key in ("test_accuracy", "test_loss", "per_class_accuracy", "val_accuracy", "best_epoch"):
        assert a[key] == b[key], key
    assert _rows(tmp_path / "ref") == _rows(run)


def test_nan_loss_stops_with_clear_message_and_keeps_best(tmp_path, tiny_splits, monkeypatch):
    real = augment.augmented_epoch

    def poisoned(x, y, policy, seed, epoch, batch_size):
        xs, ys = real(x, y, policy, seed, epoch, batch_size)
        if epoch >= 1:
            xs[:] = np.nan
        return xs, ys

    monkeypatch.setattr(augment, "augmented_epoch", poisoned)
    with pytest.raises(TrainingDiverged, match=r"loss became nan at epoch 2.*best.keras \(from epoch 1\) was kept"):
        train(TrainConfig(**TINY), tmp_path / "run", splits=tiny_splits, progress=False)
    assert (tmp_path / "run" / "best.keras").is_file()
    assert read_json(tmp_path / "run" / "state.json")["status"] == "diverged"
    best = keras.saving.load_model(tmp_path / "run" / "best.keras", compile=False)
    assert all(np.all(np.isfinite(keras.ops.convert_to_numpy(w))) for w in best.weights)


def test_stability_monitor_counts_spikes_from_running_means():
    mon = StabilityMonitor(spike_factor=3.0, log=lambda *a: None)
    mon.set_model(build_scratch_model("simple", 4))
    mon.on_epoch_begin(0)
    batch_losses = [1.0, 1.0, 1.0, 10.0, 1.0]
    means = np.cumsum(batch_losses) / np.arange(1, 6)
    for i, m in enumerate(means):
        mon.on_train_batch_end(i, {"loss": m})
    assert mon.spikes == 1 and mon.problem is None
    mon.on_train_batch_end(5, {"loss": float("inf")})
    assert "inf" in mon.problem and mon.model.stop_training


def test_resuming_a_different_config_is_refused(tmp_path, tiny_splits):
    train(TrainConfig(**{**TINY, "epochs": 1}), tmp_path / "run", splits=tiny_splits, progress=False)
    with pytest.raises(ConfigError, match="different configuration"):
        train(TrainConfig(**{**TINY, "epochs": 1, "lr": 0.5}), tmp_path / "run", splits=tiny_splits, progress=False)
    # the same config on a completed run returns its metrics without training
    again = train(TrainConfig(**{**TINY, "epochs": 1}), tmp_path / "run", splits=tiny_splits, progress=False)
    assert again == read_json(tmp_path / "run" / "metrics.json")


@pytest.mark.parametrize("precision", ["mixed_float16", "mixed_bfloat16"])
def test_mixed_precision_keeps_float32_logits_and_scales_the_loss(precision, tiny_splits):
    keras.mixed_precision.set_dtype_policy(precision)
    try:
        model = build_resnet9(width=4)
        compile_model(model, TrainConfig(**TINY), steps_per_epoch=4, precision=precision)
        assert model.get_layer("stage1_conv").compute_dtype == precision.split("_")[1]
        out = model.predict_on_batch(tiny_splits.x_train[:4])
        assert out.dtype == np.float32
        if precision == "mixed_float16":
            assert isinstance(model.optimizer, keras.optimizers.LossScaleOptimizer)
        xs, ys = augment.augmented_epoch(tiny_splits.x_train[:100], tiny_splits.y_train[:100], augment.get_policy("baseline"),
                                         0, 0, 50)
        loss, _ = fit_epoch(model, xs, ys, 50, progress=False)
        assert np.isfinite(loss)
    finally:
        keras.mixed_precision.set_dtype_policy("float32")
    expected = "mixed_bfloat16" if cpu_info()["has_bf16"] else "float32"
    assert resolve_precision("auto") in (expected, "mixed_float16")


def test_optimizers_and_schedules_build(tiny_splits):
    for opt, sched in (("sgd", "onecycle"), ("sgd", "cosine"), ("adamw", "cosine"), ("adamw", "constant")):
        cfg = TrainConfig(**{**TINY, "optimizer": opt, "schedule": sched})
        o = make_optimizer(cfg, steps_per_epoch=10)
        lr, mom = current_lr_momentum(o)
        assert lr > 0
        assert (mom is not None) == (opt == "sgd")


def test_lr_find_suggests_a_learning_rate_and_restores_weights(tiny_splits):
    model = build_scratch_model("simple", 8)
    before = [w.copy() for w in model.get_weights()]
    res = lr_find(model, tiny_splits.x_train, tiny_splits.y_train, start_lr=1e-4, end_lr=10, steps=30, batch_size=32)
    assert 1e-4 <= res.suggested_lr <= 10 and len(res.lrs) == len(res.losses) >= 3
    assert all(np.array_equal(a, b) for a, b in zip(before, model.get_weights()))
    import matplotlib.figure

    assert isinstance(res.plot(), matplotlib.figure.Figure)


def test_models_are_self_contained_and_report_params_and_flops():
    splits = make_splits(n_train=50, n_val=0, n_test=10)
    model = build_scratch_model("resnet9", 8, mean=splits.mean, std=splits.std)
    x = splits.x_test
    np.testing.assert_allclose(model.predict_on_batch(x), model.predict_on_batch(x.astype(np.float32)), rtol=1e-5)
    assert model.get_layer("logits").dtype_policy.name == "float32"
    info = model_summary(model)
    assert info["params"] == model.count_params() and info["flops"] > 0
    tiny = keras.Sequential([keras.Input((32, 32, 3)), keras.layers.Conv2D(4, 3, padding="same"), keras.layers.Flatten(),
                             keras.layers.Dense(10)])
    assert count_flops(tiny) == 2 * 32 * 32 * 4 * 9 * 3 + 2 * (32 * 32 * 4 * 10)
    assert model_summary(build_scratch_model("resnet9", 16))["params"] < model_summary(build_scratch_model("resnet9", 24))["params"]
    with pytest.raises(ConfigError, match="unknown architecture"):
        build_scratch_model("vgg99")


# ---- command line -----------------------------------------------------------------------------


def test_cli_bad_arguments_give_one_line_errors(tmp_path, capsys):
    assert main(["train", "--epochs", "0", "--run-dir", str(tmp_path / "r")]) == 1
    err = capsys.readouterr().err
    assert err.strip().count("\n") == 0 and "epochs must be an integer >= 1" in err
    assert main(["train", "--config", str(tmp_path / "nope.json")]) == 1
    assert "nope.json: configuration file not found" in capsys.readouterr().err
    bad = tmp_path / "bad.json"
    bad.write_text('{"widht": 3}')
    assert main(["train", "--config", str(bad)]) == 1
    assert "unknown configuration keys ['widht']" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exc:
        main(["train", "--width", "many"])
    assert exc.value.code == 2
    assert main(["evaluate", str(tmp_path / "missing.keras")]) == 1
    assert "missing.keras: checkpoint not found" in capsys.readouterr().err
    assert main(["train", "--policy", "autoaugment", "--run-dir", str(tmp_path / "r2")]) == 1
    assert "unknown augmentation policy" in capsys.readouterr().err


def test_cli_train_quick_and_evaluate(tmp_path, capsys, monkeypatch):
    data = _tree(tmp_path)
    monkeypatch.setenv("VISIONDL_CACHE", str(tmp_path / "cache"))
    rc = main(["train", "--quick", "--data", str(data), "--limit", "200", "--val-size", "40", "--test-limit", "50",
               "--epochs", "1", "--run-dir", str(tmp_path / "run"), "--quiet"])
    assert rc == 0
    assert "test accuracy" in capsys.readouterr().out
    assert main(["evaluate", str(tmp_path / "run"), "--data", str(data), "--json", "--quiet"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["n"] == 110 and 0 <= out["accuracy"] <= 1 and len(out["per_class_accuracy"]) == 10


def test_publish_ships_a_smaller_weights_only_checkpoint_with_the_run_files(tmp_path, tiny_splits):
    run = tmp_path / "run"
    train(TrainConfig(**{**TINY, "epochs": 1}), run, splits=tiny_splits, progress=False)
    info = publish_run(run, "tiny", tmp_path / "art")
    ckpt = Path(info["checkpoint"])
    assert ckpt.stat().st_size < (run / "best.keras").stat().st_size
    shipped = keras.saving.load_model(ckpt, compile=False)
    best = keras.saving.load_model(run / "best.keras", compile=False)
    np.testing.assert_allclose(predict_logits(shipped, tiny_splits.x_test), predict_logits(best, tiny_splits.x_test))
    for f in ("config.json", "history.csv", "metrics.json", "environment.json", "figures/curves.png"):
        assert (Path(info["run_dir"]) / f).is_file()
    from visiondl_keras.runs import published_checkpoint

    assert published_checkpoint(info["run_dir"], tmp_path / "art") == ckpt  # the run records what it shipped as
    assert str(tmp_path) not in (Path(info["run_dir"]) / "metrics.json").read_text()  # no local paths
    (run / "state.json").write_text('{"status": "running"}')
    with pytest.raises(ConfigError, match="not completed"):
        publish_run(run, "tiny", tmp_path / "art")


def test_published_commands_name_no_machine_local_folders():
    from visiondl_keras.runs import portable_command, without_local_paths

    cmd = "python -m visiondl_keras train --run-dir /scratch/me/p94 --data '/my data/c.tar.gz' --epochs 8"
    assert portable_command(cmd) == "python -m visiondl_keras train --run-dir runs/p94 --data c.tar.gz --epochs 8"
    kept = "python -m visiondl_keras train --run-dir runs/fast --data data/c.tar.gz"
    assert portable_command(kept) == kept  # relative paths are what a user types: kept
    assert portable_command(None) is None
    joined = "python -m visiondl_keras train --run-dir=/scratch/me/p94 --data=/d/c.tar.gz --out=rel/x.json"
    assert portable_command(joined) == "python -m visiondl_keras train --run-dir=runs/p94 --data=c.tar.gz --out=rel/x.json"
    assert without_local_paths({"config": {"command": cmd}, "n": [{"source": "/x/y.tar.gz"}]}) == {
        "config": {"command": "python -m visiondl_keras train --run-dir runs/p94 --data c.tar.gz --epochs 8"},
        "n": [{"source": "y.tar.gz"}]}
