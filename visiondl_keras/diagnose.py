"""``python -m visiondl_keras diagnose CHECKPOINT_OR_RUN_DIR``: every diagnostic of a trained model.

Writes, under ``--out`` (default: the run directory, or ``./diagnostics/<checkpoint name>``
for a checkpoint file):

* ``metrics/diagnostics[_TAG].json``: accuracy, confusion matrices, per-class report, most
  confused pairs, the misclassification review (indices into the test set), the Grad-CAM
  gallery indices and sanity check, noise / FGSM / PGD tables with their self-checks, the
  corruption benchmark and the timings of every stage;
* ``figures/diagnostics/[TAG_]{confusion,per_class,misclassified}.png``;
* ``figures/gradcam/[TAG_]{gallery,sanity_check}.png``;
* ``figures/robustness/[TAG_]{attacks,corruption_heatmap,corruption_examples}.png``.

``TAG`` defaults to the checkpoint's file name (``scratch_resnet9`` for
``artifacts/checkpoints/scratch_resnet9.keras``) and is empty for a run directory.
``--limit N`` evaluates a stratified subset of N test images (quick runs); ``--noise-limit``,
``--attack-limit`` and ``--corruption-limit`` take smaller stratified subsets of those for the
expensive stages; ``--skip`` leaves out stages; ``--quiet`` hides the progress bars.

Example:
    python -m visiondl_keras diagnose artifacts/checkpoints/scratch_resnet9.keras --out artifacts
    python -m visiondl_keras diagnose runs/my_run --limit 500 --skip corruptions
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np

from .errors import ConfigError

STAGES = ("gradcam", "noise", "attacks", "corruptions")


def _int_list(text: str) -> list[int]:
    try:
        return [int(t) for t in text.split(",") if t.strip()]
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"expected comma-separated integers, got {text!r}") from exc


def _float_list(text: str) -> list[float]:
    try:
        return [float(t) for t in text.split(",") if t.strip()]
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"expected comma-separated numbers, got {text!r}") from exc


def _name_list(text: str) -> list[str]:
    return [t.strip() for t in text.split(",") if t.strip()]


def register_commands(subparsers) -> None:
    """Add the ``diagnose`` command."""
    p = subparsers.add_parser(
        "diagnose",
        help="confusion matrix, misclassifications, Grad-CAM, noise/FGSM/PGD, corruption benchmark",
        description=__doc__.split("\n\n")[0],
    )
    p.add_argument("model", metavar="CHECKPOINT_OR_RUN_DIR", help="a .keras checkpoint or a run directory (its best.keras)")
    p.add_argument("--data", default=None, help="CIFAR-10 source (default: $VISIONDL_DATA or the usual places)")
    p.add_argument("--out", default=None, help="output folder (default: the run directory, or ./diagnostics/NAME)")
    p.add_argument("--tag", default=None, help="file-name prefix (default: the checkpoint's name; none for a run directory)")
    p.add_argument("--limit", type=int, default=None, help="evaluate a stratified subset of N test images")
    p.add_argument("--noise-limit", type=int, default=None, help="run the noise sweep on a stratified subset of N of them")
    p.add_argument("--attack-limit", type=int, default=None, help="run FGSM/PGD on a stratified subset of N of them")
    p.add_argument("--corruption-limit", type=int, default=None, help="run the corruption benchmark on N of them")
    p.add_argument("--corruptions", type=_name_list, default=None, help="comma-separated subset of the 15 corruptions")
    p.add_argument("--severities", type=_int_list, default=[1, 2, 3, 4, 5], help="comma-separated severities (1-5)")
    p.add_argument("--epsilons", type=_float_list, default=[0, 1, 2, 4, 8], help="FGSM/PGD budgets in /255 units")
    p.add_argument("--sigmas", type=_float_list, default=[0, 2, 4, 8, 16], help="Gaussian noise sigmas in /255 units")
    p.add_argument("--pgd-steps", type=int, default=10)
    p.add_argument("--gallery-size", type=int, default=24, help="Grad-CAM gallery examples (>= 20 recommended)")
    p.add_argument("--review-size", type=int, default=24, help="highest-loss images in the misclassification review")
    p.add_argument("--temperature", type=float, default=None,
                   help="softmax temperature for probabilities (default: the checkpoint's calibration sidecar, else 1)")
    p.add_argument("--skip", type=_name_list, default=[], help=f"comma-separated stages to skip: {', '.join(STAGES)}")
    p.add_argument("--batch-size", type=int, default=500)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--dpi", type=int, default=110, help="PNG resolution")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    p.set_defaults(func=run_diagnose)


def _validate(args) -> None:
    unknown = [s for s in args.skip if s not in STAGES]
    if unknown:
        raise ConfigError(f"--skip: unknown stage(s) {unknown}; choose from {', '.join(STAGES)}.")
    for name in ("limit", "noise_limit", "attack_limit", "corruption_limit"):
        v = getattr(args, name)
        if v is not None and v < 1:
            raise ConfigError(f"--{name.replace('_', '-')} must be a positive number of images, got {v}.")
    if args.corruptions is not None:
        from .robustness import CORRUPTIONS

        bad = [c for c in args.corruptions if c not in CORRUPTIONS]
        if bad:
            raise ConfigError(f"--corruptions: unknown {bad}; choose from {', '.join(CORRUPTIONS)}.")
    if any(s not in (1, 2, 3, 4, 5) for s in args.severities) or not args.severities:
        raise ConfigError(f"--severities must be integers from 1 to 5, got {args.severities}.")
    if any(e < 0 for e in args.epsilons) or any(s < 0 for s in args.sigmas):
        raise ConfigError("--epsilons and --sigmas must be non-negative (0-255 pixel units).")
    if args.gallery_size < 1 or args.review_size < 1 or args.pgd_steps < 1 or args.batch_size < 1:
        raise ConfigError("--gallery-size, --review-size, --pgd-steps and --batch-size must be positive.")
    if args.temperature is not None and not args.temperature > 0:
        raise ConfigError(f"--temperature must be positive, got {args.temperature}.")


def _subset(y, n, seed):
    from .data import stratified_subset

    return np.arange(len(y)) if n is None or n >= len(y) else stratified_subset(y, n, seed=seed)


def run_diagnose(args) -> int:
    """Run every stage and write the figures and JSON; returns the exit status."""
    _validate(args)
    from tqdm.auto import tqdm

    from . import plots
    from .artifacts import write_json
    from .data import load_cifar10
    from .diagnostics import (
        classification_report,
        confusion_matrices,
        misclassification_review,
        most_confused_pairs,
        softmax,
    )
    from .gradients import last_conv_layer, predict_logits
    from .models import load_checkpoint
    from .reproducibility import environment_info

    progress = not args.quiet
    source = Path(args.model)
    is_run_dir = source.is_dir()
    model = load_checkpoint(source)
    if args.temperature is None:  # the fitted temperature stored beside the checkpoint (calibration sidecar), else 1
        from .artifacts import checkpoint_file
        from .calibration import load_temperature

        args.temperature = float(load_temperature(checkpoint_file(source)))
    tag = args.tag if args.tag is not None else ("" if is_run_dir else source.stem)
    out = Path(args.out) if args.out else (source if is_run_dir else Path("diagnostics") / source.stem)
    prefix = f"{tag}_" if tag else ""
    fig_dir = out / "figures"
    json_path = out / "metrics" / (f"diagnostics_{tag}.json" if tag else "diagnostics.json")

    def log(msg):
        if progress:
            tqdm.write(msg)

    def checkpoint_json():
        """Write what is done so far (a long run that is stopped keeps its finished stages)."""
        partial = dict(result, timings_s=dict(timings), figures=[str(p) for p in figures], complete=False)
        write_json(json_path, _json_safe(partial))

    timings: dict[str, float] = {}
    t_all = time.perf_counter()
    ds = load_cifar10(args.data, progress=progress)
    class_names = list(ds.class_names)
    idx = _subset(ds.y_test, args.limit, args.seed)
    x, y = ds.x_test[idx], ds.y_test[idx]
    stages = ["predict"] + [s for s in STAGES if s not in args.skip]
    bar = tqdm(total=len(stages), desc="diagnose", unit="stage", disable=not progress, position=0)

    # 1. predictions, confusion, per-class report, review
    t = time.perf_counter()
    bar.set_postfix_str("predict")
    logits = predict_logits(model, x, args.batch_size)
    probs = softmax(logits, args.temperature)
    pred = probs.argmax(axis=1)
    cms = confusion_matrices(y, pred, len(class_names))
    report = classification_report(y, pred, class_names)
    pairs = most_confused_pairs(cms["counts"], class_names, k=10)
    review = misclassification_review(probs, y, class_names, k=args.review_size, indices=idx)
    pos = {int(v): i for i, v in enumerate(idx)}
    review_images = x[[pos[it["index"]] for it in review]]
    result: dict = {
        "model": str(source),
        "model_name": model.name,
        "params": int(model.count_params()),
        "data": {
            "source": ds.source,
            "description": ds.describe(),
            "fingerprint": ds.fingerprint,
            "is_jpeg_mirror": ds.is_jpeg_mirror,
            "split": "test",
            "num_images": int(len(y)),
            "subset": args.limit is not None and args.limit < len(ds.y_test),
        },
        "temperature": args.temperature,
        "accuracy": report["accuracy"],
        "class_names": class_names,
        "confusion_matrix": cms["counts"],
        "confusion_matrix_normalized": np.round(cms["normalized"], 4),
        "per_class": report["per_class"],
        "macro": report["macro"],
        "most_confused_pairs": pairs,
        "misclassification_review": {
            "description": "highest-loss test images (index into the test split), highest loss first",
            "indices": [it["index"] for it in review],
            "items": review,
        },
    }
    figures = []
    figures.append(plots.save_figure(
        plots.confusion_matrix_figure(cms["normalized"], class_names, cms["counts"],
                                      title=f"{model.name}: confusion (accuracy {report['accuracy']:.3f})"),
        fig_dir / "diagnostics" / f"{prefix}confusion.png", dpi=args.dpi))
    figures.append(plots.save_figure(plots.per_class_figure(report), fig_dir / "diagnostics" / f"{prefix}per_class.png",
                                     dpi=args.dpi))
    figures.append(plots.save_figure(plots.misclassification_gallery(review_images, review),
                                     fig_dir / "diagnostics" / f"{prefix}misclassified.png", dpi=args.dpi))
    timings["predict_and_confusion"] = time.perf_counter() - t
    log(f"accuracy {report['accuracy']:.4f} on {len(y)} test images; most confused: "
        + ", ".join(f"{p['true']}->{p['predicted']} ({p['count']})" for p in pairs[:3]))
    checkpoint_json()
    bar.update(1)

    # 2. Grad-CAM gallery and sanity check
    if "gradcam" in stages:
        from .gradcam import gradcam, gradcam_sanity_check, overlay_heatmap, select_gallery_examples

        t = time.perf_counter()
        bar.set_postfix_str("gradcam")
        layer_path, _ = last_conv_layer(model)
        sel = select_gallery_examples(probs, y, n=args.gallery_size, seed=args.seed)
        xs = x[sel]
        maps = gradcam(model, xs, layer=layer_path)
        maps_pp = gradcam(model, xs, layer=layer_path, method="gradcam++")
        ov = np.stack([overlay_heatmap(im, m) for im, m in zip(xs, maps)])
        ov_pp = np.stack([overlay_heatmap(im, m) for im, m in zip(xs, maps_pp)])
        correct = pred[sel] == y[sel]
        titles = [
            f"T {class_names[y[i]]}\nP {class_names[pred[i]]} {probs[i].max():.2f}" for i in sel
        ]
        figures.append(plots.save_figure(
            plots.gradcam_gallery(xs, ov, titles, correct, extra_overlays=ov_pp,
                                  title=f"{model.name}: Grad-CAM / Grad-CAM++ at {layer_path} (green right, red wrong)"),
            fig_dir / "gradcam" / f"{prefix}gallery.png", dpi=args.dpi))
        n_sanity = min(16, len(sel))
        sanity, _, rand_maps = gradcam_sanity_check(model, xs[:n_sanity], layer=layer_path, num_layers=3, seed=args.seed,
                                                    return_maps=True)
        rand_ov = np.stack([overlay_heatmap(im, m) for im, m in zip(xs[:6], rand_maps[:6])])
        figures.append(plots.save_figure(plots.sanity_check_figure(sanity, xs[:6], ov[:6], rand_ov),
                                         fig_dir / "gradcam" / f"{prefix}sanity_check.png", dpi=args.dpi))
        result["gradcam"] = {
            "layer": layer_path,
            "methods": ["gradcam", "gradcam++"],
            "gallery_indices": [int(idx[i]) for i in sel],
            "gallery_correct": int(correct.sum()),
            "gallery_wrong": int((~correct).sum()),
            "gallery_classes": sorted({class_names[y[i]] for i in sel}),
            "sanity_check": sanity,
        }
        timings["gradcam"] = time.perf_counter() - t
        log(f"Grad-CAM at {layer_path}: {len(sel)} examples; sanity check mean Spearman "
            f"{sanity['mean_spearman']:.3f} ({'passed' if sanity['passed'] else 'FAILED'})")
        checkpoint_json()
        bar.update(1)

    from .robustness import attack_sweep, corrupt, corruption_benchmark, noise_sweep

    noise = attacks = None
    if "noise" in stages:
        t = time.perf_counter()
        bar.set_postfix_str("noise")
        n_idx = _subset(y, args.noise_limit, args.seed)
        noise = noise_sweep(model, x[n_idx], y[n_idx], sigmas=args.sigmas, seed=args.seed, batch_size=args.batch_size)
        noise["num_images"] = int(len(n_idx))
        noise["sigma_units"] = "0-255 pixel units (8.0 = 8/255)"
        result["noise"] = noise
        timings["noise"] = time.perf_counter() - t
        log("noise accuracy: " + ", ".join(f"{s:g}:{a:.3f}" for s, a in zip(noise["sigmas"], noise["accuracy"])))
        checkpoint_json()
        bar.update(1)
    if "attacks" in stages:
        t = time.perf_counter()
        bar.set_postfix_str("attacks")
        a_idx = _subset(y, args.attack_limit, args.seed)
        attacks = attack_sweep(model, x[a_idx], y[a_idx], epsilons=args.epsilons, steps=args.pgd_steps,
                               batch_size=args.batch_size, progress=progress)
        result["attacks"] = attacks
        timings["attacks"] = time.perf_counter() - t
        log("FGSM: " + ", ".join(f"{e:g}:{a:.3f}" for e, a in zip(attacks["epsilons"], attacks["fgsm_accuracy"]))
            + " | PGD: " + ", ".join(f"{e:g}:{a:.3f}" for e, a in zip(attacks["epsilons"], attacks["pgd_accuracy"]))
            + f" | self-checks {'passed' if attacks['all_checks_passed'] else 'FAILED'}")
        checkpoint_json()
        bar.update(1)
    if noise or attacks:
        figures.append(plots.save_figure(plots.robustness_curves(noise, attacks, title=model.name),
                                         fig_dir / "robustness" / f"{prefix}attacks.png", dpi=args.dpi))
    if "corruptions" in stages:
        t = time.perf_counter()
        bar.set_postfix_str("corruptions")
        c_idx = _subset(y, args.corruption_limit, args.seed)
        bench = corruption_benchmark(model, x[c_idx], y[c_idx], corruptions=args.corruptions, severities=args.severities,
                                     seed=args.seed, batch_size=args.batch_size, progress=progress)
        result["corruptions"] = bench
        timings["corruptions"] = time.perf_counter() - t
        figures.append(plots.save_figure(plots.corruption_heatmap(bench),
                                         fig_dir / "robustness" / f"{prefix}corruption_heatmap.png", dpi=args.dpi))
        example = x[c_idx][:1]
        examples = {c: [corrupt(example, c, s, seed=args.seed)[0] for s in bench["severities"]] for c in bench["corruptions"]}
        figures.append(plots.save_figure(plots.corruption_examples_figure(example[0], examples, bench["severities"]),
                                         fig_dir / "robustness" / f"{prefix}corruption_examples.png", dpi=args.dpi))
        log(f"mean corruption accuracy {bench['mean_corruption_accuracy']:.4f} "
            f"({bench['relative_accuracy']:.3f} of clean) over {len(bench['corruptions']) * len(bench['severities'])} sets")
        checkpoint_json()
        bar.update(1)
    bar.close()
    timings["total"] = time.perf_counter() - t_all
    env = environment_info()
    result["timings_s"] = timings
    result["environment"] = {k: env[k] for k in ("backend", "cpu_count", "devices", "python")} | {
        "keras": env["packages"].get("keras"),
    }
    result["figures"] = [str(p) for p in figures]
    result["complete"] = True
    write_json(json_path, _json_safe(result))
    log(f"wrote {json_path} and {len(figures)} figures under {fig_dir}")
    return 0


def _json_safe(obj):
    """Replace NaN / infinite floats (e.g. an undefined correlation) by None: strict JSON."""
    if isinstance(obj, dict):
        return {k: _json_safe(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_json_safe(v) for v in obj]
    if isinstance(obj, np.ndarray):
        return _json_safe(obj.tolist())
    if isinstance(obj, (float, np.floating)):
        return float(obj) if np.isfinite(obj) else None
    return obj

