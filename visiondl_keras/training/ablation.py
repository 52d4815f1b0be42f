"""Ablations: the same model and budget with one thing changed, over several seeds (lessons 2 and 3).

* :func:`ablate_augment`: each augmentation policy;
* :func:`ablate_recipe`: the fast recipe with one piece removed at a time.

Augmentation ablation details:

``python -m visiondl_keras ablate-augment`` (``--recipe fast``: the fast recipe of lesson 3 at half width
for 10 epochs on the full training split, written as ``augment_ablation_fast.*``) trains one run per (policy, seed) with
:func:`visiondl_keras.training.scratch.train` (each run directory is resumable, so an interrupted ablation
continues where it stopped), then writes

* ``artifacts/metrics/augment_ablation.json`` and ``.md``: test accuracy mean +- std per policy, and the
  train-test gap (accuracy on un-augmented training images minus test accuracy);
* ``artifacts/figures/augment_ablation.png``: the same as a bar chart, ``augment_ablation_gap.png``: train
  vs test accuracy per run;
* ``figures/augment_policies/<policy>.png`` (below ``--out``): what each policy does to a few training images.
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
from visiondl_keras.reporting.plots import ablation_bars, ablation_gap_bars, sample_grid, save_figure
from visiondl_keras.training.config import ABLATION_POLICIES as DEFAULT_POLICIES
from visiondl_keras.training.config import FAST_ABLATION_POLICIES, RECIPE_PIECES, TrainConfig
from visiondl_keras.training.scratch import train


def summarize(results: list[dict]) -> list[dict]:
    """Rows ``{policy, mean, std, n, accuracies}`` in first-seen policy order (std: sample std, ddof=1).

    When every run of a policy has a ``train_accuracy`` (un-augmented training images), its row also has
    ``train_mean`` and ``gap_mean`` (train minus test accuracy, mean over seeds).
    """
    rows = []
    for policy in dict.fromkeys(r["policy"] for r in results):
        runs = [r for r in results if r["policy"] == policy]
        accs = [r["test_accuracy"] for r in runs]
        std = float(np.std(accs, ddof=1)) if len(accs) > 1 else 0.0
        row = {"policy": policy, "mean": float(np.mean(accs)), "std": std, "n": len(accs), "accuracies": accs}
        if all(r.get("train_accuracy") is not None for r in runs):
            row["train_mean"] = float(np.mean([r["train_accuracy"] for r in runs]))
            row["gap_mean"] = row["train_mean"] - row["mean"]
        rows.append(row)
    return rows


def markdown_table(rows: list[dict], data_description: str, budget: str) -> str:
    """The ablation as a markdown table (with train accuracy and train-test gap when the rows have them)."""
    gaps = all("gap_mean" in r for r in rows)
    extra_head, extra_rule = (" train accuracy | train − test gap |", "---|---|") if gaps else ("", "")
    lines = [
        f"Augmentation ablation: test accuracy (mean ± std over seeds) on the {data_description}; {budget}."
        + (" Train accuracy: the best checkpoint on un-augmented training images." if gaps else ""),
        "",
        f"| policy | test accuracy |{extra_head} seeds | per seed |",
        f"|---|---|{extra_rule}---|---|",
    ]
    best = max(r["mean"] for r in rows)
    for r in rows:
        mark = " **(best)**" if r["mean"] == best else ""
        per = ", ".join(f"{a:.4f}" for a in r["accuracies"])
        extra = f" {r['train_mean']:.4f} | {100 * r['gap_mean']:+.2f} points |" if gaps else ""
        lines.append(f"| {r['policy']}{mark} | {r['mean']:.4f} ± {r['std']:.4f} |{extra} {r['n']} | {per} |")
    return "\n".join(lines) + "\n"


def _budget(base: TrainConfig, splits: Splits) -> str:
    net = f"fast recipe (airbench widths {base.widths})" if base.arch == "airbench" else f"{base.arch} width {base.width}"
    return (f"{net}, {base.epochs} epochs, {len(splits.y_train)} training images, {len(splits.y_test)} test images, "
            f"batch {base.batch_size}")


def ablate_augment(base: TrainConfig, policies=DEFAULT_POLICIES, seeds=(0, 1), runs_dir="runs/ablation",
                   out_dir="artifacts", splits: Splits | None = None, progress: bool = True, log=print,
                   name: str = "augment_ablation") -> dict:
    """Train ``base`` once per (policy, seed) and write the ablation table and figures.

    Args:
        base: the configuration shared by every run (its ``policy`` and ``seed`` are replaced).
        policies: policy names (see ``visiondl_keras.data.augment.POLICIES``; for the fast recipe also its
            own names such as ``"altflip+translate+cutmix"``, see ``FAST_ABLATION_POLICIES``).
        seeds: seeds; the data split stays that of ``base.seed`` so that only the policy changes.
        runs_dir: where the run directories go (resumable).
        out_dir: ``metrics/`` and ``figures/`` are written below it.
        splits: data to use (default: loaded per ``base``).
        name: file stem of the outputs (``metrics/<name>.json``/``.md``, ``figures/<name>.png``,
            ``figures/<name>_gap.png``).

    Returns:
        The dict written to ``<name>.json``.
    """
    unknown = []
    for policy in policies:
        try:
            TrainConfig.from_dict({**base.to_dict(), "policy": policy}).validate()
        except ConfigError:
            unknown.append(policy)
    if unknown:
        raise ConfigError(f"unknown policies {unknown}; choose from {list(POLICIES)}"
                          + (f" or the fast recipe's {list(FAST_ABLATION_POLICIES)}" if base.arch == "airbench" else "")
                          + ".")
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
            train_acc = m.get("train_accuracy")
            results.append({"policy": policy, "seed": int(seed), "test_accuracy": m["test_accuracy"],
                            "train_accuracy": train_acc,
                            "gap": None if train_acc is None else train_acc - m["test_accuracy"],
                            "val_accuracy": m["val_accuracy"], "train_time_s": m["train_time_s"], "run_dir": str(run)})
    rows = summarize(results)
    data = describe_data(splits)
    data_desc = data["description"]
    budget = _budget(base, splits)
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
    write_json(out / "metrics" / f"{name}.json", report)
    atomic_write_text(out / "metrics" / f"{name}.md", markdown_table(rows, data_desc, budget))

    save_figure(ablation_bars(rows, title=f"augmentation ablation ({budget})"), out / "figures" / f"{name}.png")
    if all("gap_mean" in r for r in rows):
        save_figure(ablation_gap_bars(results, title=f"train (un-augmented) vs test accuracy ({budget})"),
                    out / "figures" / f"{name}_gap.png")
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
