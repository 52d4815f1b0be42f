"""Input resolution for transfer learning: accuracy and cost at 96 / 128 / 160 px on a fixed epoch budget.

CIFAR-10 images are 32 px; an ImageNet backbone was trained at 224 px, so its filters expect objects
several times larger. Upsampling the input helps the pretrained features, but every step costs
roughly ``(size / 96)^2`` more. This script trains the reference transfer recipe
(:func:`visiondl_keras.training.transfer.train_reference`: head epochs on cached features, then full
fine-tuning with flips and pad-crops) for each (backbone, input size) with the SAME number of epochs,
so accuracy differences come from resolution alone and do not depend on the machine's load; the cost
is reported as wall-clock and as CPU seconds of training (compare them as ratios within one run).

Each configuration is a resumable run directory under ``--runs-dir``; completed runs are read, not
retrained. Writes ``artifacts/metrics/transfer_resolution.json`` and
``artifacts/figures/transfer_resolution.png`` (test accuracy vs training minutes per backbone).

    python benchmarks/transfer_resolution.py [--sizes 96 128 160]
        [--backbones mobilenet_v2:0.35 mobilenet:0.25] [--head-epochs 2] [--finetune-epochs 2]
        [--limit 20000] [--runs-dir runs/transfer-resolution]
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from visiondl_keras.io import write_json  # noqa: E402


def _backbone(text: str) -> tuple[str, float]:
    name, _, alpha = text.partition(":")
    return name, float(alpha) if alpha else None


def run_one(splits, backbone, alpha, size, args) -> dict:
    import csv

    from visiondl_keras.training.transfer import train_reference

    run = Path(args.runs_dir) / f"{backbone}_a{alpha}_{size}px"
    m = train_reference(splits, run, backbone, alpha, size, "full", args.head_epochs, args.finetune_epochs,
                        None, 64, args.lr, args.backbone_lr_multiplier, seed=args.seed, progress=not args.quiet,
                        command=f"benchmarks/transfer_resolution.py ({backbone} {alpha} {size}px)",
                        log=(lambda *a, **k: None) if args.quiet else print)
    rows = list(csv.DictReader(open(run / "history.csv")))
    tune = [r for r in rows if r["stage"] != "head"]
    cpu = float(rows[-1]["cpu_s"]) if rows and rows[-1].get("cpu_s") else None
    return {"backbone": backbone, "alpha": alpha, "input_size": size, "test_accuracy": m["test_accuracy"],
            "best_val_accuracy": m["best_val_accuracy"], "train_minutes": m["train_time_s"] / 60,
            "train_cpu_minutes": cpu / 60 if cpu else None,
            "finetune_epoch_s": [float(r["epoch_time_s"]) for r in tune if r.get("epoch_time_s")],
            "params": m["params"], "run_dir": str(run), "data": m["data"]}


def _cpu_or_wall(r: dict) -> float:
    """CPU minutes of training when recorded (a busy machine stretches wall-clock, not CPU time), else wall-clock."""
    return r["train_cpu_minutes"] or r["train_minutes"]


def plot(results: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from visiondl_keras.reporting.plots import save_figure

    fig, ax = plt.subplots(figsize=(6.4, 4.0))
    for key in dict.fromkeys((r["backbone"], r["alpha"]) for r in results):
        sel = sorted((r for r in results if (r["backbone"], r["alpha"]) == key), key=lambda r: r["input_size"])
        minutes = [_cpu_or_wall(r) for r in sel]
        ax.plot(minutes, [r["test_accuracy"] for r in sel], "o-", label=f"{key[0]} α{key[1]}")
        for m, r in zip(minutes, sel):
            ax.annotate(f"{r['input_size']} px", (m, r["test_accuracy"]),
                        textcoords="offset points", xytext=(4, -10), fontsize=9)
    cpu = all(r.get("train_cpu_minutes") for r in results)
    ax.set_xlabel("training CPU minutes (all threads; less load-dependent than wall-clock)" if cpu
                  else "training minutes (wall-clock, 2 CPU cores)")
    ax.set_ylabel("test accuracy")
    ax.set_title("Input resolution: same epochs, more pixels")
    ax.grid(alpha=0.3)
    ax.legend()
    save_figure(fig, path)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--sizes", nargs="+", type=int, default=[96, 128, 160])
    p.add_argument("--backbones", nargs="+", default=["mobilenet_v2:0.35", "mobilenet:0.25"],
                   help="NAME:ALPHA of the offline backbones")
    p.add_argument("--head-epochs", type=int, default=2, help="stage 1, on cached features (default %(default)s)")
    p.add_argument("--finetune-epochs", type=int, default=2, help="stage 2, full fine-tuning (default %(default)s)")
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--backbone-lr-multiplier", type=float, default=0.3)
    p.add_argument("--limit", type=int, default=20000, help="stratified training subset (default %(default)s)")
    p.add_argument("--test-limit", type=int, default=None, help="stratified test subset (default: all)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--data", default=None)
    p.add_argument("--runs-dir", default="runs/transfer-resolution")
    p.add_argument("--out", default="artifacts/metrics/transfer_resolution.json")
    p.add_argument("--figure", default="artifacts/figures/transfer_resolution.png")
    p.add_argument("--quiet", action="store_true")
    args = p.parse_args(argv)

    from visiondl_keras.data import load_cifar10, train_val_split
    from visiondl_keras.reproducibility import environment_info

    splits = train_val_split(load_cifar10(args.data, progress=not args.quiet), val_size=5000, seed=args.seed,
                             limit=args.limit, test_limit=args.test_limit)
    results = []
    for text in args.backbones:
        backbone, alpha = _backbone(text)
        for size in args.sizes:
            r = run_one(splits, backbone, alpha, size, args)
            results.append(r)
            print(f"{backbone} α{alpha} {size} px: test {r['test_accuracy']:.4f}, {r['train_minutes']:.1f} min",
                  flush=True)
    print(f"\n{'backbone':<16} {'px':>4} {'test acc':>9} {'val acc':>8} {'train min':>10} {'CPU min':>8} "
          f"{'s / ft epoch':>13}")
    for r in results:
        ft = sum(r["finetune_epoch_s"]) / len(r["finetune_epoch_s"]) if r["finetune_epoch_s"] else float("nan")
        cpu = f"{r['train_cpu_minutes']:.1f}" if r["train_cpu_minutes"] else "-"
        print(f"{r['backbone'] + ' a' + str(r['alpha']):<16} {r['input_size']:>4} {r['test_accuracy']:>9.4f} "
              f"{r['best_val_accuracy']:>8.4f} {r['train_minutes']:>10.1f} {cpu:>8} {ft:>13.0f}")
    env = environment_info()
    write_json(args.out, {
        "what": "reference transfer recipe at several input sizes, same epochs for all",
        "settings": {"head_epochs": args.head_epochs, "finetune_epochs": args.finetune_epochs, "lr": args.lr,
                     "backbone_lr_multiplier": args.backbone_lr_multiplier, "train_images": len(splits.y_train),
                     "strategy": "full", "batch_size": 64, "seed": args.seed},
        "data": results[0]["data"] if results else None,
        "machine": {"cpu_count": env.get("cpu_count"), "cpu": env.get("cpu"), "load_average": os.getloadavg()[0]},
        "note": "wall-clock minutes depend on the machine's load; epochs are equal, so accuracies do not",
        "results": results,
    })
    plot(results, Path(args.figure))
    print(f"wrote {args.out} and {args.figure}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
