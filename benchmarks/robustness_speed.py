"""How long do the corruption benchmark and the attacks take? (a benchmark, not a test)

Times, on the test split (or a stratified subset of it):

1. generating the 75 corruption sets (15 corruptions x 5 severities), without a model;
2. the corruption benchmark as ``diagnose`` runs it (generation in a background thread,
   overlapped with the model's forward passes);
3. the attacks as ``diagnose`` runs them: FGSM and PGD-10 at epsilon 0, 1, 2, 4, 8 (/255), PGD
   nested over the budgets (see ``visiondl_keras.evaluation.attacks.attack_sweep``);

and extrapolates linearly to the 10,000 test images when a subset was used (the attacks scale
roughly linearly: PGD's early stop depends on the share of images still correctly classified,
which a stratified subset keeps). The issue's goal is under 15 minutes for all of it, on 2
cores, for the shipped scratch model. The 1-minute load average is recorded before and after,
because other processes on a shared machine slow everything down.

Usage:
    python benchmarks/robustness_speed.py                       # shipped checkpoint, 1,000 images
    python benchmarks/robustness_speed.py --limit 10000         # the full measurement
    python benchmarks/robustness_speed.py --checkpoint other.keras --out /tmp/speed.json

Writes ``artifacts/metrics/diagnostics_robustness_speed.json`` by default.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
DEFAULT_CKPT = ROOT / "artifacts" / "checkpoints" / "scratch_airbench94.keras"


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--checkpoint", default=str(DEFAULT_CKPT), help="a .keras checkpoint (default: the shipped scratch model)")
    p.add_argument("--width", type=int, default=24, help="when the checkpoint is missing: time an untrained ResNet-9 of this width")
    p.add_argument("--data", default=None, help="CIFAR-10 source (default: $VISIONDL_DATA ...)")
    p.add_argument("--limit", type=int, default=1000, help="test images to time (10000 = all)")
    p.add_argument("--batch-size", type=int, default=500)
    p.add_argument("--skip-generation-only", action="store_true", help="skip step 1 (generation without a model)")
    p.add_argument("--out", default=str(ROOT / "artifacts" / "metrics" / "diagnostics_robustness_speed.json"))
    args = p.parse_args(argv)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

    import keras

    from visiondl_keras.data.cifar10 import load_cifar10
    from visiondl_keras.data.splits import stratified_subset
    from visiondl_keras.evaluation.attacks import attack_sweep
    from visiondl_keras.evaluation.corruptions import CORRUPTIONS, corrupt, corruption_benchmark
    from visiondl_keras.io import write_json
    from visiondl_keras.models import build_resnet9, load_checkpoint
    from visiondl_keras.reproducibility import environment_info

    load_before = os.getloadavg()[0]
    ckpt = Path(args.checkpoint)
    if ckpt.is_file():
        model, model_desc = load_checkpoint(ckpt), str(ckpt.relative_to(ROOT) if ckpt.is_relative_to(ROOT) else ckpt)
    else:
        keras.utils.set_random_seed(0)
        model = build_resnet9(width=args.width)
        model_desc = f"untrained resnet9 width {args.width} (stand-in: {ckpt} not found)"
    ds = load_cifar10(args.data, progress=False)
    idx = stratified_subset(ds.y_test, args.limit, seed=0) if args.limit < len(ds.y_test) else np.arange(len(ds.y_test))
    x, y = ds.x_test[idx], ds.y_test[idx]
    n = len(y)
    scale = len(ds.y_test) / n
    print(f"model: {model_desc} ({model.count_params():,} parameters); {n} test images; {os.cpu_count()} CPUs; "
          f"load average {load_before:.1f}")

    rows = {}
    cpu = {}
    if not args.skip_generation_only:
        c0 = time.process_time()
        t = time.perf_counter()
        per = {}
        for c in CORRUPTIONS:
            tc = time.perf_counter()
            for s in range(1, 6):
                corrupt(x, c, s)
            per[c] = time.perf_counter() - tc
        rows["generate_75_sets"] = time.perf_counter() - t
        cpu["generate_75_sets"] = time.process_time() - c0
        rows["generate_per_corruption"] = per

    # warm up the compiled forward and backward passes so compilation is not timed
    model.predict(x[: args.batch_size], batch_size=args.batch_size, verbose=0)
    attack_sweep(model, x[:32], y[:32], epsilons=(1.0,), steps=1, batch_size=args.batch_size)

    c0 = time.process_time()
    bench = corruption_benchmark(model, x, y, batch_size=args.batch_size, progress=True)
    cpu["corruption_benchmark"] = time.process_time() - c0
    rows["corruption_benchmark"] = bench["seconds"]
    rows["corruption_generate_in_benchmark"] = bench["generate_seconds"]
    rows["corruption_evaluate_in_benchmark"] = bench["evaluate_seconds"]
    c0 = time.process_time()
    attacks = attack_sweep(model, x, y, epsilons=(0, 1, 2, 4, 8), steps=10, batch_size=args.batch_size, progress=True)
    cpu["attacks_fgsm_pgd10"] = time.process_time() - c0
    rows["attacks_fgsm_pgd10"] = attacks["seconds"]
    total = rows["corruption_benchmark"] + rows["attacks_fgsm_pgd10"]
    load_after = os.getloadavg()[0]

    result = {
        "model": model_desc,
        "params": int(model.count_params()),
        "num_images_timed": n,
        "extrapolation_factor_to_10000": scale,
        "seconds": rows,
        "cpu_seconds": cpu,
        "total_cpu_seconds_timed": cpu["corruption_benchmark"] + cpu["attacks_fgsm_pgd10"],
        "uncontended_2core_estimate_extrapolated_to_10000": (cpu["corruption_benchmark"] + cpu["attacks_fgsm_pgd10"]) / 2 * scale,
        "total_seconds_timed": total,
        "total_seconds_extrapolated_to_10000": total * scale,
        "goal_seconds": 900,
        "meets_goal_extrapolated": bool(total * scale <= 900),
        "load_average_1min_before": load_before,
        "load_average_1min_after": load_after,
        "cpu_count": os.cpu_count(),
        "accuracy_on_timed_images": {
            "clean": bench["clean_accuracy"],
            "mean_corruption": bench["mean_corruption_accuracy"],
            "fgsm": dict(zip(map(str, attacks["epsilons"]), attacks["fgsm_accuracy"])),
            "pgd10": dict(zip(map(str, attacks["epsilons"]), attacks["pgd_accuracy"])),
        },
        "pgd_nested": attacks["pgd_nested"],
        "pgd_images_attacked": dict(zip(map(str, attacks["epsilons"]), attacks["pgd_images_attacked"])),
        "attack_self_checks_passed": attacks["all_checks_passed"],
        "environment": {k: v for k, v in environment_info().items() if k in ("backend", "cpu_count", "python", "packages")},
        "note": "seconds are wall-clock on this machine; a load average above the CPU count means other processes "
        "shared the cores and the wall-clock numbers are pessimistic. cpu_seconds is the CPU time this process used "
        "(all threads); half of it estimates the wall-clock time on 2 otherwise idle cores (a lower bound when a "
        "stage cannot keep both cores busy)",
    }
    write_json(args.out, result)
    print(f"\n{'stage':38s} {'timed (s)':>10s} {'x' + format(scale, '.1f') + ' (s)':>12s}")
    for k in ("generate_75_sets", "corruption_benchmark", "corruption_generate_in_benchmark",
              "corruption_evaluate_in_benchmark", "attacks_fgsm_pgd10"):
        if k in rows:
            print(f"{k:38s} {rows[k]:10.1f} {rows[k] * scale:12.1f}")
    print(f"{'total (benchmark + attacks)':38s} {total:10.1f} {total * scale:12.1f}   goal 900 s: "
          f"{'met' if total * scale <= 900 else 'NOT met'}; load average {load_before:.1f} -> {load_after:.1f}")
    est = result["uncontended_2core_estimate_extrapolated_to_10000"]
    print(f"CPU time {result['total_cpu_seconds_timed']:.1f} s -> estimate on 2 idle cores for 10,000 images: {est:.0f} s")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
