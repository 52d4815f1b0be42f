"""Full-budget transfer recipes side by side: which one became the reference model, and how far apart they are.

Reads completed ``transfer-train`` run directories (``config.json``, ``metrics.json``, ``history.csv``)
trained for the reference model's budget and tabulates, per run: backbone and input size, the recipe
options that differ between runs (label smoothing, frozen bottom layers, budget), training minutes,
fine-tuning epochs, best validation accuracy, test accuracy of the checkpoint alone and with test-time
augmentation. The run whose command produced ``artifacts/metrics/transfer_reference.json`` is marked as
the published one. The spread of the test accuracies says how much the recipe choices moved the result
compared with the goal (91%, floor 90%, of the checkpoint alone).

    python benchmarks/transfer_candidates.py RUN_DIR [RUN_DIR ...]
        [--reference artifacts/metrics/transfer_reference.json]
        [--out artifacts/metrics/transfer_candidates.json] [--figure artifacts/figures/transfer_candidates.png]

Each run comes from ``python -m visiondl_keras transfer-train ... --budget-minutes M``; its
``config.json`` holds the command (shown with the run folder as the repository's ``runs/`` would hold it).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from visiondl_keras.io import write_json  # noqa: E402
from visiondl_keras.runs import RunDir, portable_command  # noqa: E402
from visiondl_keras.training.transfer_compare import TRANSFER_FLOOR, TRANSFER_TARGET  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
from transfer_vs_scratch import read_run  # noqa: E402


def candidate(path: Path, published_command: str | None) -> dict:
    """One run's row (see the module docstring); ``curve`` holds (training s, validation accuracy)."""
    run = read_run(path, "transfer")
    folder = RunDir(path)
    config, metrics = folder.read("config.json"), folder.read("metrics.json")
    stages = [r.get("stage") for r in folder.read_history()]  # "head", then the strategy's name
    options = [f"label smoothing {config['label_smoothing']}" if config.get("label_smoothing") else "no label smoothing",
               f"bottom {config['freeze_bottom']} layers frozen" if config.get("freeze_bottom") else "all layers trained",
               f"budget {config['budget_s'] / 60:.0f} min" if config.get("budget_s") else "no budget"]
    return {"run": run["run"], "model": run["model"], "strategy": config.get("strategy"), "options": ", ".join(options),
            "train_minutes": round(run["train_minutes"], 1), "finetune_epochs": sum(s != "head" for s in stages),
            "best_val_accuracy": metrics["best_val_accuracy"], "test_accuracy": metrics["test_accuracy"],
            "test_accuracy_tta": metrics.get("test_accuracy_tta"), "tta_level": metrics.get("tta_level", 0),
            "published": published_command is not None and run["command"] == published_command,
            "command": run["command"], "data": run["data"], "curve": run["curve"]}


def summarize(rows: list[dict]) -> dict:
    """Best and spread of the test accuracies (alone and with TTA), and whether the goal or floor was met."""
    alone = [r["test_accuracy"] for r in rows]
    tta = [r["test_accuracy_tta"] for r in rows if r["test_accuracy_tta"] is not None]
    best = max(rows, key=lambda r: r["test_accuracy"])
    return {"runs": len(rows), "best_run": best["run"], "best_test_accuracy": best["test_accuracy"],
            "test_accuracy_spread": max(alone) - min(alone),
            "best_test_accuracy_tta": max(tta) if tta else None,
            "target_test_accuracy": TRANSFER_TARGET, "floor_test_accuracy": TRANSFER_FLOOR,
            "target_reached": best["test_accuracy"] >= TRANSFER_TARGET,
            "floor_reached": best["test_accuracy"] >= TRANSFER_FLOOR}


def plot(rows: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from visiondl_keras.reporting.plots import save_figure

    fig, ax = plt.subplots(figsize=(7.2, 4.4))
    for i, r in enumerate(rows):
        color = f"C{i}"
        label = f"{r['model']}, {r['options'].rsplit(', budget', 1)[0]}" + (" (published)" if r["published"] else "")
        ax.plot([t / 60 for t, _ in r["curve"]], [a for _, a in r["curve"]], "-", color=color, alpha=0.8, label=label)
        ax.plot([r["train_minutes"]], [r["test_accuracy"]], "o", color=color)
        if r["test_accuracy_tta"] is not None:
            ax.plot([r["train_minutes"]], [r["test_accuracy_tta"]], "^", color=color)
    ax.axhline(TRANSFER_TARGET, color="black", ls="--", lw=1)
    ax.axhline(TRANSFER_FLOOR, color="grey", ls=":", lw=1)
    ax.set_xlabel("training minutes (wall-clock, 2 CPU cores)")
    ax.set_ylabel("validation (lines); test: alone (o), TTA (^)")
    ax.set_title(f"Full-budget transfer recipes (goal {TRANSFER_TARGET:.0%} dashed, floor {TRANSFER_FLOOR:.0%} dotted)")
    ax.set_ylim(0.75, 0.93)
    ax.grid(alpha=0.3)
    ax.legend(loc="lower right", fontsize=7)
    save_figure(fig, path)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("runs", nargs="+", help="completed transfer-train run directories")
    p.add_argument("--reference", default="artifacts/metrics/transfer_reference.json",
                   help="the published reference summary (its command marks the published run)")
    p.add_argument("--out", default="artifacts/metrics/transfer_candidates.json")
    p.add_argument("--figure", default="artifacts/figures/transfer_candidates.png")
    args = p.parse_args(argv)

    ref = Path(args.reference)
    published = portable_command(json.loads(ref.read_text()).get("command")) if ref.is_file() else None
    rows = [candidate(Path(d), published) for d in args.runs]
    summary = summarize(rows)
    print(f"{'run':<18} {'model':<24} {'min':>5} {'ft ep':>5} {'val':>7} {'test':>7} {'TTA':>7}  options")
    for r in rows:
        tta = f"{r['test_accuracy_tta']:.4f}" if r["test_accuracy_tta"] is not None else "-"
        print(f"{r['run']:<18} {r['model']:<24} {r['train_minutes']:>5.1f} {r['finetune_epochs']:>5} "
              f"{r['best_val_accuracy']:.4f} {r['test_accuracy']:.4f} {tta:>7}  {r['options']}"
              + ("  (published)" if r["published"] else ""))
    print(f"best alone {summary['best_test_accuracy']:.4f} ({summary['best_run']}), spread "
          f"{summary['test_accuracy_spread']:.4f}; goal {TRANSFER_TARGET:.0%} reached: {summary['target_reached']}, "
          f"floor {TRANSFER_FLOOR:.0%}: {summary['floor_reached']}")
    write_json(args.out, {
        "what": "full-budget transfer-train recipes compared (test accuracy of each checkpoint alone and with TTA)",
        "summary": summary, "data": rows[0]["data"],
        "runs": [{k: v for k, v in r.items() if k != "curve"} | {"curve_points": len(r["curve"])} for r in rows],
        "note": "one seed per recipe; times are wall-clock training seconds recorded by each run on a shared 2-core machine",
    })
    plot(rows, Path(args.figure))
    print(f"wrote {args.out} and {args.figure}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
