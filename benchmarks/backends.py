"""The fast recipe on TensorFlow, JAX and PyTorch: same data, same settings, accuracy and speed per backend.

Each (backend, seed) trains in its own process (``KERAS_BACKEND`` is fixed when Keras is imported) with
``python -m visiondl_keras train --preset fast`` on a stratified CIFAR-10 subset, float32, a narrow
network and a few hundred optimizer steps, then this script reads the run's ``metrics.json``. The table
gives mean and spread of test accuracy per backend and the difference to TensorFlow in units of the
seed-to-seed noise: a backend "agrees" when ``|mean - mean_tf| <= 2 * sqrt(s_b^2/n_b + s_tf^2/n_tf) + 0.01``
(two standard errors of the difference, plus one point for the subset's granularity). A backend that is
not installed is listed as skipped. Speeds are images/s of training measured in each process; compare
them as ratios measured in one run.

    python benchmarks/backends.py [--backends tensorflow jax torch] [--seeds 0 1] [--limit 10000]
        [--test-limit 2000] [--epochs 8] [--widths 32,64,64] [--batch-size 256]
        [--runs-dir runs/backends] [--out artifacts/metrics/backends.json]
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import math
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from visiondl_keras.io import write_json  # noqa: E402

MODULE_OF = {"tensorflow": "tensorflow", "jax": "jax", "torch": "torch"}


def run_one(backend: str, seed: int, args) -> dict:
    """Train one run in a subprocess on ``backend`` (resumes or reuses a completed run directory)."""
    run = Path(args.runs_dir) / f"{backend}-seed{seed}"
    cmd = [sys.executable, "-m", "visiondl_keras", "train", "--preset", "fast", "--run-dir", str(run),
           "--precision", "float32", "--seed", str(seed), "--epochs", str(args.epochs),
           "--widths", args.widths, "--batch-size", str(args.batch_size), "--limit", str(args.limit),
           "--test-limit", str(args.test_limit), "--quiet"]
    if args.data:
        cmd += ["--data", args.data]
    env = {**os.environ, "KERAS_BACKEND": backend, "TF_CPP_MIN_LOG_LEVEL": "2"}
    start = time.perf_counter()
    proc = subprocess.run(cmd, env=env, cwd=ROOT, capture_output=True, text=True)
    if proc.returncode != 0:
        raise RuntimeError(f"{backend} seed {seed} failed:\n{proc.stderr[-3000:]}")
    m = json.loads((run / "metrics.json").read_text())
    return {"backend": backend, "seed": seed, "test_accuracy": m["test_accuracy"],
            "train_time_s": m["train_time_s"], "images_per_second": m["images_per_second"],
            "steps": int(math.ceil(m["data"]["n_train"] / args.batch_size)) * int(m["epochs"]),
            "process_s": round(time.perf_counter() - start, 1), "data": m["data"]}


def mean_std(values: list[float]) -> tuple[float, float]:
    n = len(values)
    mean = sum(values) / n
    std = math.sqrt(sum((v - mean) ** 2 for v in values) / (n - 1)) if n > 1 else 0.0
    return mean, std


def summarize(runs: list[dict], backends: list[str]) -> list[dict]:
    """Per backend: mean/std accuracy, speed, and agreement with TensorFlow (see the module docstring)."""
    stats = {}
    for b in backends:
        sel = [r for r in runs if r["backend"] == b]
        if sel:
            acc = mean_std([r["test_accuracy"] for r in sel])
            stats[b] = {"n": len(sel), "mean": acc[0], "std": acc[1],
                        "images_per_second": sum(r["images_per_second"] for r in sel) / len(sel)}
    rows = []
    ref = stats.get("tensorflow")
    for b in backends:
        if b not in stats:
            rows.append({"backend": b, "skipped": f"{MODULE_OF[b]} is not installed"})
            continue
        s = stats[b]
        row = {"backend": b, "seeds": s["n"], "test_accuracy_mean": round(s["mean"], 4),
               "test_accuracy_std": round(s["std"], 4), "images_per_second": round(s["images_per_second"], 1)}
        if ref:
            diff = s["mean"] - ref["mean"]
            tol = 2 * math.sqrt(s["std"] ** 2 / s["n"] + ref["std"] ** 2 / ref["n"]) + 0.01
            row.update(diff_vs_tensorflow=round(diff, 4), tolerance=round(tol, 4), agrees=abs(diff) <= tol,
                       speed_vs_tensorflow=round(s["images_per_second"] / ref["images_per_second"], 2))
        rows.append(row)
    return rows


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--backends", nargs="+", default=["tensorflow", "jax", "torch"], choices=sorted(MODULE_OF))
    p.add_argument("--seeds", nargs="+", type=int, default=[0, 1])
    p.add_argument("--limit", type=int, default=10000, help="stratified training subset (default %(default)s)")
    p.add_argument("--test-limit", type=int, default=2000, help="stratified test subset (default %(default)s)")
    p.add_argument("--epochs", type=int, default=8)
    p.add_argument("--widths", default="32,64,64", help="the network's three group widths")
    p.add_argument("--batch-size", type=int, default=256)
    p.add_argument("--data", default=None, help="CIFAR-10 source (default: $VISIONDL_DATA or the official download)")
    p.add_argument("--runs-dir", default="runs/backends")
    p.add_argument("--out", default="artifacts/metrics/backends.json")
    args = p.parse_args(argv)

    available = [b for b in args.backends if importlib.util.find_spec(MODULE_OF[b]) is not None]
    runs = []
    for seed in args.seeds:  # interleaved: load changes hit every backend alike
        for b in available:
            r = run_one(b, seed, args)
            runs.append(r)
            print(f"{b:<11} seed {seed}: test accuracy {r['test_accuracy']:.4f}, "
                  f"{r['images_per_second']:.0f} img/s, {r['steps']} steps", flush=True)
    rows = summarize(runs, args.backends)
    print(f"\n{'backend':<11} {'seeds':>5} {'test acc':>16} {'img/s':>8} {'diff vs TF':>11} {'tol':>7} agrees")
    for r in rows:
        if "skipped" in r:
            print(f"{r['backend']:<11} skipped: {r['skipped']}")
            continue
        print(f"{r['backend']:<11} {r['seeds']:>5} {r['test_accuracy_mean']:>9.4f} ± {r['test_accuracy_std']:.4f} "
              f"{r['images_per_second']:>8.0f} {r.get('diff_vs_tensorflow', 0):>+11.4f} {r.get('tolerance', 0):>7.4f} "
              f"{r.get('agrees', '-')}")
    data = runs[0]["data"] if runs else None
    write_json(args.out, {
        "what": "the fast recipe (preset fast, float32) on each Keras backend, same data and settings",
        "settings": {k: getattr(args, k) for k in ("seeds", "limit", "test_limit", "epochs", "widths", "batch_size")},
        "data": data, "rows": rows, "runs": runs,
        "load_average": os.getloadavg()[0] if hasattr(os, "getloadavg") else None,
    })
    print(f"wrote {args.out}")
    return 0 if all(r.get("agrees", True) for r in rows) else 1


if __name__ == "__main__":
    raise SystemExit(main())
