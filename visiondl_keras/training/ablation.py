"""Augmentation ablation: the same model and budget under each policy, over several seeds.

``python -m visiondl_keras ablate-augment`` trains one run per (policy, seed) with
:func:`visiondl_keras.training.scratch.train` (each run directory is resumable, so an interrupted ablation
continues where it stopped), then writes

* ``artifacts/metrics/augment_ablation.json`` and ``.md``: test accuracy mean +- std per policy;
* ``artifacts/figures/augment_ablation.png``: the same as a bar chart;
* ``artifacts/figures/augment_policies.png``: what each policy does to a few training images.
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np

from visiondl_keras.data.augment import POLICIES
from visiondl_keras.data.cifar10 import load_cifar10
from visiondl_keras.data.splits import Splits, train_val_split
from visiondl_keras.errors import ConfigError
from visiondl_keras.io import atomic_write_text, write_json
from visiondl_keras.reporting.plots import ablation_bars, sample_grid, save_figure
from visiondl_keras.training.config import TrainConfig
from visiondl_keras.training.scratch import train

DEFAULT_POLICIES = ("none", "baseline", "randaugment", "mixup", "cutmix", "randaugment+cutmix")


def summarize(results: list[dict]) -> list[dict]:
    """Rows ``{policy, mean, std, n, accuracies}`` in first-seen policy order (std: sample std, ddof=1)."""
    rows = []
    for policy in dict.fromkeys(r["policy"] for r in results):
        accs = [r["test_accuracy"] for r in results if r["policy"] == policy]
        std = float(np.std(accs, ddof=1)) if len(accs) > 1 else 0.0
        rows.append({"policy": policy, "mean": float(np.mean(accs)), "std": std, "n": len(accs), "accuracies": accs})
    return rows


def markdown_table(rows: list[dict], data_description: str, budget: str) -> str:
    lines = [
        f"Augmentation ablation: test accuracy (mean ± std over seeds) on the {data_description}; {budget}.",
        "",
        "| policy | test accuracy | seeds | per seed |",
        "|---|---|---|---|",
    ]
    best = max(r["mean"] for r in rows)
    for r in rows:
        mark = " **(best)**" if r["mean"] == best else ""
        per = ", ".join(f"{a:.4f}" for a in r["accuracies"])
        lines.append(f"| {r['policy']}{mark} | {r['mean']:.4f} ± {r['std']:.4f} | {r['n']} | {per} |")
    return "\n".join(lines) + "\n"


def ablate_augment(base: TrainConfig, policies=DEFAULT_POLICIES, seeds=(0, 1), runs_dir="runs/ablation",
                   out_dir="artifacts", splits: Splits | None = None, progress: bool = True, log=print) -> dict:
    """Train ``base`` once per (policy, seed) and write the ablation table and figures.

    Args:
        base: the configuration shared by every run (its ``policy`` and ``seed`` are replaced).
        policies: policy names (see ``visiondl_keras.data.augment.POLICIES``).
        seeds: seeds; the data split stays that of ``base.seed`` so that only the policy changes.
        runs_dir: where the run directories go (resumable).
        out_dir: ``metrics/`` and ``figures/`` are written below it.
        splits: data to use (default: loaded per ``base``).

    Returns:
        The dict written to ``augment_ablation.json``.
    """
    unknown = [p for p in policies if p not in POLICIES]
    if unknown:
        raise ConfigError(f"unknown policies {unknown}; choose from {list(POLICIES)}.")
    if len(seeds) < 1:
        raise ConfigError("give at least one seed.")
    if splits is None:
        splits = train_val_split(load_cifar10(base.data, progress=progress), base.val_size, base.seed, base.limit,
                                 base.test_limit)
    results = []
    t0 = time.perf_counter()
    for policy in policies:
        for seed in seeds:
            cfg = TrainConfig.from_dict({**base.to_dict(), "policy": policy, "seed": int(seed)})
            run = Path(runs_dir) / f"{policy.replace('+', '_')}-seed{seed}"
            log(f"[ablation] {policy} seed {seed} -> {run}")
            m = train(cfg, run, splits=splits, progress=progress, log=log)
            results.append({"policy": policy, "seed": int(seed), "test_accuracy": m["test_accuracy"],
                            "val_accuracy": m["val_accuracy"], "train_time_s": m["train_time_s"], "run_dir": str(run)})
    rows = summarize(results)
    data_desc = ("JPEG q75 mirror of CIFAR-10" if "jpeg" in splits.source.lower() else f"data from {splits.source}")
    budget = (f"{base.arch} width {base.width}, {base.epochs} epochs, {len(splits.y_train)} training images, "
              f"{len(splits.y_test)} test images, batch {base.batch_size}")
    report = {
        "rows": rows,
        "runs": results,
        "config": {k: v for k, v in base.to_dict().items() if k not in ("policy", "seed")},
        "seeds": list(seeds),
        "budget": budget,
        "data": {"source": splits.source, "fingerprint": splits.fingerprint, "description": data_desc,
                 "n_train": int(len(splits.y_train)), "n_test": int(len(splits.y_test))},
        "wall_clock_s": round(time.perf_counter() - t0, 1),
    }
    out = Path(out_dir)
    write_json(out / "metrics" / "augment_ablation.json", report)
    atomic_write_text(out / "metrics" / "augment_ablation.md", markdown_table(rows, data_desc, budget))

    save_figure(ablation_bars(rows, title=f"augmentation ablation ({budget})"), out / "figures" / "augment_ablation.png")
    rows_fig = [sample_grid(splits.x_train[:6], splits.y_train[:6], p, n_images=6, n_versions=2,
                            class_names=splits.class_names) for p in policies]
    for p, fig in zip(policies, rows_fig):
        save_figure(fig, out / "figures" / "augment_policies" / f"{p.replace('+', '_')}.png", dpi=100)
    return report
