"""Is the input pipeline a bottleneck? Images/s of each augmentation policy beside the model's training rate.

Both are measured in the same process, on the same machine, one after the other; the ratio column
(pipeline rate / training rate) is what matters on a shared, noisy machine: above 1 the pipeline keeps up.

    python benchmarks/augment_throughput.py [--batches 10] [--width 24] [--out artifacts/metrics]
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402

from visiondl_keras.data import augment  # noqa: E402
from visiondl_keras.io import write_json  # noqa: E402
from visiondl_keras.reproducibility import environment_info  # noqa: E402


def policy_rate(name: str, x: np.ndarray, y: np.ndarray, batch_size: int, batches: int) -> float:
    pol = augment.get_policy(name, seed=0)
    pol(x[:batch_size], y[:batch_size], np.random.default_rng(0))  # warm-up (builds RandAugment)
    t = time.perf_counter()
    for b in range(batches):
        i = (b * batch_size) % (len(x) - batch_size)
        pol(x[i : i + batch_size], y[i : i + batch_size], np.random.default_rng(b))
    return batches * batch_size / (time.perf_counter() - t)


def training_rate(width: int, batch_size: int, batches: int) -> float:
    from visiondl_keras.models.scratch import build_scratch_model
    from visiondl_keras.training.config import TrainConfig
    from visiondl_keras.training.optimizers import compile_model
    model = build_scratch_model("resnet9", width)
    compile_model(model, TrainConfig(width=width, batch_size=batch_size), steps_per_epoch=100)
    rng = np.random.default_rng(0)
    x = rng.integers(0, 255, (batch_size, 32, 32, 3)).astype(np.float32)
    yy = augment.one_hot(rng.integers(0, 10, batch_size), 10)
    model.train_on_batch(x, yy)
    t = time.perf_counter()
    for _ in range(batches):
        model.train_on_batch(x, yy)
    return batches * batch_size / (time.perf_counter() - t)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--batches", type=int, default=10)
    p.add_argument("--batch-size", type=int, default=512)
    p.add_argument("--width", type=int, default=24, help="width of the default recipe's ResNet-9")
    p.add_argument("--out", default="artifacts/metrics")
    args = p.parse_args(argv)
    rng = np.random.default_rng(0)
    # synthetic uint8 images: augmentation cost does not depend on content
    x = rng.integers(0, 256, (args.batch_size * 4, 32, 32, 3), dtype=np.uint8)
    y = rng.integers(0, 10, len(x))
    train = training_rate(args.width, args.batch_size, max(3, args.batches // 2))
    rows = []
    for name in augment.POLICIES:
        rate = policy_rate(name, x, y, args.batch_size, args.batches)
        rows.append({"policy": name, "images_per_s": round(rate, 1), "ratio_to_training": round(rate / train, 2)})
    print(f"training rate, resnet9 width {args.width}, batch {args.batch_size}: {train:.0f} images/s")
    print(f"{'policy':<22}{'images/s':>12}{'x training':>12}")
    for r in rows:
        print(f"{r['policy']:<22}{r['images_per_s']:>12.0f}{r['ratio_to_training']:>12.2f}")
    out = Path(args.out) / "augment_throughput.json"
    write_json(out, {"training_images_per_s": round(train, 1), "model": f"resnet9 width {args.width}",
                     "batch_size": args.batch_size, "rows": rows, "environment": environment_info()})
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
