"""Ablations: the same model and budget with one thing changed, over several seeds (lessons 2 and 3).

* :func:`ablate_augment`: each augmentation policy;
* :func:`ablate_recipe`: the fast recipe with one piece removed at a time.

Augmentation ablation details:

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
from visiondl_keras.data.cifar10 import describe_data, load_cifar10
from visiondl_keras.data.splits import Splits, train_val_split
from visiondl_keras.errors import ConfigError
from visiondl_keras.io import atomic_write_text, write_json
from visiondl_keras.reporting.plots import ablation_bars, sample_grid, save_figure
from visiondl_keras.training.config import ABLATION_POLICIES as DEFAULT_POLICIES
from visiondl_keras.training.config import RECIPE_PIECES, TrainConfig
from visiondl_keras.training.scratch import train


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
    data = describe_data(splits)
    data_desc = data["description"]
    budget = (f"{base.arch} width {base.width}, {base.epochs} epochs, {len(splits.y_train)} training images, "
              f"{len(splits.y_test)} test images, batch {base.batch_size}")
    report = {
        "rows": rows,
        "runs": results,
        "config": {k: v for k, v in base.to_dict().items() if k not in ("policy", "seed")},
        "seeds": list(seeds),
        "budget": budget,
        "data": data,
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


def ablate_recipe(base: TrainConfig, pieces=tuple(RECIPE_PIECES), seeds=(0, 1), runs_dir="runs/ablation-recipe",
                  out_dir="runs/ablation-recipe", splits: Splits | None = None, progress: bool = True,
                  log=print) -> dict:
    """Train the fast recipe ``base`` in full and without each of ``pieces``, for each seed.

    Args:
        base: a fast-recipe configuration (``preset_config("fast", ...)``) with ``tta_level`` > 0.
        pieces: names from ``RECIPE_PIECES``.
        seeds: seeds (the data split stays that of ``base.seed``).
        runs_dir: where the run directories go (resumable).
        out_dir: ``metrics/recipe_ablation.json`` and ``.md`` are written below it.
        splits: data to use (default: loaded per ``base``).

    Returns:
        The dict written to ``recipe_ablation.json``: rows ``{removed, mean, std, n, accuracies}``
        (accuracy with the base's TTA level, except for ``tta``) and the runs.

    Raises:
        ConfigError: an unknown piece, no seeds, or a base that is not the fast recipe.
    """
    unknown = [p for p in pieces if p not in RECIPE_PIECES]
    if unknown:
        raise ConfigError(f"unknown recipe pieces {unknown}; choose from {list(RECIPE_PIECES)}.")
    if base.arch != "airbench" or not seeds:
        raise ConfigError("ablate_recipe needs the fast recipe (arch airbench) and at least one seed.")
    if splits is None:
        splits = train_val_split(load_cifar10(base.data, progress=progress), base.val_size, base.seed, base.limit,
                                 base.test_limit)
    level = str(base.tta_level)
    results = []
    for removed in ("none", *pieces):
        for seed in seeds:
            if removed == "tta":
                full = next(r for r in results if r["removed"] == "none" and r["seed"] == seed)
                results.append({**full, "removed": "tta", "test_accuracy": full["test_accuracy_no_tta"]})
                continue
            overrides = RECIPE_PIECES.get(removed, {})
            cfg = TrainConfig.from_dict({**base.to_dict(), **overrides, "seed": int(seed)})
            run = Path(runs_dir) / f"without-{removed}-seed{seed}"
            log(f"[ablation] without {removed}, seed {seed} -> {run}")
            m = train(cfg, run, splits=splits, progress=progress, log=log)
            results.append({"removed": removed, "seed": int(seed), "test_accuracy": m["tta"][level]["test_accuracy"],
                            "test_accuracy_no_tta": m["test_accuracy"], "train_time_s": m["train_time_s"],
                            "run_dir": str(run)})
    rows = summarize([{**r, "policy": r["removed"]} for r in results])
    for row in rows:
        row["removed"] = row.pop("policy")
    budget = (f"airbench widths {base.widths}, {base.epochs} epochs, {len(splits.y_train)} training images, "
              f"{len(splits.y_test)} test images, TTA level {level} (except 'tta')")
    report = {"rows": rows, "runs": results, "seeds": list(seeds), "budget": budget,
              "config": {k: v for k, v in base.to_dict().items() if k != "seed"}, "data": describe_data(splits)}
    out = Path(out_dir)
    write_json(out / "metrics" / "recipe_ablation.json", report)
    lines = [f"Fast-recipe ablation: test accuracy (mean ± std over seeds) on the {report['data']['description']}; "
             f"{budget}.", "", "| removed | test accuracy | seeds | per seed |", "|---|---|---|---|"]
    for r in rows:
        per = ", ".join(f"{a:.4f}" for a in r["accuracies"])
        lines.append(f"| {r['removed']} | {r['mean']:.4f} ± {r['std']:.4f} | {r['n']} | {per} |")
    atomic_write_text(out / "metrics" / "recipe_ablation.md", "\n".join(lines) + "\n")
    return report
