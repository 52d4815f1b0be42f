"""The fast recipe's goals: test accuracy and training time of presets over several seeds.

Trains (or, when a run directory is already complete, reads) one run per (preset, precision, seed)
under ``--runs-dir`` and prints a table of test accuracy without and with TTA, training minutes and
images/s, with mean and spread per (preset, precision), and the goals beside them:

* preset ``94``: mean test accuracy >= 94.0% (floor 93.5%) in <= 30 minutes of training;
* preset ``fast``: >= 90% in <= 8 minutes of training.

Training minutes depend on the machine and its load (both recorded in the JSON: CPU model, bf16
instructions, load average at the end); compare precisions by the ratio of their images/s measured
on the same machine.

    python benchmarks/fast_recipe.py --presets 94 --seeds 0 1 2 [--precisions mixed_bfloat16 float32]
        [--runs-dir runs/fast-recipe] [--out artifacts/metrics/fast_recipe.json]
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402

from visiondl_keras.data.cifar10 import source_name  # noqa: E402
from visiondl_keras.io import write_json  # noqa: E402
from visiondl_keras.reproducibility import cpu_info, environment_info  # noqa: E402
from visiondl_keras.training.config import preset_config  # noqa: E402
from visiondl_keras.training.scratch import train  # noqa: E402

GOALS = {"94": {"accuracy": 0.94, "floor": 0.935, "minutes": 30.0}, "fast": {"accuracy": 0.90, "minutes": 8.0}}


def run_one(preset: str, precision: str, seed: int, runs_dir: Path, data: str | None, quiet: bool) -> dict:
    run = runs_dir / f"{preset}-{precision}-seed{seed}"
    cfg = preset_config(preset, precision=precision, seed=seed, data=data)
    m = train(cfg, run, progress=not quiet, log=(lambda *a, **k: None) if quiet else print)
    level = str(cfg.tta_level)
    return {"preset": preset, "precision": precision, "seed": seed, "run_dir": str(run),
            "test_accuracy": m["test_accuracy"], "test_accuracy_tta": m["tta"][level]["test_accuracy"],
            "tta_level": cfg.tta_level, "train_minutes": m["train_time_s"] / 60,
            "images_per_second": m["images_per_second"], "epochs": m["epochs"],
            "data": {**m["data"], "source": source_name(m["data"]["source"])}}


def summarize(runs: list[dict]) -> list[dict]:
    rows = []
    for key in dict.fromkeys((r["preset"], r["precision"]) for r in runs):
        sel = [r for r in runs if (r["preset"], r["precision"]) == key]
        acc = np.array([r["test_accuracy"] for r in sel])
        tta = np.array([r["test_accuracy_tta"] for r in sel])
        minutes = np.array([r["train_minutes"] for r in sel])
        goal = GOALS.get(key[0], {})
        rows.append({
            "preset": key[0], "precision": key[1], "seeds": [r["seed"] for r in sel],
            "test_accuracy_mean": float(acc.mean()), "test_accuracy_std": float(acc.std(ddof=1)) if len(sel) > 1 else 0.0,
            "test_accuracy_tta_mean": float(tta.mean()), "train_minutes_mean": float(minutes.mean()),
            "images_per_second_mean": float(np.mean([r["images_per_second"] for r in sel])),
            "goal": goal,
            "accuracy_goal_met": bool(goal) and float(tta.mean()) >= goal["accuracy"],
            "time_goal_met": bool(goal) and float(minutes.max()) <= goal["minutes"],
        })
    return rows


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--presets", nargs="+", default=["94", "fast"])
    p.add_argument("--precisions", nargs="+", default=["mixed_bfloat16"])
    p.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    p.add_argument("--runs-dir", default="runs/fast-recipe")
    p.add_argument("--data")
    p.add_argument("--out", default="artifacts/metrics/fast_recipe.json")
    p.add_argument("--quiet", action="store_true")
    args = p.parse_args(argv)
    runs = [run_one(preset, precision, seed, Path(args.runs_dir), args.data, args.quiet)
            for preset in args.presets for precision in args.precisions for seed in args.seeds]
    rows = summarize(runs)
    print(f"{'preset':<7} {'precision':<15} {'seeds':<8} {'test acc':>16} {'with TTA':>9} {'train min':>9} "
          f"{'img/s':>7}  goal")
    for r in rows:
        goal = r["goal"]
        goal_text = (f">= {goal['accuracy']:.1%} in <= {goal['minutes']:.0f} min: "
                     f"{'met' if r['accuracy_goal_met'] and r['time_goal_met'] else 'not met'}") if goal else ""
        print(f"{r['preset']:<7} {r['precision']:<15} {len(r['seeds']):<8} "
              f"{r['test_accuracy_mean']:>8.4f} ± {r['test_accuracy_std']:.4f} {r['test_accuracy_tta_mean']:>9.4f} "
              f"{r['train_minutes_mean']:>9.1f} {r['images_per_second_mean']:>7.0f}  {goal_text}")
    env = environment_info()
    write_json(args.out, {"rows": rows, "runs": runs, "data": runs[0]["data"] if runs else None,
                          "cpu": cpu_info(), "load_average_at_end": list(os.getloadavg()), "environment": env})
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
