"""The time-to-accuracy benchmark's bookkeeping: measured vs extrapolated times and the ratios."""

import math
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
from conftest import load_benchmark


@pytest.fixture(scope="module")
def t2a():
    return load_benchmark("time_to_accuracy")


def _curve(points):
    return [(s, a, i + 1) for i, (s, a) in enumerate(points)]


def test_time_to_is_the_first_epoch_that_reaches_the_target(t2a):
    curve = _curve([(10, 0.5), (20, 0.76), (30, 0.74), (40, 0.86)])
    assert t2a.time_to(curve, 0.75) == 20
    assert t2a.time_to(curve, 0.85) == 40
    assert t2a.time_to(curve, 0.90) is None


def test_extrapolation_follows_a_log_linear_trend_and_stays_near_the_curve(t2a):
    # accuracy = 0.1 * ln(t) exactly: reaches 0.70 at t = e^7
    curve = _curve([(math.exp(a * 10), a) for a in (0.40, 0.50, 0.60, 0.65, 0.66, 0.67)])
    assert t2a.extrapolated_time_to(curve, 0.70) == pytest.approx(math.exp(7.0), rel=1e-6)
    assert t2a.extrapolated_time_to(curve, 0.80) is None  # 13 points above the best measured
    flat = _curve([(s, 0.6) for s in (10, 20, 30, 40, 50, 60)])
    assert t2a.extrapolated_time_to(flat, 0.62) is None
    assert t2a.extrapolated_time_to(_curve([(10, 0.5), (20, 0.6)]), 0.62) is None


def test_target_rows_ratio_uses_measured_ours_and_marks_extrapolation(t2a):
    ours = SimpleNamespace(name="ours", curve=_curve([(60, 0.70), (120, 0.80), (180, 0.86)]))
    resnet9 = SimpleNamespace(name="resnet9", curve=_curve([(300, 0.60), (600, 0.76), (900, 0.80)]))
    peer = SimpleNamespace(name="peer", curve=_curve([(math.exp(a * 10), a) for a in (0.50, 0.60, 0.65, 0.70, 0.72)]))
    rows = t2a.target_rows((ours, resnet9, peer), log=lambda *a: None)
    r75 = rows["0.75"]
    assert r75["ours_s"] == 120 and r75["ours_how"] == "measured"
    assert r75["resnet9_s"] == 600 and r75["ratio_resnet9"] == pytest.approx(5.0)
    assert r75["peer_how"] == "extrapolated"
    assert r75["ratio"] == pytest.approx(math.exp(7.5) / 120, rel=1e-3)
    assert rows["0.94"]["ours_s"] is None and rows["0.94"]["ratio"] is None
    assert set(rows) == {"0.75", "0.85", "0.90", "0.93", "0.94"}


def test_ours_is_the_fastest_schedule_of_its_family_that_measured_the_target(t2a):
    long = SimpleNamespace(name="ours_8ep", family="ours", curve=_curve([(65, 0.55), (90, 0.63), (180, 0.78), (220, 0.82), (260, 0.84), (300, 0.86)]),
                           finished=True)
    sprint = SimpleNamespace(name="ours_2ep_w32", family="ours", curve=_curve([(40, 0.66), (80, 0.79)]), finished=True)
    peer = SimpleNamespace(name="peer", curve=_curve([(400, 0.60), (800, 0.70), (1200, 0.76)]), finished=False)
    resnet9 = SimpleNamespace(name="resnet9", curve=_curve([(200, 0.70), (400, 0.80)]), finished=True)
    rows = t2a.target_rows((sprint, long, resnet9, peer), log=lambda *a: None)
    r75, r85 = rows["0.75"], rows["0.85"]
    assert (r75["ours_s"], r75["ours_run"], r75["ours_how"]) == (80, "ours_2ep_w32", "measured")
    assert r75["ours_8ep_s"] == 180 and r75["ratio"] == pytest.approx(1200 / 80) and r75["ratio_resnet9"] == 5.0
    assert r85["ours_2ep_w32_how"] == "not reached" and (r85["ours_s"], r85["ours_run"]) == (300, "ours_8ep")
    assert rows["0.90"]["ours_s"] is None and rows["0.90"]["ours_how"] == "not reached" and rows["0.90"]["ratio"] is None
    long.finished = False  # cut short by the budget: its trend gives a time, shown but never used in a ratio
    cut = t2a.target_rows((sprint, long, resnet9, peer), log=lambda *a: None)["0.90"]
    assert cut["ours_how"] == "extrapolated" and cut["ours_run"] == "ours_8ep" and cut["ours_s"] > 300
    assert cut["ratio"] is None
    budgets = t2a.budget_rows((sprint, long, resnet9, peer), 20 * 60, log=lambda *a: None)
    assert budgets["1"]["ours_2ep_w32"] == 0.66 and budgets["1"]["ours_8ep"] is None and budgets["1"]["ours"] == 0.66
    assert budgets["5"]["ours"] == 0.86 and budgets["2"]["ours"] == 0.79


def test_sprint_configs_plan_each_schedule_at_its_own_length_width_and_batch(t2a):
    configs = t2a.sprint_configs([1, 3], [32, 128, 128], 512, seed=4)
    assert list(configs) == ["ours_1ep_w32_b512", "ours_3ep_w32_b512"]
    fast = t2a.preset_config("fast")
    for name, c in configs.items():
        assert (c.epochs, c.widths, c.batch_size, c.seed) == (int(name[5]), [32, 128, 128], 512, 4)
        assert (c.lr, c.weight_decay, c.policy, c.lookahead) == (fast.lr, fast.weight_decay, fast.policy, fast.lookahead)
    assert t2a.sprint_configs([], [32, 128, 128], 512) == {}


def test_a_recipe_that_finished_its_schedule_is_not_extrapolated(t2a):
    """Extrapolation is for a curve the budget cut short; a finished schedule does not keep rising."""
    curve = _curve([(math.exp(a * 10), a) for a in (0.50, 0.60, 0.65, 0.70, 0.72)])
    ours = SimpleNamespace(name="ours", curve=_curve([(60, 0.80)]))
    cut = SimpleNamespace(name="peer", curve=curve, finished=False)
    done = SimpleNamespace(name="resnet9", curve=curve, finished=True)
    rows = t2a.target_rows((ours, done, cut), log=lambda *a: None)
    assert rows["0.75"]["peer_how"] == "extrapolated" and rows["0.75"]["resnet9_how"] == "not reached"
    assert rows["0.75"]["resnet9_s"] is None and rows["0.75"]["ratio_resnet9"] is None


def _write_run(path: Path, test_accuracy: float, curve: list[tuple[float, float]]) -> Path:
    import json

    path.mkdir(parents=True)
    (path / "metrics.json").write_text(json.dumps({"test_accuracy": test_accuracy, "train_time_s": curve[-1][0]}))
    rows = "\n".join(f"{i + 1},{t},{a}" for i, (t, a) in enumerate(curve))
    (path / "history.csv").write_text("epoch,time_s,val_accuracy\n" + rows + "\n")
    return path


def test_transfer_vs_scratch_counts_only_runs_that_finished_within_the_budget(tmp_path):
    tvs = load_benchmark("transfer_vs_scratch")
    runs = [tvs.read_run(_write_run(tmp_path / "short", 0.80, [(60, 0.7), (300, 0.81)]), "scratch"),
            tvs.read_run(_write_run(tmp_path / "long", 0.90, [(600, 0.85), (1500, 0.91)]), "scratch"),
            tvs.read_run(_write_run(tmp_path / "tl", 0.88, [(900, 0.86), (1100, 0.89)]), "transfer")]
    ten = tvs.at_budget(runs, "scratch", 10)
    assert ten["finished_test_accuracy"] == 0.80 and ten["finished_run"] == "short"  # "long" took 25 min
    assert ten["anytime_val_accuracy"] == 0.85  # the long run had reached 0.85 at 10 min
    assert tvs.at_budget(runs, "transfer", 10)["finished_test_accuracy"] is None
    assert tvs.at_budget(runs, "transfer", 20)["finished_test_accuracy"] == 0.88
    assert tvs.at_budget(runs, "scratch", 40)["finished_test_accuracy"] == 0.90


def test_backends_summary_flags_a_backend_outside_the_seed_noise():
    bk = load_benchmark("backends")
    runs = [{"backend": b, "seed": s, "test_accuracy": a, "images_per_second": 100.0}
            for b, accs in {"tensorflow": (0.70, 0.72), "jax": (0.71, 0.73), "torch": (0.60, 0.61)}.items()
            for s, a in enumerate(accs)]
    rows = {r["backend"]: r for r in bk.summarize(runs, ["tensorflow", "jax", "torch"])}
    assert rows["jax"]["agrees"] and not rows["torch"]["agrees"]
    assert rows["torch"]["diff_vs_tensorflow"] == pytest.approx(-0.105)
    missing = bk.summarize(runs[:2], ["tensorflow", "torch"])
    assert missing[1]["skipped"] == "torch is not installed"


@pytest.fixture(scope="module")
def jpeg():
    return load_benchmark("jpeg_sensitivity")


def _smooth_images(n=6, seed=0):
    """Natural-ish images: smooth colour gradients plus a little noise (what JPEG is made for)."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:32, 0:32] / 31.0
    base = np.stack([yy, xx, (yy + xx) / 2], -1)[None] * rng.uniform(100, 200, (n, 1, 1, 3))
    return np.clip(base + rng.normal(0, 8, (n, 32, 32, 3)), 0, 255).astype(np.uint8)


def test_jpeg_reencoding_loses_more_at_lower_quality_and_keeps_shapes(jpeg):
    x = _smooth_images()
    assert jpeg.reencode(x, None) is x
    q95, q75, q30 = (jpeg.reencode(x, q) for q in (95, 75, 30))
    assert q75.shape == x.shape and q75.dtype == np.uint8
    assert jpeg.psnr(x, x) is None
    assert jpeg.psnr(x, q95) > jpeg.psnr(x, q75) > jpeg.psnr(x, q30) > 20
    # the shifted grid matters: a second encoding on the first one's grid changes (almost) nothing, one on a
    # shifted grid loses detail again
    first = jpeg.reencode(x, 75, offset=0)
    same, shifted = jpeg.psnr(first, jpeg.reencode(first, 75, offset=0)), jpeg.psnr(first, jpeg.reencode(first, 75))
    assert shifted is not None and shifted < 45 and (same is None or same > shifted + 5)


def test_jpeg_summary_reports_the_drop_from_the_mirror(jpeg):
    runs = [{"quality": None, "seed": 0, "test_accuracy": 0.90, "psnr_db": None},
            {"quality": None, "seed": 1, "test_accuracy": 0.92, "psnr_db": None},
            {"quality": 75, "seed": 0, "test_accuracy": 0.89, "psnr_db": 33.0},
            {"quality": 75, "seed": 1, "test_accuracy": 0.89, "psnr_db": 33.0}]
    rows = {r["quality"]: r for r in jpeg.summarize(runs)}
    assert rows[None]["test_accuracy_mean"] == pytest.approx(0.91) and rows[None]["drop_vs_mirror"] == 0
    assert rows[75]["drop_vs_mirror"] == pytest.approx(0.02) and rows[75]["seeds"] == [0, 1]


def _write_transfer_run(path: Path, test, tta, label_smoothing, freeze_bottom, command):
    import json

    path.mkdir(parents=True)
    (path / "config.json").write_text(json.dumps({"strategy": "full", "label_smoothing": label_smoothing,
                                                  "freeze_bottom": freeze_bottom, "budget_s": 4320.0,
                                                  "command": command}))
    (path / "metrics.json").write_text(json.dumps({
        "test_accuracy": test, "test_accuracy_tta": tta, "tta_level": 2, "best_val_accuracy": test + 0.01,
        "train_time_s": 3600.0, "model": "mobilenet_a0.25_224px", "data": {"source": "/somewhere/cifar10.tar.gz"}}))
    rows = ["1,1.0,0.60,head", "2,2.0,0.70,head", "3,900.0,0.85,full", "4,3600.0,0.89,full"]
    (path / "history.csv").write_text("epoch,time_s,val_accuracy,stage\n" + "\n".join(rows) + "\n")
    (path / "state.json").write_text(json.dumps({"status": "completed"}))
    return path


def test_transfer_candidates_marks_the_published_run_and_measures_the_spread(tmp_path):
    import json

    tc = load_benchmark("transfer_candidates")
    published = "python -m visiondl_keras transfer-train --run-dir runs/b --label-smoothing 0.1"
    a = _write_transfer_run(tmp_path / "a", 0.880, None, 0.0, 0, "python -m visiondl_keras transfer-train --run-dir runs/a")
    b = _write_transfer_run(tmp_path / "b", 0.895, 0.902, 0.1, 9, published.replace("runs/b", str(tmp_path / "b")))
    ref = tmp_path / "reference.json"
    ref.write_text(json.dumps({"command": published}))
    out, fig = tmp_path / "c.json", tmp_path / "c.png"
    assert tc.main([str(a), str(b), "--reference", str(ref), "--out", str(out), "--figure", str(fig)]) == 0
    result = json.loads(out.read_text())
    ra, rb = result["runs"]
    assert (ra["published"], rb["published"]) == (False, True)
    assert ra["options"].startswith("no label smoothing, all layers trained")
    assert rb["options"].startswith("label smoothing 0.1, bottom 9 layers frozen")
    assert (ra["finetune_epochs"], ra["train_minutes"], rb["test_accuracy_tta"]) == (2, 60.0, 0.902)
    s = result["summary"]
    assert s["best_run"] == "b" and s["test_accuracy_spread"] == pytest.approx(0.015)
    assert s["best_test_accuracy_tta"] == 0.902 and not s["floor_reached"] and not s["target_reached"]
    assert str(tmp_path) not in out.read_text() and fig.stat().st_size > 0
