"""Fit and store the temperature of a checkpoint: :func:`calibrate_checkpoint`.

The temperature is fitted on the run's **validation split**, reproduced exactly from the run's
``config.json`` (``seed``, ``val_size``, ``limit``, ``data``) through
:func:`visiondl_keras.data.splits.train_val_split`; the test split is only measured. It writes

* the sidecar ``<checkpoint>.calibration.json`` (read by evaluation, inference and export);
* ``calibration_<name>.json`` and ``calibration_<name>.md``: accuracy, NLL, ECE, adaptive ECE,
  MCE and Brier score before and after scaling, on the validation and test splits, and
  ``test_ece_floor``: the lowest test ECE any single temperature reaches
  (:func:`~visiondl_keras.evaluation.calibration.lowest_ece_temperature`, a bound, not a fit);
* ``reliability_<name>_before.png`` and ``reliability_<name>_after.png`` (test split).

The command line is ``python -m visiondl_keras calibrate``::

    python -m visiondl_keras calibrate runs/quick
    python -m visiondl_keras calibrate artifacts/checkpoints/scratch_airbench94.keras \\
        --run-dir artifacts/runs/scratch_airbench94 --out-dir artifacts/metrics --figures-dir artifacts/figures/calibration
"""

from __future__ import annotations

from pathlib import Path

from visiondl_keras.data.cifar10 import describe_data
from visiondl_keras.data.splits import load_run_splits
from visiondl_keras.evaluation.calibration import (
    apply_temperature,
    calibration_metrics,
    fit_temperature,
    lowest_ece_temperature,
    reliability_diagram,
    save_temperature,
)
from visiondl_keras.evaluation.gradients import predict_logits
from visiondl_keras.evaluation.ood import fit_threshold, msp_score, ood_benchmark, ood_rule
from visiondl_keras.io import atomic_write_text, write_json
from visiondl_keras.models import load_checkpoint
from visiondl_keras.reporting.plots import save_figure
from visiondl_keras.runs import read_run_file, resolve_checkpoint, split_settings

TABLE_METRICS = (("accuracy", "accuracy"), ("nll", "NLL"), ("ece", "ECE"), ("adaptive_ece", "adaptive ECE"),
                 ("mce", "MCE"), ("brier", "Brier"))


def markdown_table(result: dict) -> str:
    """The before/after table of :func:`calibrate_checkpoint`'s result as Markdown.

    Args:
        result: a dict with ``temperature``, ``n_bins`` and ``val`` / ``test`` entries, each
            ``{"before": metrics, "after": metrics}`` from
            :func:`~visiondl_keras.evaluation.calibration.calibration_metrics`.

    Returns:
        A Markdown table (one row per split and before/after) and a note on the method.
    """
    t = result["temperature"]
    head = "| split | temperature | " + " | ".join(label for _, label in TABLE_METRICS) + " |"
    rule = "|" + "---|" * (len(TABLE_METRICS) + 2)
    rows = []
    for split in ("test", "val"):
        for when, temp in (("before", 1.0), ("after", t)):
            m = result[split][when]
            cells = [f"{m['accuracy']:.4f}"] + [f"{m[k]:.4f}" if k in ("nll", "brier") else f"{100 * m[k]:.2f}%"
                                                 for k, _ in TABLE_METRICS[1:]]
            rows.append(f"| {split} ({m['n']} images), {when} | {temp:.3f} | " + " | ".join(cells) + " |")
    note = (f"Temperature T = {t:.4f} fitted on the validation split ({result['val']['before']['n']} images); "
            f"ECE/MCE with {result['n_bins']} equal-width bins ((m-1)/M, m/M]; adaptive ECE with equal-mass bins.")
    floor = result.get("test_ece_floor")
    if floor:
        note += (f" No single temperature brings the test ECE below {100 * floor['ece']:.2f}% (reached at "
                 f"T = {floor['temperature']:.3f}, searched on the test split itself: a bound, not a calibration).")
    return "\n".join([head, rule, *rows]) + "\n\n" + note + "\n" + ood_markdown(result.get("ood"))


def ood_markdown(ood: dict | None) -> str:
    """The out-of-distribution caution's threshold and benchmark as Markdown (empty without one)."""
    bench = (ood or {}).get("benchmark")
    if not bench:
        return ""
    lines = ["", f"Out-of-distribution caution: an input is flagged when its top calibrated probability is below "
             f"{bench['threshold']:.3f} (chosen on the validation split to accept {100 * bench['acceptance']:.0f}% of it; "
             f"{100 * bench['test_flagged']:.1f}% of the {bench['n_test']} test images are flagged).", "",
             "| out-of-distribution set | images | AUROC vs the test split | flagged |", "|---|---|---|---|"]
    for name, row in bench["families"].items():
        lines.append(f"| {name} | {row['n']} | {row['auroc']:.3f} | {100 * row['flagged']:.1f}% |")
    lines.append(f"| mean | | {bench['mean_auroc']:.3f} | |")
    return "\n".join(lines) + "\n"


def calibrate_checkpoint(checkpoint, run_dir=None, out_dir=None, figures_dir=None, data=None, seed=None,
                         val_size=None, n_bins: int = 15, batch_size: int = 500, progress: bool = True) -> dict:
    """Fit the temperature of a checkpoint on its run's validation split and write every output.

    Args:
        checkpoint: a ``.keras`` file or a run directory.
        run_dir: the run directory when it is not the checkpoint's folder.
        out_dir: where the JSON and Markdown tables go (default: the run directory, else the
            checkpoint's folder).
        figures_dir: where the reliability diagrams go (default ``out_dir/figures``).
        data, seed, val_size: override the run's ``config.json``.
        n_bins: bins of ECE/MCE and of the diagrams.
        batch_size: prediction batch size.
        progress: progress bars.

    Returns:
        The result dict (also written as ``calibration_<name>.json``).

    Raises:
        ModelError: no checkpoint at ``checkpoint``, or it cannot be loaded.
        ConfigError: no run configuration to reproduce the validation split from (pass
            ``run_dir``, or ``seed`` and ``val_size``), or the run had no validation split.
        DataError: the data cannot be loaded.

    Example:
        >>> result = calibrate_checkpoint("runs/quick", progress=False)  # doctest: +SKIP
        >>> round(result["temperature"], 2), result["sidecar"]  # doctest: +SKIP
        (1.43, 'runs/quick/best.keras.calibration.json')
    """
    checkpoint, run_dir = resolve_checkpoint(checkpoint, run_dir)
    config = read_run_file(run_dir, "config.json")
    metrics = read_run_file(run_dir, "metrics.json")
    settings = split_settings(config, seed, val_size, data)
    splits = load_run_splits(settings, (metrics.get("data") or {}).get("fingerprint"), progress=progress)
    model = load_checkpoint(checkpoint)
    val_logits = predict_logits(model, splits.x_val, batch_size)
    test_logits = predict_logits(model, splits.x_test, batch_size)
    temperature = fit_temperature(val_logits, splits.y_val)
    threshold = fit_threshold(msp_score(apply_temperature(val_logits, temperature)))

    result = {"checkpoint": str(checkpoint), "run_dir": str(run_dir) if run_dir else None, "temperature": temperature,
              "n_bins": n_bins, "fitted_on": "validation split",
              "split": {k: settings[k] for k in ("seed", "val_size", "limit", "test_limit")},
              "data": {k: v for k, v in describe_data(splits).items() if k in ("source", "description", "fingerprint")}}
    for split, logits, labels in (("val", val_logits, splits.y_val), ("test", test_logits, splits.y_test)):
        result[split] = {when: calibration_metrics(apply_temperature(logits, t), labels, n_bins)
                         for when, t in (("before", 1.0), ("after", temperature))}

    best_t, best_ece = lowest_ece_temperature(test_logits, splits.y_test, n_bins)
    result["test_ece_floor"] = {"temperature": best_t, "ece": best_ece, "what": (
        "the lowest test ECE any single temperature reaches, searched on the test split itself: a bound on what "
        "temperature scaling can do for this model, not a calibration")}

    def calibrated_probs(images):
        return apply_temperature(predict_logits(model, images, batch_size), temperature)

    result["ood"] = {**ood_rule(threshold), "benchmark": ood_benchmark(
        calibrated_probs, splits.x_val, splits.x_test, threshold=threshold,
        test_probs=apply_temperature(test_logits, temperature))}

    name = checkpoint.stem
    out_dir = Path(out_dir) if out_dir else (run_dir or checkpoint.parent)
    figures_dir = Path(figures_dir) if figures_dir else out_dir / "figures"
    figures = {}
    for when, t in (("before", 1.0), ("after", temperature)):
        title = f"{name}, test split, {when} temperature scaling (T = {t:.3f})"
        fig = reliability_diagram(apply_temperature(test_logits, t), splits.y_test, n_bins, title=title)
        figures[when] = str(save_figure(fig, figures_dir / f"reliability_{name}_{when}.png"))
    result["figures"] = figures
    sidecar = save_temperature(checkpoint, temperature, ood=ood_rule(threshold),
                               **{k: result[k] for k in ("n_bins", "fitted_on", "split", "data", "val", "test")})
    result["sidecar"] = str(sidecar)
    write_json(out_dir / f"calibration_{name}.json", result)
    atomic_write_text(out_dir / f"calibration_{name}.md", f"# Calibration of {name}\n\n" + markdown_table(result))
    return result
