"""Per-epoch speed-up of training the head on cached features vs end-to-end with a frozen backbone.

Both train the same head on the same images (no augmentation): end-to-end runs the frozen backbone
on every batch of every epoch; the cached variant runs it once (feature extraction) and then trains
the head on the stored features. The script measures, in one process on the same machine:

* seconds per end-to-end epoch (the last of ``--epochs``, so graph tracing is excluded),
* seconds of the one-off feature extraction (cache disabled, so it is really computed; a second pass,
  so graph tracing is excluded here too),
* seconds per head epoch on the features (the last epoch),

each as wall-clock and as this process's CPU seconds (all threads; on a busy shared machine the
wall-clock ratios mostly measure the other jobs),

and reports the per-epoch speed-up, the break-even number of epochs, and the speed-up over 10 epochs
including the extraction. It prints a table and writes ``artifacts/metrics/feature_cache_benchmark.json``.

Usage:
    nice -n 15 python benchmarks/feature_cache.py --data ../shared/data/cifar10-jpeg.tar.gz --n 2000
"""

from __future__ import annotations

import argparse
import os
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def _epoch_times(model, x, y, epochs, batch_size):
    import numpy as np

    from visiondl_keras.training.engine import fit_epoch
    from visiondl_keras.training.transfer import compile_transfer_model

    compile_transfer_model(model, 1e-3)
    y_onehot = np.eye(10, dtype=np.float32)[y]
    times = []
    for _ in range(epochs):  # the shared engine's epoch loop, as the transfer recipe trains
        t, c = time.perf_counter(), time.process_time()
        fit_epoch(model, x, y_onehot, batch_size, progress=False)
        times.append((time.perf_counter() - t, time.process_time() - c))
    return times[-1]  # (wall, cpu) of the last epoch


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", default=None, help="CIFAR-10 source (default: see load_cifar10)")
    parser.add_argument("--backbones", default="mobilenet_v2:0.35,mobilenet:0.25")
    parser.add_argument("--input-size", type=int, default=96)
    parser.add_argument("--n", type=int, default=2000, help="training images (stratified subset)")
    parser.add_argument("--epochs", type=int, default=2, help="epochs timed per variant (the last one counts)")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--out", default="artifacts/metrics/feature_cache_benchmark.json")
    args = parser.parse_args(argv)

    from visiondl_keras.data.cifar10 import load_cifar10
    from visiondl_keras.data.splits import train_val_split
    from visiondl_keras.io import write_json
    from visiondl_keras.models.backbones import build_transfer_model, head_model
    from visiondl_keras.models.features import extract_features
    from visiondl_keras.reproducibility import environment_info, set_seed
    from visiondl_keras.training.transfer_compare import parse_backbones

    set_seed(0)
    ds = load_cifar10(args.data, progress=False)
    splits = train_val_split(ds, val_size=0, limit=args.n, seed=0)
    x, y = splits.x_train, splits.y_train
    rows = []
    for backbone, alpha in parse_backbones(args.backbones):
        model = build_transfer_model(backbone, "frozen", input_size=args.input_size, alpha=alpha, dropout=0.0)
        e2e = _epoch_times(model, x, y, args.epochs, args.batch_size)
        extract_features(model, x, cache=False, progress=False)  # untimed: traces the graphs, like the first epochs
        start, start_cpu = time.perf_counter(), time.process_time()
        feats = extract_features(model, x, cache=False, progress=False)
        extraction = (time.perf_counter() - start, time.process_time() - start_cpu)
        head = _epoch_times(head_model(model), feats, y, args.epochs, args.batch_size)
        row = {"model": model.name, "images": int(len(x))}
        for i, clock in enumerate(("wall", "cpu")):  # cpu: this process's CPU seconds, robust to a busy machine
            e2e_epoch, ext, head_epoch = e2e[i], extraction[i], head[i]
            row.update({
                f"{clock}_end_to_end_epoch_s": round(e2e_epoch, 3),
                f"{clock}_extraction_s": round(ext, 3),
                f"{clock}_head_epoch_s": round(head_epoch, 4),
                f"{clock}_per_epoch_speedup": round(e2e_epoch / head_epoch, 1),
                f"{clock}_break_even_epochs": round(ext / max(e2e_epoch - head_epoch, 1e-9), 2),
                f"{clock}_speedup_over_10_epochs": round(10 * e2e_epoch / (ext + 10 * head_epoch), 2),
            })
        rows.append(row)
    header = ["model", "images"] + [f"{c}_{k}" for c in ("wall", "cpu") for k in (
        "end_to_end_epoch_s", "extraction_s", "head_epoch_s", "per_epoch_speedup", "break_even_epochs",
        "speedup_over_10_epochs")]
    print(" | ".join(header))
    for r in rows:
        print(" | ".join(str(r[h]) for h in header))
    write_json(args.out, {
        "benchmark": "feature_cache",
        "description": __doc__.split("\n\n")[0],
        "settings": {"input_size": args.input_size, "n": args.n, "epochs_timed": args.epochs, "batch_size": args.batch_size,
                     "data": splits.source, "fingerprint": splits.fingerprint},
        "note": "2-core CPU shared with other jobs; wall-clock seconds depend on their load, CPU seconds much less.",
        "rows": rows,
        "environment": environment_info(),
    })
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
