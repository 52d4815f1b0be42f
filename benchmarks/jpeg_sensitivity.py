"""How much does JPEG compression cost the fast recipe? A controlled estimate for the JPEG mirror.

The offline mirror of CIFAR-10 (``cifar10-jpeg.tar.gz``) went through JPEG at quality 75 once, and the
original release is not available offline to compare with. This benchmark measures the next best
thing: it compresses every image of the mirror (training, validation and test images alike) once
more and trains the same short fast-recipe run on each version of the data.

Re-encoding at the same quality on the same 8x8 block grid changes almost nothing (JPEG is nearly
idempotent there), so the images are compressed on a shifted grid: each image is reflect-padded
(``offset`` pixels on the top and left, the rest to a multiple of 16 on the other sides), encoded, decoded
and cropped back. Its blocks and its 2x2 colour subsampling then fall across the edges of the first
encoding, so detail is lost again, though less than the first time (the first compression already
removed the finest detail; the PSNR column shows how much changed). The drop from the mirror as it
is to one more such compression at quality 75 is therefore a lower estimate of what the mirror's own
compression cost the recipe; other qualities give the slope around it.

    python benchmarks/jpeg_sensitivity.py [--qualities none 75 50] [--seeds 0] [--epochs 8]
        [--widths 32 128 128] [--runs-dir runs/jpeg-sensitivity] [--out artifacts/metrics/jpeg_sensitivity.json]

Prints a table (quality, PSNR against the mirror, test accuracy per seed, mean, drop) and writes JSON.
"""

from __future__ import annotations

import argparse
import dataclasses
import io
import os
import sys
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402
from PIL import Image  # noqa: E402

GRID_OFFSET = 3  # pixels: neither the 8x8 DCT blocks nor the 2x2 chroma subsampling line up with the first encoding


def reencode(images: np.ndarray, quality: int | None, offset: int = GRID_OFFSET) -> np.ndarray:
    """``images`` (uint8, N x H x W x 3) compressed once more with JPEG at ``quality`` on a grid shifted by
    ``offset`` pixels (PIL's encoder, 4:2:0 chroma subsampling as in the mirror); ``None``: unchanged.

    Example:
        >>> x = np.random.default_rng(0).integers(0, 256, (2, 32, 32, 3), dtype=np.uint8)
        >>> reencode(x, 75).shape
        (2, 32, 32, 3)
    """
    if quality is None:
        return images
    n, h, w, _ = images.shape
    pad_h, pad_w = (-(h + offset)) % 16, (-(w + offset)) % 16
    out = np.empty_like(images)
    for i, img in enumerate(images):
        padded = np.pad(img, ((offset, pad_h), (offset, pad_w), (0, 0)), mode="reflect")
        buf = io.BytesIO()
        Image.fromarray(padded).save(buf, format="JPEG", quality=int(quality), subsampling="4:2:0")
        decoded = np.asarray(Image.open(io.BytesIO(buf.getvalue())).convert("RGB"))
        out[i] = decoded[offset : offset + h, offset : offset + w]
    return out


def psnr(a: np.ndarray, b: np.ndarray) -> float | None:
    """Peak signal-to-noise ratio (dB) between two uint8 image stacks (None when identical)."""
    mse = float(np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2))
    return None if mse == 0 else float(10 * np.log10(255.0**2 / mse))


def reencoded_splits(splits, quality: int | None):
    """``splits`` with every image re-encoded (:func:`reencode`) and the training statistics recomputed."""
    if quality is None:
        return splits
    x_train, x_val, x_test = (reencode(x, quality) for x in (splits.x_train, splits.x_val, splits.x_test))
    flat = x_train.reshape(-1, 3).astype(np.float64)
    return dataclasses.replace(
        splits, x_train=x_train, x_val=x_val, x_test=x_test, mean=flat.mean(0).astype(np.float32),
        std=flat.std(0).astype(np.float32), fingerprint=f"{splits.fingerprint}+jpeg{quality}@{GRID_OFFSET}",
        info={**splits.info, "reencoded_quality": quality, "grid_offset": GRID_OFFSET})


def summarize(runs: list[dict]) -> list[dict]:
    """One row per quality: mean test accuracy over seeds and its drop from the mirror as it is."""
    rows = []
    for q in dict.fromkeys(r["quality"] for r in runs):
        sel = [r for r in runs if r["quality"] == q]
        acc = np.array([r["test_accuracy"] for r in sel])
        rows.append({"quality": q, "psnr_db": sel[0]["psnr_db"], "seeds": [r["seed"] for r in sel],
                     "test_accuracies": acc.tolist(), "test_accuracy_mean": float(acc.mean()),
                     "test_accuracy_std": float(acc.std(ddof=1)) if len(acc) > 1 else None})
    base = next((r for r in rows if r["quality"] is None), None)
    for r in rows:
        r["drop_vs_mirror"] = None if base is None else float(base["test_accuracy_mean"] - r["test_accuracy_mean"])
    return rows


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--qualities", nargs="+", default=["none", "75", "50"],
                   help="JPEG qualities of the extra compression; none: the mirror as it is")
    p.add_argument("--seeds", nargs="+", type=int, default=[0])
    p.add_argument("--epochs", type=int, default=8)
    p.add_argument("--widths", nargs=3, type=int, default=[32, 128, 128])
    p.add_argument("--limit", type=int, default=None, help="stratified training subset (tests)")
    p.add_argument("--test-limit", type=int, default=None, help="stratified test subset (tests)")
    p.add_argument("--runs-dir", default="runs/jpeg-sensitivity")
    p.add_argument("--data")
    p.add_argument("--out", default="artifacts/metrics/jpeg_sensitivity.json")
    p.add_argument("--quiet", action="store_true")
    args = p.parse_args(argv)

    from visiondl_keras.data import load_cifar10, train_val_split
    from visiondl_keras.data.cifar10 import describe_data
    from visiondl_keras.io import write_json
    from visiondl_keras.reproducibility import cpu_info
    from visiondl_keras.training.config import preset_config
    from visiondl_keras.training.scratch import train

    qualities = [None if q.lower() == "none" else int(q) for q in args.qualities]
    log = (lambda *a, **k: None) if args.quiet else print
    ds = load_cifar10(args.data, progress=not args.quiet)
    runs = []
    for seed in args.seeds:
        base = train_val_split(ds, seed=seed, limit=args.limit, test_limit=args.test_limit)
        for q in qualities:
            splits = reencoded_splits(base, q)
            cfg = preset_config("fast", widths=list(args.widths), epochs=args.epochs, seed=seed, tta_level=0,
                                data=args.data, limit=args.limit, test_limit=args.test_limit)
            run = Path(args.runs_dir) / f"{'mirror' if q is None else f'q{q}'}-seed{seed}"
            m = train(cfg, run, splits=splits, progress=not args.quiet, log=log)
            runs.append({"quality": q, "seed": seed, "run_dir": run.as_posix(), "test_accuracy": m["test_accuracy"],
                         "train_minutes": m["train_time_s"] / 60,
                         "psnr_db": psnr(np.concatenate([splits.x_train, splits.x_test]),
                                         np.concatenate([base.x_train, base.x_test]))})
            log(f"quality {q}: seed {seed} test accuracy {m['test_accuracy']:.4f}")
    rows = summarize(runs)
    data = describe_data(base)
    result = {
        "what": "fast recipe trained and tested on the mirror compressed once more with JPEG on a shifted grid",
        "settings": {"preset": "fast", "widths": list(args.widths), "epochs": args.epochs, "tta_level": 0,
                     "grid_offset": GRID_OFFSET, "subsampling": "4:2:0"},
        "data": data, "machine": {"cpu_count": os.cpu_count(), "cpu": cpu_info()},
        "rows": rows, "runs": runs,
    }
    write_json(args.out, result)
    print(f"\n{'quality':>8} {'PSNR dB':>8} {'test acc':>9} {'drop':>7}  seeds   ({data['n_test']:,} test images, "
          f"{data['description']})")
    for r in rows:
        drop = "" if r["drop_vs_mirror"] is None else f"{r['drop_vs_mirror']:+.2%}"
        db = "–" if r["psnr_db"] is None else f"{r['psnr_db']:.1f}"
        print(f"{'mirror' if r['quality'] is None else r['quality']:>8} {db:>8} "
              f"{r['test_accuracy_mean']:>9.2%} {drop:>7}  {r['seeds']}")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
