"""Time to accuracy: the fast recipe against the ResNet-9 recipe and the classic keras.io CIFAR-10 CNN.

All three recipes train in ONE process on the same data and machine, interleaved (one epoch of each
in turn), so they see the same load on a shared, noisy machine; each recipe's clock counts only its
own training steps (preparing an epoch's augmented arrays and the test-set evaluation after every
epoch are not counted). Reported: training time to 75/85/90/93/94% test accuracy, test accuracy at
equal budgets, and the peer/ours ratios. Written to ``OUT/metrics/time_to_accuracy.json`` (+ a figure).

(a) ours: the fast recipe, ``preset_config("fast")`` (airbench-style network, alternating flip +
    translate, ScaledSGD, triangular schedule, lookahead), test accuracy without TTA. Its schedule is
    planned for a length (the triangular learning rate and the lookahead decay end with the last
    epoch), so it runs as a family: the preset's ``--ours-epochs`` schedule at full width plus short
    "sprint" schedules (``--sprint-epochs``, at ``--sprint-widths`` and ``--sprint-batch-size``)
    planned for the early targets. Each is its own run (``ours_8ep``, ``ours_2ep_w24_b512``, ...), timed
    like the others; "ours" at a target is the fastest member of the family that measured it
    (``ours_run`` says which);
(b) resnet9: the ResNet-9 / OneCycle recipe (``preset_config("resnet9")``) on ``--resnet9-epochs``;
(c) peer: the keras.io / Keras examples ``cifar10_cnn`` recipe: 4 conv + 2 dense layers with dropout,
    RMSprop(lr 1e-4, decay 1e-6), batch 32, random shifts of up to 10% (nearest fill) and
    horizontal flips, inputs scaled to [0, 1], float32.

A recipe that the budget stopped before its last epoch and that did not reach a target gets a time
*extrapolated* from the last half of its curve (accuracy linear in log-time), marked
``"extrapolated"`` in the JSON, when the target is at most 6 points above the best accuracy it
measured; other targets it missed (and every target a recipe missed after finishing its schedule)
stay ``null``. ``--resummarize JSON`` recomputes the tables from the curves a previous run stored.

    python benchmarks/time_to_accuracy.py --budget-minutes 15
    python benchmarks/time_to_accuracy.py --quick     # a smoke run on 2,000 images
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import keras  # noqa: E402
import numpy as np  # noqa: E402

from visiondl_keras.data import augment, describe_data, load_cifar10, train_val_split  # noqa: E402
from visiondl_keras.io import write_json  # noqa: E402
from visiondl_keras.models.scratch import model_summary  # noqa: E402
from visiondl_keras.reproducibility import environment_info, set_seed  # noqa: E402
from visiondl_keras.training.callbacks import Lookahead  # noqa: E402
from visiondl_keras.training.config import preset_config, resolve_precision  # noqa: E402
from visiondl_keras.training.engine import fit_epoch, steps_per_epoch  # noqa: E402
from visiondl_keras.training.optimizers import compile_model  # noqa: E402
from visiondl_keras.training.scratch import build_model, epoch_data_fn  # noqa: E402

TARGETS = (0.75, 0.85, 0.90, 0.93, 0.94)
BUDGETS_MIN = (1, 2, 5, 10, 15, 20, 30)
MAX_EXTRAPOLATION = 0.06  # extrapolate a curve at most this far above its best measured accuracy
GOAL_RATIO_AT_75 = 15.0  # the peer needs at least this many times longer than ours (floor 10)


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


def family(recipe) -> str:
    """The recipe family of a run: ``"ours"`` for every schedule of the fast recipe, else its name."""
    return getattr(recipe, "family", None) or ("ours" if recipe.name.startswith("ours") else recipe.name)


def peer_epoch(x, y, seed, epoch, num_classes=10):
    """The peer's augmentation: shifts up to 10% (3 px) with nearest fill, horizontal flips; shuffled."""
    rng = np.random.default_rng([seed, epoch, 1])
    order = rng.permutation(len(x))
    xs = augment.random_flip(augment.random_crop(x[order], padding=3, rng=rng, mode="edge"), rng)
    return xs.astype(np.float32), augment.one_hot(y[order], num_classes)


class Recipe:
    """One recipe's model, epoch function, callbacks and measured curve."""

    def __init__(self, name, model, epochs, batch_size, make_epoch, callbacks=(), family=None):
        self.name, self.model, self.epochs, self.batch_size = name, model, epochs, batch_size
        self.family = family or name
        self.make_epoch, self.callbacks = make_epoch, list(callbacks)
        for cb in self.callbacks:
            cb.set_model(model)
        self.epoch = 0
        self.train_time = 0.0
        self.curve: list[tuple[float, float, int]] = []  # (training seconds, test accuracy, epoch)

    def done(self, budget_s):
        return self.epoch >= self.epochs or self.train_time >= budget_s

    def step(self, x_test, y_test, log):
        xs, ys = self.make_epoch(self.epoch)  # data preparation is not training time for any recipe
        t = time.perf_counter()
        fit_epoch(self.model, xs, ys, self.batch_size, progress=False, callbacks=self.callbacks)
        self.train_time += time.perf_counter() - t
        self.epoch += 1
        logits = self.model.predict(x_test, batch_size=1000, verbose=0)
        acc = float(np.mean(np.asarray(logits).argmax(1) == y_test))
        self.curve.append((round(self.train_time, 2), acc, self.epoch))
        log(f"{self.name:<8} epoch {self.epoch:>3}  {self.train_time / 60:6.2f} min  test accuracy {acc:.4f}")


def time_to(curve, target):
    """Training seconds at the first epoch whose test accuracy reached ``target`` (None if never)."""
    for secs, acc, _ in curve:
        if acc >= target:
            return secs
    return None


def extrapolated_time_to(curve, target):
    """Seconds at which the trend of the curve's last half (accuracy linear in log-time) reaches ``target``.

    None when there are fewer than 3 points, the trend is flat or falling, or the target lies more
    than ``MAX_EXTRAPOLATION`` above the best accuracy measured (curves flatten; a log-linear trend
    would promise any accuracy in time).
    """
    pts = curve[len(curve) // 2:]
    if len(pts) < 3 or target > max(p[1] for p in curve) + MAX_EXTRAPOLATION:
        return None
    t = np.log([p[0] for p in pts])
    a = np.array([p[1] for p in pts])
    slope, intercept = np.polyfit(t, a, 1)
    if slope <= 1e-6:
        return None
    return float(np.exp((target - intercept) / slope))


def acc_at(curve, secs):
    """Test accuracy of the last epoch that ended within ``secs`` of training."""
    best = None
    for s, acc, _ in curve:
        if s <= secs:
            best = acc
    return best


def with_policy(precision, build):
    """Build a model under a dtype policy (then restore float32)."""
    keras.mixed_precision.set_global_policy(precision)
    try:
        return build()
    finally:
        keras.mixed_precision.set_global_policy("float32")


def config_recipe(name, config, splits, family=None):
    """A Recipe for a package TrainConfig (the fast recipe or the ResNet-9 one)."""
    precision = resolve_precision(config.precision)
    steps = steps_per_epoch(len(splits.y_train), config.batch_size)

    def build():
        return compile_model(build_model(config, splits), config, steps, precision)

    model = with_policy(precision, build)
    callbacks = [Lookahead(config.epochs * steps)] if config.lookahead else []
    recipe = Recipe(name, model, config.epochs, config.batch_size, epoch_data_fn(config, splits), callbacks, family)
    recipe.precision = precision
    return recipe


def sprint_configs(epochs, widths, batch_size, seed=0) -> dict:
    """The fast recipe's short schedules, by run name (``ours_2ep_w32_b512``): one per entry of
    ``epochs``, each planned for that many epochs, at conv-group ``widths`` and ``batch_size``."""
    return {f"ours_{e}ep_w{widths[0]}_b{batch_size}":
            preset_config("fast", epochs=e, widths=list(widths), batch_size=batch_size, seed=seed) for e in epochs}


def target_rows(recipes, log=print):
    """Per target: each run's time (measured or extrapolated), ours (the fastest run of the fast
    recipe's family that measured it, ``ours_run``) and the ratios to ours."""
    rows = {}
    log(f"{'target':>8}" + "".join(f"{r.name + ' (min)':>{_width(r)}}" for r in recipes)
        + f"{'ours (min)':>12}{'peer/ours':>11}{'resnet9/ours':>14}")
    for target in TARGETS:
        row, cells = {}, []
        for r in recipes:
            secs, how = time_to(r.curve, target), "measured"
            if secs is None and getattr(r, "finished", False):
                how = "not reached"  # its schedule ended: its curve does not go on rising
            elif secs is None:
                secs, how = extrapolated_time_to(r.curve, target), "extrapolated"
                if secs is None:
                    how = "not reached"
            row[f"{r.name}_s"], row[f"{r.name}_how"] = (round(secs, 1) if secs else None), how
            cells.append("-" if secs is None else f"{'~' if how == 'extrapolated' else ''}{secs / 60:.2f}")
        ours_runs = [r for r in recipes if family(r) == "ours"]
        measured = [(row[f"{r.name}_s"], r.name) for r in ours_runs if row[f"{r.name}_how"] == "measured"]
        if measured:
            row["ours_s"], row["ours_run"] = min(measured)
            row["ours_how"] = "measured"
        else:
            guessed = [(row[f"{r.name}_s"], r.name) for r in ours_runs
                       if row[f"{r.name}_how"] == "extrapolated" and row[f"{r.name}_s"]]
            row["ours_s"], row["ours_run"] = min(guessed) if guessed else (None, None)
            row["ours_how"] = "extrapolated" if guessed else "not reached"
        ours = row["ours_s"] if row["ours_how"] == "measured" else None
        for other, key in (("peer", "ratio"), ("resnet9", "ratio_resnet9")):
            row[key] = row[f"{other}_s"] / ours if ours and row.get(f"{other}_s") else None
        row["note"] = ", ".join(f"{r.name} {row[f'{r.name}_how']}" for r in recipes)
        rows[f"{target:.2f}"] = row
        log(f"{target:>8.2f}" + "".join(f"{c:>{_width(r)}}" for c, r in zip(cells, recipes))
            + f"{('-' if ours is None else f'{ours / 60:.2f}'):>12}"
            + "".join(f"{(f'{row[k]:.1f}x' if row[k] else '-'):>{w}}" for k, w in (("ratio", 11), ("ratio_resnet9", 14))))
    return rows


def _width(recipe) -> int:
    return max(12, len(recipe.name) + 8)


def budget_rows(recipes, budget_s, log=print):
    """Test accuracy of each run at equal training budgets (the last epoch that ended within it);
    ``ours``: the best run of the fast recipe's family within it."""
    rows = {}
    log(f"{'budget (min)':>12}" + "".join(f"{r.name:>{max(10, len(r.name) + 2)}}" for r in recipes) + f"{'ours':>10}")
    for m in BUDGETS_MIN:
        if m * 60 > budget_s + 1:
            continue
        rows[str(m)] = {r.name: acc_at(r.curve, m * 60) for r in recipes}
        ours = [a for r in recipes if family(r) == "ours" and (a := rows[str(m)][r.name]) is not None]
        rows[str(m)]["ours"] = max(ours) if ours else None  # the best schedule of the family within the budget
        log(f"{m:>12}" + "".join(f"{(f'{a:.4f}' if a is not None else '-'):>{max(10, len(name) + 2)}}"
                                 for name, a in rows[str(m)].items()))
    return rows


def summarize(recipes, budget_s: float) -> dict:
    """``targets``, ``budgets`` and ``goals`` of a result, from the recipes' curves (printed as tables)."""
    targets = target_rows(recipes)
    print()
    budgets = budget_rows(recipes, budget_s)
    at75 = targets["0.75"]["ratio"]
    print(f"\npeer / ours at 75%: {f'{at75:.1f}x' if at75 else '-'} (goal >= {GOAL_RATIO_AT_75:.0f}x)")
    return {"targets": targets, "budgets": budgets,
            "goals": {"peer_over_ours_at_0.75_at_least": GOAL_RATIO_AT_75, "met": bool(at75 and at75 >= GOAL_RATIO_AT_75)}}


def resummarize(path: Path) -> int:
    """Recompute ``targets`` and ``budgets`` of a stored result from its curves (same rules as a run)."""
    from types import SimpleNamespace

    result = json.loads(Path(path).read_text())
    budget_s = result["budget_minutes_per_recipe"] * 60

    def finished(rec):  # its epochs ran out before the budget did (older results lack epochs_planned)
        if "epochs_planned" in rec:
            return rec["epochs_run"] >= rec["epochs_planned"]
        return rec["train_time_s"] < budget_s

    recipes = [SimpleNamespace(name=name, curve=[tuple(c) for c in rec["curve"]], finished=finished(rec),
                               family=rec.get("family"))
               for name, rec in result["recipes"].items()]
    result.update(summarize(recipes, budget_s))
    write_json(path, result)
    print(f"rewrote {path}")
    return 0


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--budget-minutes", type=float, default=15.0, help="training-time budget per recipe (default 15)")
    p.add_argument("--ours-epochs", type=int, default=8, help="epochs of the fast recipe (default 8, preset fast)")
    p.add_argument("--sprint-epochs", type=int, nargs="*", default=[2, 3],
                   help="also run the fast recipe with schedules planned for these epochs (default 2 3; none: "
                        "pass the flag alone)")
    p.add_argument("--sprint-widths", type=int, nargs=3, default=[24, 96, 96], metavar=("W1", "W2", "W3"),
                   help="the sprints' conv-group widths (default 24 96 96, 3/8 of the preset's)")
    p.add_argument("--sprint-batch-size", type=int, default=512,
                   help="the sprints' batch size (default 512: twice the steps of the preset's 1024 in a short run; "
                        "learning rate and weight decay are per 1,024 examples, so they need no change)")
    p.add_argument("--resnet9-epochs", type=int, default=8, help="epochs of the ResNet-9 OneCycle recipe (default 8)")
    p.add_argument("--peer-epochs", type=int, default=1000, help="cap on the peer's epochs (the budget usually stops it)")
    p.add_argument("--limit", type=int, help="stratified subset of the training split")
    p.add_argument("--test-limit", type=int, help="stratified subset of the test split")
    p.add_argument("--quick", action="store_true", help="2,000 images, 1 minute per recipe, 2 epochs each")
    p.add_argument("--data", help="CIFAR-10 source (default: see load_cifar10)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", default="artifacts", help="metrics/ and figures/ go below it (default artifacts)")
    p.add_argument("--resummarize", metavar="JSON", help="recompute the tables of a stored result from its curves")
    args = p.parse_args(argv)
    if args.resummarize:
        return resummarize(Path(args.resummarize))
    if args.quick:
        args.limit, args.test_limit, args.budget_minutes = 2000, 1000, 1.0
        args.ours_epochs = args.resnet9_epochs = 2
    set_seed(args.seed)
    splits = train_val_split(load_cifar10(args.data, progress=False), val_size=5000, seed=args.seed,
                             limit=args.limit, test_limit=args.test_limit)
    num_classes = len(splits.class_names)
    ours = config_recipe(f"ours_{args.ours_epochs}ep", preset_config("fast", epochs=args.ours_epochs, seed=args.seed),
                         splits, family="ours")
    sprints = [config_recipe(name, config, splits, family="ours") for name, config in
               sprint_configs(args.sprint_epochs, args.sprint_widths, args.sprint_batch_size, args.seed).items()]
    resnet9 = config_recipe("resnet9", preset_config("resnet9", epochs=args.resnet9_epochs, seed=args.seed), splits)
    peer = Recipe("peer", build_peer_model(num_classes), args.peer_epochs, 32,
                  lambda e: peer_epoch(splits.x_train, splits.y_train, args.seed, e, num_classes))
    peer.precision = "float32"
    recipes = (*sprints, ours, resnet9, peer)
    budget = args.budget_minutes * 60
    t0 = time.perf_counter()
    while not all(r.done(budget) for r in recipes):
        for r in recipes:
            if not r.done(budget):
                r.step(splits.x_test, splits.y_test, print)
    wall = time.perf_counter() - t0
    for r in recipes:
        r.finished = r.epoch >= r.epochs
    print()
    result = {**summarize(recipes, budget), "recipes": {}}
    for r in recipes:
        result["recipes"][r.name] = {"family": r.family, "model": model_summary(r.model), "precision": r.precision,
                                     "epochs_run": r.epoch,
                                     "epochs_planned": r.epochs,
                                     "train_time_s": round(r.train_time, 1), "curve": r.curve,
                                     "final_test_accuracy": r.curve[-1][1] if r.curve else None}
    result.update({
        "budget_minutes_per_recipe": args.budget_minutes, "wall_clock_s": round(wall, 1),
        "data": describe_data(splits), "interleaved": True, "environment": environment_info(), "quick": bool(args.quick),
    })
    name = "time_to_accuracy_quick.json" if args.quick else "time_to_accuracy.json"
    out = Path(args.out) / "metrics" / name
    write_json(out, result)
    from visiondl_keras.reporting.plots import save_figure, time_to_accuracy_plot

    curves = {r.name: ([c[0] for c in r.curve], [c[1] for c in r.curve]) for r in recipes}
    save_figure(time_to_accuracy_plot(curves, TARGETS), Path(args.out) / "figures" / name.replace(".json", ".png"))
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
