"""A model card from a run's artifacts (``python -m visiondl_keras model-card RUN_DIR``).

Every number in the card is read from files, never typed in:

* ``RUN_DIR/config.json``, ``metrics.json``, ``environment.json`` (written by training);
* the checkpoint's calibration sidecar ``<checkpoint>.calibration.json`` or a
  ``calibration_<name>.json`` (written by ``python -m visiondl_keras calibrate``);
* when present, diagnostics JSON (``diagnostics*.json`` in the run directory or in
  ``artifacts/metrics/``, written by ``python -m visiondl_keras diagnose``): most-confused classes,
  noise / adversarial robustness, corruption accuracy. It is read defensively: whatever keys exist;
* when present, ``artifacts/metrics/export_benchmark.json`` (``benchmarks/export_benchmark.py``).

Sections: model details, intended and out-of-scope uses, training data (with the JPEG-mirror
caveat when the run used that source), metrics (accuracy, per-class, calibration before/after),
limitations and failure modes, export formats, the shipped transfer-learning model (when published), how
it was generated.
"""

from __future__ import annotations

import os
from pathlib import Path

from visiondl_keras.errors import ConfigError
from visiondl_keras.evaluation.calibrate import markdown_table
from visiondl_keras.evaluation.calibration import read_calibration, sidecar_path
from visiondl_keras.io import atomic_write_text, read_json
from visiondl_keras.runs import CHECKPOINT_NAMES, published_checkpoint

# --------------------------------------------------------------------------------------------
# Gathering the artifacts
# --------------------------------------------------------------------------------------------


def _read(path: Path | None) -> dict:
    if path is None or not path.is_file():
        return {}
    try:
        obj = read_json(path)
    except (OSError, ValueError):
        return {}
    return obj if isinstance(obj, dict) else {"_list": obj}


def _artifacts_root(run_dir: Path) -> Path:
    for parent in [run_dir.resolve(), *run_dir.resolve().parents]:
        if parent.name == "artifacts":
            return parent
        if (parent / "artifacts").is_dir():
            return parent / "artifacts"
    return Path("artifacts").resolve()


def _same(a, b) -> bool:
    try:
        return Path(a).resolve() == Path(b).resolve()
    except (TypeError, OSError):
        return False


def _find_calibration(checkpoint, run_dir: Path, art: Path, sources: list) -> tuple[dict, dict]:
    """The calibration record of ``checkpoint`` (its sidecar, else a calibration report) and the
    out-of-distribution benchmark of its calibration report; appends the files read to ``sources``."""
    calibration = {}
    if checkpoint is not None:
        calibration = read_calibration(checkpoint) or {}
        if calibration:
            sources.append(str(sidecar_path(checkpoint)))
    if not calibration or "test" not in calibration:
        names = [f"calibration_{checkpoint.stem}.json"] if checkpoint else []
        candidates = [run_dir / n for n in names] + [art / "metrics" / n for n in names]
        candidates += sorted(run_dir.glob("calibration_*.json")) + sorted((art / "metrics").glob("calibration_*.json"))
        for cand in candidates:
            d = _read(cand)
            if d and ("test" in d) and (cand.parent == run_dir or (checkpoint and _same(d.get("checkpoint"), checkpoint))
                                        or _same(d.get("run_dir"), run_dir)):
                calibration = d
                sources.append(str(cand))
                break
    ood = {}
    if checkpoint is not None:  # the out-of-distribution benchmark lives in the calibration report
        report = art / "metrics" / f"calibration_{checkpoint.stem}.json"
        ood = (_read(report) or {}).get("ood") or {}
        if ood and str(report) not in sources:
            sources.append(str(report))
    return calibration, ood


def gather(run_dir: str | os.PathLike, checkpoint: str | os.PathLike | None = None,
           artifacts_dir: str | os.PathLike | None = None) -> dict:
    """Collect everything the card needs from a run directory (missing pieces are empty dicts).

    Args:
        run_dir: the training run's directory (``config.json``, ``metrics.json``).
        checkpoint: the model file when it is not in the run directory (e.g. the shipped
            ``artifacts/checkpoints/scratch_airbench94.keras``).
        artifacts_dir: the ``artifacts/`` folder with ``metrics/`` (default: found above ``run_dir``).

    Returns:
        A dict with ``run_dir``, ``checkpoint``, ``config``, ``metrics``, ``environment``,
        ``calibration``, ``diagnostics`` (name -> dict), ``export``, ``sources`` (files read).

    Raises:
        ConfigError: ``run_dir`` is not a run directory.
    """
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise ConfigError(f"{run_dir}: no such run directory; pass the folder a training run wrote.")
    if not (run_dir / "metrics.json").is_file() and not (run_dir / "config.json").is_file():
        raise ConfigError(f"{run_dir}: not a run directory (no config.json or metrics.json); pass the folder a "
                          "training run wrote.")
    art = Path(artifacts_dir) if artifacts_dir else _artifacts_root(run_dir)
    sources: list[str] = []

    def read(path):
        d = _read(path)
        if d:
            sources.append(str(path))
        return d

    info = {"run_dir": run_dir, "artifacts": art}
    for name in ("config", "metrics", "environment"):
        info[name] = read(run_dir / f"{name}.json")

    if checkpoint is None:
        checkpoint = published_checkpoint(run_dir, art)
    if checkpoint is None:
        checkpoint = next((run_dir / n for n in CHECKPOINT_NAMES if (run_dir / n).is_file()), None)
    checkpoint = Path(checkpoint) if checkpoint else None
    if checkpoint is not None and not checkpoint.is_file():
        raise ConfigError(f"{checkpoint}: checkpoint not found.")
    info["checkpoint"] = checkpoint

    info["calibration"], info["ood"] = _find_calibration(checkpoint, run_dir, art, sources)

    info["diagnostics"], info["diagnostics_path"] = {}, None
    stem = checkpoint.stem if checkpoint else None
    candidates = [run_dir / "metrics" / "diagnostics.json", run_dir / "diagnostics.json"]
    if stem:
        candidates += [art / "metrics" / f"diagnostics_{stem}.json", run_dir / "metrics" / f"diagnostics_{stem}.json"]
    others = sorted((art / "metrics").glob("diagnostics*.json"))
    candidates += [p for p in others if checkpoint and _same(_read(p).get("model"), checkpoint)]
    for cand in candidates:
        d = _read(cand)
        if d:
            info["diagnostics"], info["diagnostics_path"] = d, cand
            sources.append(str(cand))
            break
    # The export benchmark and the transfer model belong to the shipped models: only a card of a run
    # published under artifacts/ (or given artifacts_dir explicitly) reports them.
    info["shipped"] = artifacts_dir is not None or run_dir.resolve().is_relative_to(art.resolve())
    info["export"] = read(art / "metrics" / "export_benchmark.json") if info["shipped"] else {}
    info["storage"] = _storage_dtype(checkpoint) if checkpoint is not None else None
    info["sources"] = sources
    return info


def _storage_dtype(checkpoint: Path) -> str | None:
    """The dtype policy most layers of a ``.keras`` file use (read from its config; Keras not imported)."""
    import collections
    import json
    import zipfile

    try:
        with zipfile.ZipFile(checkpoint) as zf:
            config = json.loads(zf.read("config.json"))
    except (OSError, KeyError, ValueError, zipfile.BadZipFile):
        return None
    names: collections.Counter = collections.Counter()

    def walk(node):
        if isinstance(node, dict):
            dtype = node.get("dtype")
            if isinstance(dtype, dict) and isinstance(dtype.get("config"), dict) and "name" in dtype["config"]:
                names[dtype["config"]["name"]] += 1
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    walk(config)
    return names.most_common(1)[0][0] if names else None


# --------------------------------------------------------------------------------------------
# Defensive readers of diagnostics JSON (the keys are whatever the diagnostics command wrote)
# --------------------------------------------------------------------------------------------


def _num(x):
    return isinstance(x, (int, float)) and not isinstance(x, bool)


def _pct(x) -> str:
    return f"{100 * x:.2f}%" if _num(x) else "n/a"


def _series(d, levels_key: str, values_key: str) -> list[tuple[float, float]]:
    """Pairs ``(level, value)`` from two parallel lists of a dict; [] when they are missing or malformed."""
    if not isinstance(d, dict):
        return []
    levels, values = d.get(levels_key), d.get(values_key)
    if not isinstance(levels, list) or not isinstance(values, list) or len(levels) != len(values):
        return []
    return [(lv, v) for lv, v in zip(levels, values) if _num(lv) and _num(v)]


def diagnostics_lines(diag: dict) -> list[str]:
    """Limitations read from a ``diagnostics*.json``: whatever of its sections exist and look right."""
    lines = []
    n = (diag.get("data") or {}).get("num_images") if isinstance(diag.get("data"), dict) else None
    where = f" ({n} test images)" if _num(n) else ""
    pairs = [p for p in diag.get("most_confused_pairs") or [] if isinstance(p, dict) and "true" in p and "predicted" in p]
    if pairs:
        lines.append("- Most-confused classes (true -> predicted, share of the true class)" + where + ": " + "; ".join(
            f"{p['true']} -> {p['predicted']}" + (f" ({_pct(p.get('rate'))}, {p.get('count')} images)"
                                                   if _num(p.get("rate")) else "") for p in pairs[:5]) + ".")
    noise = _series(diag.get("noise"), "sigmas", "accuracy")
    if noise:
        lines.append("- Gaussian noise (sigma in 0-255 pixel units): accuracy "
                     + ", ".join(f"{s:g}: {a:.3f}" for s, a in noise) + ".")
    attacks = diag.get("attacks") if isinstance(diag.get("attacks"), dict) else {}
    fgsm, pgd = _series(attacks, "epsilons", "fgsm_accuracy"), _series(attacks, "epsilons", "pgd_accuracy")
    if fgsm or pgd:
        n_att = attacks.get("num_images")
        lines.append("- Adversarial fragility (eps in 0-255 pixel units" + (f", {n_att} test images" if _num(n_att) else "")
                     + "): " + ("FGSM accuracy " + ", ".join(f"{e:g}: {a:.3f}" for e, a in fgsm) if fgsm else "")
                     + ("; " if fgsm and pgd else "")
                     + (f"PGD-{attacks.get('pgd_steps', 10)} accuracy " + ", ".join(f"{e:g}: {a:.3f}" for e, a in pgd)
                        + (" (budgets nested: an image broken at a smaller budget counts as broken)"
                           if attacks.get("pgd_nested") else "") if pgd else "") + ".")
    corr = diag.get("corruptions") if isinstance(diag.get("corruptions"), dict) else {}
    mean, rel = corr.get("mean_corruption_accuracy"), corr.get("relative_accuracy")
    by = corr.get("mean_by_corruption") if isinstance(corr.get("mean_by_corruption"), dict) else {}
    worst = sorted(((c, a) for c, a in by.items() if _num(a)), key=lambda t: t[1])[:3]
    if _num(mean) or worst:
        lines.append("- Corruptions (CIFAR-10-C style, generated locally): "
                     + (f"mean corruption accuracy {mean:.3f}" if _num(mean) else "")
                     + (f" ({rel:.2f} of clean)" if _num(rel) else "")
                     + ("; worst: " + ", ".join(f"{c} ({a:.3f})" for c, a in worst) if worst else "") + ".")
    return lines


# --------------------------------------------------------------------------------------------
# Rendering
# --------------------------------------------------------------------------------------------


def _rel(path, base: Path) -> str:
    try:
        return os.path.relpath(Path(path).resolve(), base.resolve())
    except (TypeError, ValueError):
        return str(path)


def _header(info: dict, ctx: dict) -> list[str]:
    """Title and provenance line."""
    cfg, met, env, cal, data, per, diag, base = (ctx[k] for k in ("cfg", "met", "env", "cal", "data", "per", "diag", "base"))
    L: list[str] = []
    add = L.append
    add(f"# Model card: {ctx['name']}")
    add("")
    add(f"> Generated by `{ctx['command'] or 'python -m visiondl_keras model-card ' + _rel(info['run_dir'], base)}` from the "
        "run's artifacts; do not edit by hand. Every number below is read from the files listed at the end.")
    add("")
    return L


def _details(info: dict, ctx: dict) -> list[str]:
    """Model details."""
    cfg, met, env, cal, data, per, diag, base = (ctx[k] for k in ("cfg", "met", "env", "cal", "data", "per", "diag", "base"))
    L: list[str] = []
    add = L.append
    add("## Model details")
    add("")
    if cfg:
        size = (f"widths {'/'.join(map(str, cfg['widths']))}" if cfg.get("widths") else f"width {cfg.get('width', '?')}")
        add(f"- Architecture: `{cfg.get('arch', '?')}` ({size}), trained from scratch with "
            f"Keras {env.get('packages', {}).get('keras', '?')} on the {env.get('backend', '?')} backend"
            + (f", precision `{cfg['precision']}`" if cfg.get("precision") else "")
            + (f"; the shipped file stores its weights in `{ctx['storage']}`" if ctx.get("storage") else "") + ".")
    model = ctx["model"]
    if model:
        flops = model.get("flops")
        add(f"- Parameters: {model.get('params', 0):,}" + (f"; {flops / 1e6:.0f} MFLOPs per image" if _num(flops) else "") + ".")
    add("- Input: one RGB image, 32x32, values 0-255 (uint8 or float); the model normalises it itself. "
        "The inference CLI converts any image to that (see `visiondl_keras.deploy.predictor`).")
    temp = cal.get("temperature")
    add("- Output: 10 logits (airplane, automobile, bird, cat, deer, dog, frog, horse, ship, truck); probabilities are "
        + (f"`softmax(logits / T)` with the fitted temperature T = {temp:.4f} (calibration sidecar)." if _num(temp)
           else "`softmax(logits)` (no temperature fitted yet)."))
    if cfg:
        recipe = [f"{cfg.get('optimizer', '?')} optimiser, lr {cfg.get('lr', '?')}, {cfg.get('schedule', '?')} schedule",
                  f"{cfg.get('epochs', '?')} epochs, batch {cfg.get('batch_size', '?')}",
                  f"weight decay {cfg.get('weight_decay', '?')}, label smoothing {cfg.get('label_smoothing', '?')}",
                  f"augmentation `{cfg.get('policy', '?')}`, seed {cfg.get('seed', '?')}"]
        add(f"- Training recipe: {'; '.join(recipe)}.")
    if _num(met.get("train_time_s")):
        devices = ", ".join(env.get("devices", [])) or "?"
        add(f"- Training time: {met['train_time_s'] / 60:.1f} min on {devices} ({env.get('cpu_count', '?')} CPU cores); "
            f"best epoch {met.get('best_epoch', '?')}.")
    if info["checkpoint"]:
        add(f"- Checkpoint: `{_rel(info['checkpoint'], base)}`.")
    add("")
    return L


def _uses(info: dict, ctx: dict) -> list[str]:
    """Intended and out-of-scope uses."""
    cfg, met, env, cal, data, per, diag, base = (ctx[k] for k in ("cfg", "met", "env", "cal", "data", "per", "diag", "base"))
    L: list[str] = []
    add = L.append
    add("## Intended use")
    add("")
    add("- Teaching and experimentation in the visiondl-keras course: studying training, diagnostics, calibration "
        "and export on CIFAR-10.")
    add("- Classifying small, centred photographs of one of the ten CIFAR-10 classes, e.g. with "
        "`python -m visiondl_keras.infer samples/`.")
    add("")
    add("## Out-of-scope uses")
    add("")
    add("- Anything where a wrong label harms someone (safety, security, medical, legal or hiring decisions).")
    add("- Images outside the ten classes: the model always answers with one of them; a high probability does not "
        "mean the image shows a CIFAR-10 class.")
    add("- Identifying people, or any fine-grained recognition: at 32x32 pixels most detail is gone.")
    add("- Adversarial settings: small crafted perturbations change the prediction (see below).")
    add("")
    return L


def _training_data(info: dict, ctx: dict) -> list[str]:
    """Training data, with the JPEG-mirror caveat."""
    cfg, met, env, cal, data, per, diag, base = (ctx[k] for k in ("cfg", "met", "env", "cal", "data", "per", "diag", "base"))
    L: list[str] = []
    add = L.append
    add("## Training data")
    add("")
    if data:
        add(f"- Source: {data.get('description', 'CIFAR-10')}, file `{Path(str(data.get('source', '?'))).name}`, fingerprint "
            f"`{str(data.get('fingerprint', '?'))[:16]}`.")
        if _num(data.get("n_train")):
            add(f"- Splits: {data.get('n_train')} training / {data.get('n_val', '?')} validation images (stratified, seed "
                f"{cfg.get('seed', '?')}, from the 50,000 training images); {data.get('n_test', '?')} test images.")
    else:
        add("- CIFAR-10 (Krizhevsky 2009): 50,000 training and 10,000 test images, 32x32, ten classes.")
    if data.get("is_jpeg_mirror"):
        add("")
        add("**Caveat, JPEG mirror.** The model was trained and evaluated on a JPEG (quality 75) mirror of CIFAR-10, "
            "not on the official release: same images and split, but every image went through lossy JPEG compression, "
            "so pixels are not bit-identical and the per-channel std is about 1% lower. Accuracy on the official "
            "release can differ slightly from the numbers below.")
    add("")
    return L


def _metrics(info: dict, ctx: dict) -> list[str]:
    """Test accuracy and the per-class table."""
    cfg, met, env, cal, data, per, diag, base = (ctx[k] for k in ("cfg", "met", "env", "cal", "data", "per", "diag", "base"))
    L: list[str] = []
    add = L.append
    add("## Metrics")
    add("")
    if _num(met.get("test_accuracy")):
        n_test = data.get("n_test", "the")
        add(f"- Test accuracy: **{met['test_accuracy']:.4f}** on {n_test} test images"
            + (f"; test loss (NLL, T = 1) {met['test_loss']:.4f}" if _num(met.get("test_loss")) else "")
            + (f"; validation accuracy {met['val_accuracy']:.4f}." if _num(met.get("val_accuracy")) else "."))
    tta = {k: v.get("test_accuracy") for k, v in (met.get("tta") or {}).items() if isinstance(v, dict)}
    if any(_num(v) and k != "0" for k, v in tta.items()):
        level, acc = max((k, v) for k, v in tta.items() if _num(v))
        add(f"- With test-time augmentation level {level} (mirror and 1-pixel translations, "
            f"{met['tta'][level].get('forward_passes_per_image', '?')} forward passes per image): **{acc:.4f}**.")
    if _num(diag.get("accuracy")) and info["checkpoint"] is not None:
        add(f"- The shipped file `{Path(info['checkpoint']).name}` itself: {diag['accuracy']:.4f} on "
            f"{(diag.get('data') or {}).get('num_images', '?')} test images (diagnostics).")
    prf = diag.get("per_class") if isinstance(diag.get("per_class"), dict) else {}
    prf = {c: v for c, v in prf.items() if isinstance(v, dict) and all(_num(v.get(k)) for k in ("precision", "f1"))}
    if per:
        add("")
        if prf:
            n_diag = (diag.get("data") or {}).get("num_images", "?") if isinstance(diag.get("data"), dict) else "?"
            add(f"Per class (accuracy = recall from `metrics.json`; precision and F1 from the diagnostics on {n_diag} "
                "test images):")
            add("")
            add("| class | test accuracy | precision | F1 |")
            add("|---|---|---|---|")
        else:
            add("| class | test accuracy |")
            add("|---|---|")
        for cls, acc in sorted(per.items(), key=lambda kv: -(kv[1] if _num(kv[1]) else 0)):
            cells = [f"{acc:.4f}" if _num(acc) else "n/a"]
            if prf:
                cells += [f"{prf[cls]['precision']:.4f}", f"{prf[cls]['f1']:.4f}"] if cls in prf else ["n/a", "n/a"]
            add(f"| {cls} | " + " | ".join(cells) + " |")
    return L


def _calibration(info: dict, ctx: dict) -> list[str]:
    """Calibration before and after temperature scaling."""
    cfg, met, env, cal, data, per, diag, base = (ctx[k] for k in ("cfg", "met", "env", "cal", "data", "per", "diag", "base"))
    L: list[str] = []
    add = L.append
    add("")
    add("### Calibration")
    add("")
    if cal.get("test") and cal.get("val"):
        add(markdown_table({"temperature": cal["temperature"], "n_bins": cal.get("n_bins", 15),
                            "test": cal["test"], "val": cal["val"]}).rstrip())
        b, a = cal["test"]["before"], cal["test"]["after"]
        add("")
        add(f"On the test split, temperature scaling moves ECE from {_pct(b['ece'])} to {_pct(a['ece'])} and NLL from "
            f"{b['nll']:.4f} to {a['nll']:.4f}; accuracy is unchanged by construction (T only rescales the logits).")
    else:
        add("Not calibrated yet: run `python -m visiondl_keras calibrate` on the checkpoint.")
    add("")
    return L


def _limitations(info: dict, ctx: dict) -> list[str]:
    """Limitations and failure modes (weakest classes, diagnostics)."""
    cfg, met, env, cal, data, per, diag, base = (ctx[k] for k in ("cfg", "met", "env", "cal", "data", "per", "diag", "base"))
    L: list[str] = []
    add = L.append
    add("## Limitations and failure modes")
    add("")
    diag_lines = diagnostics_lines(diag) if diag else []
    if per:
        worst = sorted(((c, a) for c, a in per.items() if _num(a)), key=lambda t: t[1])[:3]
        add("- Weakest classes: " + ", ".join(f"{c} ({a:.3f})" for c, a in worst) + ".")
    L.extend(diag_lines)
    if not diag_lines:
        add("- Confusions, robustness to noise, adversarial perturbations and corruptions were not measured for this "
            "model (run `python -m visiondl_keras diagnose` and regenerate this card).")
    add("- Low resolution: objects must fill most of the frame; the CLI centre-crops and shrinks any image to 32x32.")
    add("- Distribution shift: photographs of the 2000s Tiny Images collection; drawings, renderings, unusual "
        "viewpoints and other image statistics reduce accuracy, and calibration fitted in-distribution does not "
        "carry over to shifted data.")
    bench = (info.get("ood") or {}).get("benchmark") or {}
    if bench.get("families"):
        aurocs = ", ".join(f"{name} {row['auroc']:.3f}" for name, row in bench["families"].items())
        add(f"- Out-of-distribution inputs: the inference command adds a caution when the top calibrated probability "
            f"is below {bench['threshold']:.3f} (chosen so that {100 * bench['acceptance']:.0f}% of validation images "
            f"pass; {100 * bench['test_flagged']:.1f}% of test images are flagged). It separates the test split from "
            f"offline out-of-distribution sets with AUROC {aurocs} (mean {bench['mean_auroc']:.3f}), so many "
            "unfamiliar images still get a confident answer.")
    add("")
    return L


def _export_formats(info: dict, ctx: dict) -> list[str]:
    """Export formats, from the export benchmark when present."""
    cfg, met, env, cal, data, per, diag, base = (ctx[k] for k in ("cfg", "met", "env", "cal", "data", "per", "diag", "base"))
    L: list[str] = []
    add = L.append
    add("## Export formats")
    add("")
    exp = info["export"]
    rows = exp.get("formats") if isinstance(exp.get("formats"), list) else None
    if rows:
        add("All formats output calibrated probabilities (temperature folded in). Measured by "
            "`benchmarks/export_benchmark.py`" + (f" on {exp['device']}" if exp.get("device") else "")
            + (f"; 1-minute load average {exp['load_average_at_end'][0]:.0f} at the end (a shared machine: latencies and "
               "cold starts are upper bounds)" if isinstance(exp.get("load_average_at_end"), list)
               and exp["load_average_at_end"] and _num(exp["load_average_at_end"][0])
               and exp["load_average_at_end"][0] > (os.cpu_count() or 1) else "") + ".")
        add("")
        add("| format | size | single-image latency | max abs prob. difference vs Keras | top-1 agreement |")
        add("|---|---|---|---|---|")
        for r in rows:
            size = f"{r['size_bytes'] / 1e6:.2f} MB" if _num(r.get("size_bytes")) else "n/a"
            lat = f"{r['latency_ms_median']:.2f} ms" if _num(r.get("latency_ms_median")) else "n/a"
            dp = f"{r['max_abs_dprob']:.1e}" if _num(r.get("max_abs_dprob")) else "n/a"
            agree = _pct(r.get("top1_agreement"))
            add(f"| {r.get('name', '?')} | {size} | {lat} | {dp} | {agree} |")
        cold = exp.get("cli_cold_start_s") or {}
        if cold:
            add("")
            add("Inference CLI cold start (one image, median wall time): "
                + ", ".join(f"{k} {v:.2f} s" for k, v in cold.items() if _num(v)) + ".")
    else:
        add("`python -m visiondl_keras export CHECKPOINT --format all --out DIR` writes a SavedModel and TFLite files "
            "(float32, float16, dynamic-range and int8); not benchmarked for this card.")
    add("")
    return L


def _provenance(info: dict, ctx: dict) -> list[str]:
    """The files the card was read from."""
    cfg, met, env, cal, data, per, diag, base = (ctx[k] for k in ("cfg", "met", "env", "cal", "data", "per", "diag", "base"))
    L: list[str] = []
    add = L.append
    add("## How this card was made")
    add("")
    add("Read from: " + ", ".join(f"`{_rel(s, base)}`" for s in info["sources"]) + ".")
    pk = env.get("packages", {})
    if pk:
        add("Environment of the training run: " + ", ".join(f"{k} {v}" for k, v in pk.items()) + f", Python {env.get('python', '?')}.")
    add("")
    return L


def _transfer(info: dict, ctx: dict) -> list[str]:
    """The shipped transfer-learning model, when one is published (see :mod:`.model_card_transfer`)."""
    # imported here: that module reads its files with this module's helpers
    from visiondl_keras.reporting.model_card_transfer import transfer_lines

    return transfer_lines(info["artifacts"], info["sources"]) if info.get("shipped") else []


SECTIONS = (_header, _details, _uses, _training_data, _metrics, _calibration, _limitations, _export_formats,
            _transfer, _provenance)


def render(info: dict, base: Path | None = None, command: str | None = None) -> str:
    """The model card as Markdown, from :func:`gather`'s dict.

    Args:
        info: the output of :func:`gather`.
        base: paths in the card are written relative to this folder (default: the current one).
        command: the command line named as the card's generator.

    Returns:
        The Markdown text.
    """
    cfg, met, env = info["config"], info["metrics"], info["environment"]
    model = met.get("model") or {}
    ctx = {
        "cfg": cfg, "met": met, "env": env, "cal": info["calibration"], "base": base or Path.cwd(),
        "data": met.get("data") or env.get("data") or {}, "model": model, "command": command,
        "storage": info.get("storage") if info.get("storage") not in (None, "float32") else None,
        "name": model.get("name") or (info["checkpoint"].stem if info["checkpoint"] else info["run_dir"].name),
        "per": met.get("per_class_accuracy") or {}, "diag": info["diagnostics"],
    }  # fmt: skip
    return "\n".join(line for section in SECTIONS for line in section(info, ctx))


def write_model_card(run_dir, out="model_card.md", checkpoint=None, artifacts_dir=None, command=None) -> Path:
    """Gather the run's artifacts and write the card atomically.

    Args:
        run_dir: the training run's directory.
        out: the Markdown file to write.
        checkpoint: the model file when it is not in ``run_dir``.
        artifacts_dir: the ``artifacts/`` folder (default: found above ``run_dir``).
        command: the command line named as the card's generator.

    Returns:
        The card's path.

    Raises:
        ConfigError: ``run_dir`` is not a run directory, or ``checkpoint`` does not exist.

    Example:
        >>> write_model_card("artifacts/runs/scratch_airbench94", "model_card.md")  # doctest: +SKIP
    """
    out = Path(out)
    info = gather(run_dir, checkpoint, artifacts_dir)
    return atomic_write_text(out, render(info, base=out.resolve().parent, command=command))
