"""Time to accuracy: our default CPU recipe against the classic keras.io CIFAR-10 CNN recipe.

Both recipes train in ONE process on the same data and machine. They are interleaved (one epoch of
one, then one epoch of the other, ...) so that both see the same load on a shared, noisy machine;
each recipe's clock counts only its own training time (test-set evaluation after every epoch is
not counted). Reported: training time to 70/75/80/85% test accuracy, test accuracy at equal time
budgets, and the ratios. Written to ``artifacts/metrics/time_to_accuracy.json`` (+ a figure).

(a) ours: ``visiondl_keras.training.config.TrainConfig()`` (ResNet-9 width 24, SGD-Nesterov, OneCycle, label
    smoothing, pad-crop-flip, batch 512) with ``--ours-epochs`` epochs.
(b) peer: the keras.io / Keras examples ``cifar10_cnn`` recipe: 4 conv + 2 dense layers with dropout,
    RMSprop(lr 1e-4, decay 1e-6), batch 32, augmentation = random shifts of up to 10% (nearest
    fill) and horizontal flips, inputs scaled to [0, 1].

    python benchmarks/time_to_accuracy.py --budget-minutes 25 --ours-epochs 10
    python benchmarks/time_to_accuracy.py --quick     # a 1-minute smoke run on 2,000 images
"""

from __future__ import annotations

import argparse
import math
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import keras  # noqa: E402
import numpy as np  # noqa: E402

from visiondl_keras.data import (  # noqa: E402
    augment,  # noqa: E402
    load_cifar10,
    train_val_split,
)
from visiondl_keras.io import write_json  # noqa: E402
from visiondl_keras.models.scratch import build_scratch_model, model_summary  # noqa: E402
from visiondl_keras.reproducibility import environment_info, set_seed  # noqa: E402
from visiondl_keras.training.engine import TrainConfig, compile_model, fit_epoch, predict_logits  # noqa: E402

TARGETS = (0.70, 0.75, 0.80, 0.85)


def build_peer_model(num_classes: int = 10) -> keras.Model:
    """The keras.io CIFAR-10 CNN (Keras examples' cifar10_cnn.py), taking raw 0-255 images."""
    L = keras.layers
    inputs = keras.Input((32, 32, 3))
    x = L.Rescaling(1 / 255.0)(inputs)
    x = L.Conv2D(32, 3, padding="same", activation="relu")(x)
    x = L.Conv2D(32, 3, activation="relu")(x)
    x = L.MaxPooling2D(2)(x)
    x = L.Dropout(0.25)(x)
    x = L.Conv2D(64, 3, padding="same", activation="relu")(x)
    x = L.Conv2D(64, 3, activation="relu")(x)
    x = L.MaxPooling2D(2)(x)
    x = L.Dropout(0.25)(x)
    x = L.Flatten()(x)
    x = L.Dense(512, activation="relu")(x)
    x = L.Dropout(0.5)(x)
    outputs = L.Dense(num_classes, name="logits")(x)
    model = keras.Model(inputs, outputs, name="kerasio_cifar10_cnn")
    lr = keras.optimizers.schedules.InverseTimeDecay(1e-4, decay_steps=1, decay_rate=1e-6)
    model.compile(optimizer=keras.optimizers.RMSprop(learning_rate=lr),
                  loss=keras.losses.CategoricalCrossentropy(from_logits=True),
                  metrics=[keras.metrics.CategoricalAccuracy(name="accuracy")])
    return model


def peer_epoch(x, y, seed, epoch, num_classes=10):
    """The peer's augmentation: shifts up to 10% (3 px) with nearest fill, horizontal flips; shuffled."""
    rng = np.random.default_rng([seed, epoch, 1])
    order = rng.permutation(len(x))
    xs = augment.random_flip(augment.random_crop(x[order], padding=3, rng=rng, mode="edge"), rng)
    return xs.astype(np.float32), augment.one_hot(y[order], num_classes)


class Recipe:
    def __init__(self, name, model, epochs, batch_size, make_epoch):
        self.name, self.model, self.epochs, self.batch_size = name, model, epochs, batch_size
        self.make_epoch = make_epoch
        self.epoch = 0
        self.train_time = 0.0
        self.curve: list[tuple[float, float, int]] = []  # (training seconds, test accuracy, epoch)

    def done(self, budget_s):
        return self.epoch >= self.epochs or self.train_time >= budget_s

    def step(self, x_test, y_test, log):
        xs, ys = self.make_epoch(self.epoch)  # data preparation is not training time for either recipe
        t = time.perf_counter()
        fit_epoch(self.model, xs, ys, self.batch_size, progress=False)
        self.train_time += time.perf_counter() - t
        self.epoch += 1
        acc = float(np.mean(predict_logits(self.model, x_test).argmax(1) == y_test))
        self.curve.append((round(self.train_time, 2), acc, self.epoch))
        log(f"{self.name:<6} epoch {self.epoch:>3}  {self.train_time / 60:6.2f} min  test accuracy {acc:.4f}")


def time_to(curve, target):
    for secs, acc, _ in curve:
        if acc >= target:
            return secs
    return None


def acc_at(curve, secs):
    best = None
    for s, acc, _ in curve:
        if s <= secs:
            best = acc
    return best


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--budget-minutes", type=float, default=25.0, help="training-time budget per recipe")
    p.add_argument("--ours-epochs", type=int, default=10, help="epochs of our OneCycle recipe")
    p.add_argument("--peer-epochs", type=int, default=1000, help="cap on the peer's epochs (budget usually stops it)")
    p.add_argument("--limit", type=int, help="stratified subset of the training split")
    p.add_argument("--test-limit", type=int, help="stratified subset of the test split")
    p.add_argument("--quick", action="store_true", help="2,000 images, 1 minute per recipe, 2 epochs of ours")
    p.add_argument("--data", help="CIFAR-10 source (default: see load_cifar10)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", default="artifacts")
    args = p.parse_args(argv)
    if args.quick:
        args.limit, args.test_limit, args.budget_minutes, args.ours_epochs = 2000, 1000, 1.0, 2
    set_seed(args.seed)
    ds = load_cifar10(args.data, progress=False)
    splits = train_val_split(ds, val_size=5000, seed=args.seed, limit=args.limit, test_limit=args.test_limit)
    num_classes = len(splits.class_names)
    cfg = TrainConfig(epochs=args.ours_epochs, seed=args.seed)
    steps = math.ceil(len(splits.y_train) / cfg.batch_size)
    ours_model = build_scratch_model(cfg.arch, cfg.width, num_classes, splits.mean, splits.std)
    compile_model(ours_model, cfg, steps)
    policy = augment.get_policy(cfg.policy, num_classes=num_classes)
    ours = Recipe("ours", ours_model, cfg.epochs, cfg.batch_size,
                  lambda e: augment.augmented_epoch(splits.x_train, splits.y_train, policy, args.seed, e, cfg.batch_size))
    peer = Recipe("peer", build_peer_model(num_classes), args.peer_epochs, 32,
                  lambda e: peer_epoch(splits.x_train, splits.y_train, args.seed, e, num_classes))
    budget = args.budget_minutes * 60
    t0 = time.perf_counter()
    while not (ours.done(budget) and peer.done(budget)):
        for r in (ours, peer):
            if not r.done(budget):
                r.step(splits.x_test, splits.y_test, print)
    wall = time.perf_counter() - t0

    result = {"targets": {}, "budgets": {}, "recipes": {}}
    for r in (ours, peer):
        result["recipes"][r.name] = {"model": model_summary(r.model), "epochs_run": r.epoch,
                                     "train_time_s": round(r.train_time, 1), "curve": r.curve,
                                     "final_test_accuracy": r.curve[-1][1] if r.curve else None}
    print()
    print(f"{'target':>8}{'ours (min)':>12}{'peer (min)':>12}{'peer/ours':>12}")
    for t in TARGETS:
        a, b = time_to(ours.curve, t), time_to(peer.curve, t)
        if a is not None and b is not None:
            ratio, note = b / a, "measured"
        elif a is not None:
            ratio, note = peer.train_time / a, "peer did not reach it: ratio is a lower bound"
        else:
            ratio, note = None, "ours did not reach it"
        result["targets"][f"{t:.2f}"] = {"ours_s": a, "peer_s": b, "ratio": ratio, "note": note}

        def fmt(v):
            return f"{v / 60:.2f}" if v is not None else "-"

        rtxt = f"{'>=' if note.startswith('peer did not') else ''}{ratio:.1f}" if ratio else "-"
        print(f"{t:>8.2f}{fmt(a):>12}{fmt(b):>12}{rtxt:>12}")
    print()
    print(f"{'budget (min)':>12}{'ours acc':>10}{'peer acc':>10}")
    for m in (1, 2, 5, 10, 15, 20, 25, 30):
        if m * 60 > budget + 1:
            continue
        a, b = acc_at(ours.curve, m * 60), acc_at(peer.curve, m * 60)
        result["budgets"][str(m)] = {"ours": a, "peer": b}
        print(f"{m:>12}{(f'{a:.4f}' if a is not None else '-'):>10}{(f'{b:.4f}' if b is not None else '-'):>10}")
    jpeg = "jpeg" in splits.source.lower()
    result.update({
        "goals": {"peer_over_ours_at_0.75_at_least": 5.0, "ours_reaches_0.85_within_s": 1200},
        "budget_minutes_per_recipe": args.budget_minutes,
        "wall_clock_s": round(wall, 1),
        "data": {"description": "JPEG q75 mirror of CIFAR-10" if jpeg else splits.source, "fingerprint": splits.fingerprint,
                 "n_train": int(len(splits.y_train)), "n_test": int(len(splits.y_test))},
        "interleaved": True,
        "environment": environment_info(),
        "quick": bool(args.quick),
    })
    name = "time_to_accuracy_quick.json" if args.quick else "time_to_accuracy.json"
    out = Path(args.out) / "metrics" / name
    write_json(out, result)
    from visiondl_keras.reporting.plots import save_figure, time_to_accuracy_plot

    curves = {r.name: ([c[0] for c in r.curve], [c[1] for c in r.curve]) for r in (ours, peer)}
    save_figure(time_to_accuracy_plot(curves, TARGETS), Path(args.out) / "figures" / name.replace(".json", ".png"))
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
