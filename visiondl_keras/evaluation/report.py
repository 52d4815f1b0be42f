"""Every diagnostic of a trained model in one report: :func:`diagnose`.

Writes, under ``out_dir`` (default: the run directory, or ``./diagnostics/<checkpoint name>``
for a checkpoint file):

* ``metrics/diagnostics[_TAG].json``: accuracy, confusion matrices, per-class report, most
  confused pairs, the misclassification review (indices into the test set), the Grad-CAM
  gallery indices and sanity check, noise / FGSM / PGD tables with their self-checks, the
  corruption benchmark and the timings of every stage;
* ``figures/diagnostics/[TAG_]{confusion,per_class,misclassified}.png``;
* ``figures/gradcam/[TAG_]{gallery,sanity_check}.png``;
* ``figures/robustness/[TAG_]{attacks,corruption_heatmap,corruption_examples}.png``.

``TAG`` defaults to the checkpoint's file name (``scratch_airbench94`` for
``artifacts/checkpoints/scratch_airbench94.keras``) and is empty for a run directory or a model
object. ``limit`` evaluates a stratified subset of the test images (quick runs);
``noise_limit``, ``attack_limit`` and ``corruption_limit`` take smaller stratified subsets of
those for the expensive stages; ``stages`` chooses the optional stages.

The JSON is rewritten after every stage (``"complete": false`` until the end), so a long run
that is stopped keeps its finished stages.

Example::

    python -m visiondl_keras diagnose artifacts/checkpoints/scratch_airbench94.keras --out artifacts
    python -m visiondl_keras diagnose runs/my_run --limit 500 --skip corruptions
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from tqdm.auto import tqdm

from visiondl_keras.data.cifar10 import describe_data, load_cifar10
from visiondl_keras.data.splits import stratified_subset
from visiondl_keras.errors import ConfigError
from visiondl_keras.evaluation.attacks import attack_sweep, noise_sweep
from visiondl_keras.evaluation.calibration import load_temperature
from visiondl_keras.evaluation.corruptions import CORRUPTIONS, corrupt, corruption_benchmark
from visiondl_keras.evaluation.diagnostics import (
    classification_report,
    confusion_matrices,
    misclassification_review,
    most_confused_pairs,
)
from visiondl_keras.evaluation.gradcam import (
    gradcam,
    gradcam_sanity_check,
    overlay_heatmap,
    select_gallery_examples,
)
from visiondl_keras.evaluation.gradients import last_conv_layer, predict_logits
from visiondl_keras.evaluation.metrics import softmax
from visiondl_keras.io import write_json
from visiondl_keras.models import load_checkpoint
from visiondl_keras.names import REPORT_STAGES as STAGES
from visiondl_keras.reporting import plots
from visiondl_keras.reproducibility import environment_info
from visiondl_keras.runs import checkpoint_file

__all__ = ["STAGES", "diagnose"]



# --------------------------------------------------------------------------------------------
# Options and the report being written
# --------------------------------------------------------------------------------------------


def _check_options(stages, limits: dict, corruptions, severities, epsilons, sigmas, sizes: dict, temperature) -> None:
    unknown = [s for s in stages if s not in STAGES]
    if unknown:
        raise ConfigError(f"unknown stage(s) {unknown}; choose from {', '.join(STAGES)}.")
    for name, v in limits.items():
        if v is not None and v < 1:
            raise ConfigError(f"{name} must be a positive number of images, got {v}.")
    bad = [c for c in corruptions or () if c not in CORRUPTIONS]
    if bad:
        raise ConfigError(f"unknown corruption(s) {bad}; choose from {', '.join(CORRUPTIONS)}.")
    if not severities or any(s not in (1, 2, 3, 4, 5) for s in severities):
        raise ConfigError(f"severities must be integers from 1 to 5, got {list(severities)}.")
    if any(e < 0 for e in epsilons) or any(s < 0 for s in sigmas):
        raise ConfigError("epsilons and sigmas must be non-negative (0-255 pixel units).")
    small = [name for name, v in sizes.items() if v < 1]
    if small:
        raise ConfigError(f"{', '.join(small)} must be positive.")
    if temperature is not None and not temperature > 0:
        raise ConfigError(f"temperature must be positive, got {temperature}.")


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


@dataclass
class _Report:
    """The result dict, figures and timings of one diagnose run, and where they go."""

    out_dir: Path
    tag: str
    dpi: int
    progress: bool
    result: dict = field(default_factory=dict)
    timings: dict = field(default_factory=dict)
    figures: list = field(default_factory=list)

    @property
    def json_path(self) -> Path:
        return self.out_dir / "metrics" / (f"diagnostics_{self.tag}.json" if self.tag else "diagnostics.json")

    def figure(self, fig, group: str, name: str) -> None:
        path = self.out_dir / "figures" / group / (f"{self.tag}_{name}.png" if self.tag else f"{name}.png")
        self.figures.append(plots.save_figure(fig, path, dpi=self.dpi))

    def log(self, message: str) -> None:
        if self.progress:
            tqdm.write(message)

    def save(self, **final) -> None:
        """Write what is done so far; ``final`` (environment, complete) closes the report."""
        out = dict(self.result, timings_s=dict(self.timings))
        out.update({k: v for k, v in final.items() if k != "complete"})
        out.update(figures=[str(p) for p in self.figures], complete=bool(final.get("complete", False)))
        write_json(self.json_path, _json_safe(out))


@dataclass
class _Inputs:
    """The evaluated test images and what the first stage computed on them."""

    model: object
    x: np.ndarray
    y: np.ndarray
    idx: np.ndarray  # indices of x into the test split
    class_names: list
    seed: int
    batch_size: int
    probs: np.ndarray | None = None
    pred: np.ndarray | None = None

    def subset(self, n: int | None) -> np.ndarray:
        """Positions of a stratified subset of ``n`` of the images (all of them when n is None)."""
        return _subset(self.y, n, self.seed)


def _subset(y, n, seed) -> np.ndarray:
    return np.arange(len(y)) if n is None or n >= len(y) else stratified_subset(y, n, seed=seed)


# --------------------------------------------------------------------------------------------
# The stages
# --------------------------------------------------------------------------------------------


def _predict_stage(rep: _Report, inp: _Inputs, temperature: float, review_size: int) -> None:
    """Predictions, confusion matrices, per-class report, most confused pairs and the review."""
    model, names = inp.model, inp.class_names
    logits = predict_logits(model, inp.x, inp.batch_size)
    inp.probs = softmax(logits, temperature)
    inp.pred = inp.probs.argmax(axis=1)
    cms = confusion_matrices(inp.y, inp.pred, len(names))
    report = classification_report(inp.y, inp.pred, names)
    pairs = most_confused_pairs(cms["counts"], names, k=10)
    review = misclassification_review(inp.probs, inp.y, names, k=review_size, indices=inp.idx)
    pos = {int(v): i for i, v in enumerate(inp.idx)}
    review_images = inp.x[[pos[it["index"]] for it in review]]
    rep.result.update({
        "temperature": temperature,
        "accuracy": report["accuracy"],
        "class_names": names,
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
    })
    title = f"{model.name}: confusion (accuracy {report['accuracy']:.3f})"
    rep.figure(plots.confusion_matrix_figure(cms["normalized"], names, cms["counts"], title=title), "diagnostics",
               "confusion")
    rep.figure(plots.per_class_figure(report), "diagnostics", "per_class")
    rep.figure(plots.misclassification_gallery(review_images, review), "diagnostics", "misclassified")
    rep.log(f"accuracy {report['accuracy']:.4f} on {len(inp.y)} test images; most confused: "
            + ", ".join(f"{p['true']}->{p['predicted']} ({p['count']})" for p in pairs[:3]))


def _gradcam_stage(rep: _Report, inp: _Inputs, gallery_size: int) -> None:
    """Grad-CAM and Grad-CAM++ gallery, and the parameter-randomisation sanity check."""
    model, names, probs, pred, y = inp.model, inp.class_names, inp.probs, inp.pred, inp.y
    layer_path, _ = last_conv_layer(model)
    sel = select_gallery_examples(probs, y, n=gallery_size, seed=inp.seed)
    xs = inp.x[sel]
    ov = np.stack([overlay_heatmap(im, m) for im, m in zip(xs, gradcam(model, xs, layer=layer_path))])
    ov_pp = np.stack([overlay_heatmap(im, m) for im, m in zip(xs, gradcam(model, xs, layer=layer_path,
                                                                          method="gradcam++"))])
    correct = pred[sel] == y[sel]
    titles = [f"T {names[y[i]]}\nP {names[pred[i]]} {probs[i].max():.2f}" for i in sel]
    rep.figure(plots.gradcam_gallery(xs, ov, titles, correct, extra_overlays=ov_pp,
                                     title=f"{model.name}: Grad-CAM / Grad-CAM++ at {layer_path} (green right, red wrong)"),
               "gradcam", "gallery")
    n_sanity = min(16, len(sel))
    sanity, _, rand_maps = gradcam_sanity_check(model, xs[:n_sanity], layer=layer_path, num_layers=3, seed=inp.seed,
                                                return_maps=True)
    rand_ov = np.stack([overlay_heatmap(im, m) for im, m in zip(xs[:6], rand_maps[:6])])
    rep.figure(plots.sanity_check_figure(sanity, xs[:6], ov[:6], rand_ov), "gradcam", "sanity_check")
    rep.result["gradcam"] = {
        "layer": layer_path,
        "methods": ["gradcam", "gradcam++"],
        "gallery_indices": [int(inp.idx[i]) for i in sel],
        "gallery_correct": int(correct.sum()),
        "gallery_wrong": int((~correct).sum()),
        "gallery_classes": sorted({names[y[i]] for i in sel}),
        "sanity_check": sanity,
    }
    rep.log(f"Grad-CAM at {layer_path}: {len(sel)} examples; sanity check mean Spearman "
            f"{sanity['mean_spearman']:.3f} ({'passed' if sanity['passed'] else 'FAILED'})")


def _noise_stage(rep: _Report, inp: _Inputs, limit, sigmas) -> dict:
    """Accuracy under Gaussian pixel noise."""
    n_idx = inp.subset(limit)
    noise = noise_sweep(inp.model, inp.x[n_idx], inp.y[n_idx], sigmas=sigmas, seed=inp.seed, batch_size=inp.batch_size)
    noise["num_images"] = int(len(n_idx))
    noise["sigma_units"] = "0-255 pixel units (8.0 = 8/255)"
    rep.result["noise"] = noise
    rep.log("noise accuracy: " + ", ".join(f"{s:g}:{a:.3f}" for s, a in zip(noise["sigmas"], noise["accuracy"])))
    return noise


def _attacks_stage(rep: _Report, inp: _Inputs, limit, epsilons, pgd_steps: int) -> dict:
    """FGSM and PGD accuracy over the budgets, with the self-checks."""
    a_idx = inp.subset(limit)
    attacks = attack_sweep(inp.model, inp.x[a_idx], inp.y[a_idx], epsilons=epsilons, steps=pgd_steps,
                           batch_size=inp.batch_size, progress=rep.progress)
    rep.result["attacks"] = attacks
    eps = attacks["epsilons"]
    rep.log("FGSM: " + ", ".join(f"{e:g}:{a:.3f}" for e, a in zip(eps, attacks["fgsm_accuracy"]))
            + " | PGD: " + ", ".join(f"{e:g}:{a:.3f}" for e, a in zip(eps, attacks["pgd_accuracy"]))
            + f" | self-checks {'passed' if attacks['all_checks_passed'] else 'FAILED'}")
    return attacks


def _corruptions_stage(rep: _Report, inp: _Inputs, limit, corruptions, severities) -> None:
    """The CIFAR-10-C style benchmark, its heatmap and one example image per corruption and severity."""
    c_idx = inp.subset(limit)
    bench = corruption_benchmark(inp.model, inp.x[c_idx], inp.y[c_idx], corruptions=corruptions,
                                 severities=severities, seed=inp.seed, batch_size=inp.batch_size,
                                 progress=rep.progress)
    rep.result["corruptions"] = bench
    rep.figure(plots.corruption_heatmap(bench), "robustness", "corruption_heatmap")
    example = inp.x[c_idx][:1]
    examples = {c: [corrupt(example, c, s, seed=inp.seed)[0] for s in bench["severities"]]
                for c in bench["corruptions"]}
    rep.figure(plots.corruption_examples_figure(example[0], examples, bench["severities"]), "robustness",
               "corruption_examples")
    n_sets = len(bench["corruptions"]) * len(bench["severities"])
    rep.log(f"mean corruption accuracy {bench['mean_corruption_accuracy']:.4f} "
            f"({bench['relative_accuracy']:.3f} of clean) over {n_sets} sets")


def _timed(rep: _Report, bar, name: str, timing_key: str, fn, *args):
    """Run one stage, record its time, save the report so far and advance the progress bar."""
    t = time.perf_counter()
    bar.set_postfix_str(name)
    out = fn(rep, *args)
    rep.timings[timing_key] = time.perf_counter() - t
    rep.save()
    bar.update(1)
    return out


# --------------------------------------------------------------------------------------------
# The report
# --------------------------------------------------------------------------------------------


def _resolve_model(model, out_dir, tag, temperature):
    """The Keras model, its description, output folder, tag and temperature (defaults from a path)."""
    if isinstance(model, (str, os.PathLike)):
        source = Path(model)
        is_run_dir = source.is_dir()
        keras_model = load_checkpoint(source)
        if temperature is None:  # the fitted temperature stored beside the checkpoint, else 1
            temperature = float(load_temperature(checkpoint_file(source)))
        tag = tag if tag is not None else ("" if is_run_dir else source.stem)
        out_dir = out_dir or (source if is_run_dir else Path("diagnostics") / source.stem)
        return keras_model, str(source), Path(out_dir), tag, temperature
    if out_dir is None:
        raise ConfigError("out_dir is required when diagnosing a model object (there is no checkpoint to write beside).")
    return model, model.name, Path(out_dir), tag or "", 1.0 if temperature is None else float(temperature)


# The work is split into the _stage_* helpers above.
# long: the signature and Keras-style docstring of this public entry point are most of its lines.
def diagnose(
    model,
    data=None,
    *,
    out_dir=None,
    tag: str | None = None,
    stages=STAGES,
    limit: int | None = None,
    noise_limit: int | None = None,
    attack_limit: int | None = None,
    corruption_limit: int | None = None,
    corruptions=None,
    severities=(1, 2, 3, 4, 5),
    epsilons=(0.0, 1.0, 2.0, 4.0, 8.0),
    sigmas=(0.0, 2.0, 4.0, 8.0, 16.0),
    pgd_steps: int = 10,
    gallery_size: int = 24,
    review_size: int = 24,
    temperature: float | None = None,
    batch_size: int = 500,
    seed: int = 0,
    dpi: int = 110,
    progress: bool = True,
) -> dict:
    """Run every diagnostic of a model on the CIFAR-10 test split and write the figures and JSON.

    The confusion matrices, per-class report and misclassification review always run; the
    optional ``stages`` are Grad-CAM (gallery and sanity check), Gaussian noise, FGSM/PGD
    attacks and the corruption benchmark.

    Args:
        model: a ``.keras`` checkpoint or run directory (loaded; its calibration sidecar gives
            the default temperature), or a ``keras.Model`` (then ``out_dir`` is required).
        data: a :class:`~visiondl_keras.data.cifar10.Dataset` or
            :class:`~visiondl_keras.data.splits.Splits` (its test split is used), or a CIFAR-10
            source for :func:`~visiondl_keras.data.cifar10.load_cifar10` (None: the usual places).
        out_dir: output folder (default: the run directory, or ``./diagnostics/NAME``).
        tag: file-name prefix (default: the checkpoint's name; none for a run directory).
        stages: optional stages to run, from :data:`STAGES`.
        limit: evaluate a stratified subset of this many test images.
        noise_limit, attack_limit, corruption_limit: smaller stratified subsets of those for
            the noise, attack and corruption stages.
        corruptions: names of corruptions (default: all 15).
        severities: corruption severities (1-5).
        epsilons: FGSM/PGD budgets in 0-255 pixel units (``8.0`` = 8/255).
        sigmas: Gaussian noise standard deviations in 0-255 pixel units.
        pgd_steps: PGD steps.
        gallery_size: Grad-CAM gallery examples.
        review_size: highest-loss images in the misclassification review.
        temperature: softmax temperature of the probabilities (default: the checkpoint's
            calibration sidecar, else 1).
        batch_size: images per forward or backward pass.
        seed: seed of the subsets, the noise, the gallery and the corruptions.
        dpi: PNG resolution.
        progress: progress bars and a line per stage.

    Returns:
        The report, also written as ``OUT_DIR/metrics/diagnostics[_TAG].json`` (see the module
        docstring for the files).

    Raises:
        ConfigError: an invalid option (unknown stage or corruption, a non-positive size ...).
        ModelError: the checkpoint is missing or unreadable.
        DataError: the data cannot be loaded.

    Example:
        >>> report = diagnose("runs/quick", limit=500, stages=("gradcam",))  # doctest: +SKIP
        >>> report["accuracy"], report["gradcam"]["sanity_check"]["passed"]  # doctest: +SKIP
    """
    # Long only through its signature and docstring (every option is explicit); the body runs the stages in order.
    stages = tuple(stages)
    _check_options(stages, {"limit": limit, "noise_limit": noise_limit, "attack_limit": attack_limit,
                            "corruption_limit": corruption_limit}, corruptions, severities, epsilons, sigmas,
                   {"gallery_size": gallery_size, "review_size": review_size, "pgd_steps": pgd_steps,
                    "batch_size": batch_size}, temperature)
    keras_model, model_desc, out_dir, tag, temperature = _resolve_model(model, out_dir, tag, temperature)
    t_all = time.perf_counter()
    ds = data if hasattr(data, "x_test") else load_cifar10(data, progress=progress)
    idx = _subset(ds.y_test, limit, seed)
    inp = _Inputs(keras_model, ds.x_test[idx], ds.y_test[idx], idx, list(ds.class_names), seed, batch_size)
    rep = _Report(out_dir, tag, dpi, progress)
    described = describe_data(ds)
    rep.result.update({
        "model": model_desc,
        "model_name": keras_model.name,
        "params": int(keras_model.count_params()),
        "data": {k: described[k] for k in ("source", "description", "fingerprint", "is_jpeg_mirror")}
        | {"split": "test", "num_images": int(len(inp.y)), "subset": limit is not None and limit < len(ds.y_test)},
    })
    bar = tqdm(total=1 + sum(s in stages for s in STAGES), desc="diagnose", unit="stage", disable=not progress,
               position=0)
    _timed(rep, bar, "predict", "predict_and_confusion", _predict_stage, inp, temperature, review_size)
    if "gradcam" in stages:
        _timed(rep, bar, "gradcam", "gradcam", _gradcam_stage, inp, gallery_size)
    noise = _timed(rep, bar, "noise", "noise", _noise_stage, inp, noise_limit, sigmas) if "noise" in stages else None
    attacks = (_timed(rep, bar, "attacks", "attacks", _attacks_stage, inp, attack_limit, epsilons, pgd_steps)
               if "attacks" in stages else None)
    if noise or attacks:
        rep.figure(plots.robustness_curves(noise, attacks, title=keras_model.name), "robustness", "attacks")
    if "corruptions" in stages:
        _timed(rep, bar, "corruptions", "corruptions", _corruptions_stage, inp, corruption_limit, corruptions,
               severities)
    bar.close()
    rep.timings["total"] = time.perf_counter() - t_all
    env = environment_info()
    environment = {k: env[k] for k in ("backend", "cpu_count", "devices", "python")} | {
        "keras": env["packages"].get("keras")}
    rep.save(environment=environment, complete=True)
    rep.log(f"wrote {rep.json_path} and {len(rep.figures)} figures under {out_dir / 'figures'}")
    return _json_safe(dict(rep.result, timings_s=dict(rep.timings), environment=environment,
                           figures=[str(p) for p in rep.figures], complete=True))
