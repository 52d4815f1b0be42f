"""Transfer learning vs training from scratch at equal wall-clock budgets (10 / 20 / 40 minutes).

Reads completed run directories (``metrics.json`` + ``history.csv``, as ``train`` and
``transfer-train`` write them) of the two families and answers, for each budget, two questions:

* **finished within the budget**: the best test accuracy of a run whose whole training took at most
  the budget (a recipe you could actually run in that time, its schedule completed);
* **anytime**: the best validation accuracy any run of the family had reached after that many minutes
  of training (a schedule still running then would usually be higher at that point with a shorter
  schedule, so this is a lower bound for the family).

Times are wall-clock seconds of training as each run recorded them (feature extraction and test
evaluation excluded). They depend on the machine and its load when each run trained, which the JSON
records per run: read the comparison as "which family is ahead", not to the minute.

    python benchmarks/transfer_vs_scratch.py --scratch RUN_DIR ... --transfer RUN_DIR ...
        [--budgets 10 20 40] [--out artifacts/metrics/transfer_vs_scratch.json]
        [--figure artifacts/figures/transfer_vs_scratch.png]

The scratch runs come from ``python -m visiondl_keras train --preset fast|94 ...`` (and
``ablate-recipe`` for its short half-width runs), the transfer runs from ``transfer-train`` and
``benchmarks/transfer_resolution.py``; each run's ``config.json`` holds its command.
"""

from __future__ import annotations

import argparse
import csv
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from visiondl_keras.data.cifar10 import source_name  # noqa: E402
from visiondl_keras.io import write_json  # noqa: E402
from visiondl_keras.runs import portable_command  # noqa: E402


def read_run(path: Path, family: str) -> dict:
    """One completed run: its test accuracy, training seconds and (time_s, val_accuracy) curve."""
    path = Path(path)
    metrics_file = path / "metrics.json"
    if not metrics_file.is_file():
        raise SystemExit(f"{path}: no metrics.json (not a completed run directory)")
    m = json.loads(metrics_file.read_text())
    rows = list(csv.DictReader(open(path / "history.csv")))
    curve = [(float(r["time_s"]), float(r["val_accuracy"])) for r in rows if r.get("val_accuracy")]
    config = json.loads((path / "config.json").read_text()) if (path / "config.json").is_file() else {}
    env = json.loads((path / "environment.json").read_text()) if (path / "environment.json").is_file() else {}
    name = m.get("model") or f"{config.get('arch', 'scratch')} {config.get('widths') or config.get('width', '')}"
    data = dict(m.get("data") or {})
    if data.get("source"):
        data["source"] = source_name(data["source"])  # the file name, not where it lies on this machine
    command = portable_command(config.get("command"))  # the run's folder as the repository's runs/ would hold it
    return {"family": family, "run": path.name, "model": str(name), "test_accuracy": float(m["test_accuracy"]),
            "train_minutes": float(m["train_time_s"]) / 60, "epochs": len(rows), "curve": curve,
            "command": command, "data": data,
            "load_average_at_start": env.get("load_average")}


def at_budget(runs: list[dict], family: str, minutes: float) -> dict:
    """The two answers (see the module docstring) for one family and one budget."""
    mine = [r for r in runs if r["family"] == family]
    finished = [r for r in mine if r["train_minutes"] <= minutes]
    best = max(finished, key=lambda r: r["test_accuracy"]) if finished else None
    anytime = [(acc, r["run"]) for r in mine for t, acc in r["curve"] if t <= minutes * 60]
    top = max(anytime) if anytime else None
    return {"finished_test_accuracy": best["test_accuracy"] if best else None,
            "finished_run": best["run"] if best else None,
            "finished_minutes": round(best["train_minutes"], 1) if best else None,
            "anytime_val_accuracy": top[0] if top else None, "anytime_run": top[1] if top else None}


def plot(runs: list[dict], budgets: list[float], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from visiondl_keras.reporting.plots import save_figure

    fig, ax = plt.subplots(figsize=(7.0, 4.2))
    colors = {"scratch": "tab:blue", "transfer": "tab:orange"}
    seen = set()
    for r in runs:
        label = r["family"] if r["family"] not in seen else None
        seen.add(r["family"])
        ax.plot([c[0] / 60 for c in r["curve"]], [c[1] for c in r["curve"]], "-", color=colors[r["family"]], alpha=0.75, label=label)
        ax.plot([r["train_minutes"]], [r["test_accuracy"]], "o", color=colors[r["family"]])
    for b in budgets:
        ax.axvline(b, color="grey", ls=":", lw=1)
    ax.set_xlabel("training minutes (wall-clock, 2 CPU cores)")
    ax.set_ylabel("validation accuracy (lines), test accuracy (dots)")
    ax.set_title("Transfer vs scratch at equal wall-clock")
    ax.set_ylim(0.4, 1.0)
    ax.grid(alpha=0.3)
    ax.legend(loc="lower right")
    save_figure(fig, path)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--scratch", nargs="+", required=True, help="completed scratch run directories")
    p.add_argument("--transfer", nargs="+", required=True, help="completed transfer run directories")
    p.add_argument("--budgets", nargs="+", type=float, default=[10, 20, 40], help="minutes")
    p.add_argument("--out", default="artifacts/metrics/transfer_vs_scratch.json")
    p.add_argument("--figure", default="artifacts/figures/transfer_vs_scratch.png")
    args = p.parse_args(argv)

    runs = [read_run(d, "scratch") for d in args.scratch] + [read_run(d, "transfer") for d in args.transfer]
    table = []
    for b in args.budgets:
        s, t = at_budget(runs, "scratch", b), at_budget(runs, "transfer", b)
        fs, ft = s["finished_test_accuracy"], t["finished_test_accuracy"]
        winner = None if fs is None and ft is None else ("scratch" if (fs or 0) >= (ft or 0) else "transfer")
        table.append({"budget_minutes": b, "scratch": s, "transfer": t, "winner_finished": winner})

    def fmt(v):
        return f"{v:.4f}" if v is not None else "-"

    print(f"{'budget':>7} | {'scratch finished':>26} | {'transfer finished':>26} | {'anytime val s/t':>15} | winner")
    for row in table:
        s, t = row["scratch"], row["transfer"]
        sf = f"{fmt(s['finished_test_accuracy'])} ({s['finished_minutes'] or '-'} min)"
        tf = f"{fmt(t['finished_test_accuracy'])} ({t['finished_minutes'] or '-'} min)"
        print(f"{row['budget_minutes']:>5.0f} m | {sf:>26} | {tf:>26} | "
              f"{fmt(s['anytime_val_accuracy'])}/{fmt(t['anytime_val_accuracy'])} | {row['winner_finished']}")
    data = next((r["data"] for r in runs if r.get("data")), None)
    write_json(args.out, {
        "what": "transfer vs scratch at equal wall-clock training budgets",
        "budgets_minutes": args.budgets, "table": table, "data": data,
        "runs": [{k: v for k, v in r.items() if k != "curve"} | {"curve_points": len(r["curve"])} for r in runs],
        "note": "times are wall-clock training seconds recorded by each run on a shared 2-core machine",
    })
    plot(runs, args.budgets, Path(args.figure))
    print(f"wrote {args.out} and {args.figure}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
