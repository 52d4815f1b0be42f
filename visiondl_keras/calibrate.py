"""``python -m visiondl_keras calibrate CHECKPOINT_OR_RUN_DIR``: fit and store a temperature.

The temperature is fitted on the run's **validation split**, reproduced exactly from the run's
``config.json`` (``seed``, ``val_size``, ``limit``, ``data``) through
:func:`visiondl_keras.data.train_val_split`; the test split is only measured. The command writes

* the sidecar ``<checkpoint>.calibration.json`` (read by evaluation, inference and export);
* ``calibration_<name>.json`` and ``calibration_<name>.md``: accuracy, NLL, ECE, adaptive ECE,
  MCE and Brier score before and after scaling, on the validation and test splits;
* ``reliability_<name>_before.png`` and ``reliability_<name>_after.png`` (test split).

Example::

    python -m visiondl_keras calibrate runs/quick
    python -m visiondl_keras calibrate artifacts/checkpoints/scratch_resnet9.keras \\
        --run-dir artifacts/runs/scratch_reference --out-dir artifacts/metrics --figures-dir artifacts/figures/calibration
"""

from __future__ import annotations

import os
import sys
import warnings
from pathlib import Path

from .artifacts import atomic_write_text, checkpoint_file, read_json, write_json
from .calibration import (
    apply_temperature,
    calibration_metrics,
    fit_temperature,
    reliability_diagram,
    save_temperature,
)
from .errors import ConfigError, ModelError

TABLE_METRICS = (("accuracy", "accuracy"), ("nll", "NLL"), ("ece", "ECE"), ("adaptive_ece", "adaptive ECE"),
                 ("mce", "MCE"), ("brier", "Brier"))


# --------------------------------------------------------------------------------------------
# Finding the checkpoint and its run
# --------------------------------------------------------------------------------------------


def resolve_checkpoint(path: str | os.PathLike, run_dir: str | os.PathLike | None = None) -> tuple[Path, Path | None]:
    """The ``.keras`` checkpoint and the run directory (with ``config.json``) that ``path`` names.

    Args:
        path: a ``.keras`` file or a run directory (its ``best.keras``, ``model.keras`` or
            ``last.keras`` is used).
        run_dir: the run directory when it is not the checkpoint's own folder (e.g. the shipped
            checkpoint ``artifacts/checkpoints/scratch_resnet9.keras`` and its run files in
            ``artifacts/runs/scratch_reference/``).

    Returns:
        ``(checkpoint, run_dir)``; ``run_dir`` is None when no ``config.json`` was found.

    Raises:
        ModelError: no checkpoint at ``path``.
        ConfigError: ``run_dir`` was given but holds no ``config.json``.
    """
    path = Path(path)
    if path.is_dir():
        checkpoint = checkpoint_file(path)
    elif path.is_file():
        if path.suffix != ".keras":
            raise ModelError(f"{path}: expected a .keras checkpoint or a run directory.")
        checkpoint = path
    else:
        raise ModelError(f"{path}: no such checkpoint or run directory.")
    if run_dir is not None:
        run_dir = Path(run_dir)
        if not (run_dir / "config.json").is_file():
            raise ConfigError(f"{run_dir}: no config.json there; --run-dir must be the training run's directory.")
        return checkpoint, run_dir
    if (checkpoint.parent / "config.json").is_file():
        return checkpoint, checkpoint.parent
    return checkpoint, None


def read_run_file(run_dir: Path | None, name: str) -> dict:
    """``run_dir/name`` as a dict, or ``{}`` when there is no such file."""
    if run_dir is None or not (run_dir / name).is_file():
        return {}
    try:
        return read_json(run_dir / name)
    except (OSError, ValueError) as exc:
        raise ConfigError(f"{run_dir / name}: not valid JSON ({exc}); the run directory is damaged.") from exc


def split_settings(config: dict, seed=None, val_size=None, data=None) -> dict:
    """The arguments of :func:`~visiondl_keras.data.train_val_split` that the run used.

    Explicit values win over the run's ``config.json``. Without a config, ``seed`` and
    ``val_size`` must be given: a guessed split could put training images into the calibration set.
    """
    if not config and (seed is None or val_size is None):
        raise ConfigError(
            "no config.json found for this checkpoint; pass --run-dir RUN_DIR, or --seed and --val-size of the "
            "training run, so that the validation split can be reproduced."
        )
    settings = {
        "seed": int(seed if seed is not None else config.get("seed", 0)),
        "val_size": int(val_size if val_size is not None else config.get("val_size", 5000)),
        "limit": config.get("limit"),
        "test_limit": config.get("test_limit"),
        "data": data if data is not None else config.get("data"),
    }
    if settings["val_size"] <= 0:
        raise ConfigError("the run has no validation split (val_size 0); a temperature cannot be fitted without one.")
    return settings


def load_splits(settings: dict, expected_fingerprint: str | None = None, progress: bool = True):
    """Load the data and reproduce the run's splits; warn when the data differ from the run's."""
    from .data import load_cifar10, train_val_split

    ds = load_cifar10(settings["data"], progress=progress)
    if expected_fingerprint and ds.fingerprint != expected_fingerprint:
        warnings.warn(
            f"the data loaded from {ds.source} (fingerprint {ds.fingerprint[:12]}) differ from the run's "
            f"(fingerprint {expected_fingerprint[:12]}); the validation split may not be the one used in training.",
            stacklevel=2,
        )
    return train_val_split(ds, settings["val_size"], settings["seed"], settings["limit"], settings["test_limit"])


# --------------------------------------------------------------------------------------------
# The command
# --------------------------------------------------------------------------------------------


def markdown_table(result: dict) -> str:
    """The before/after table of :func:`calibrate_checkpoint`'s result as Markdown."""
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
    return "\n".join([head, rule, *rows]) + "\n\n" + note + "\n"


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
    """
    from .gradients import predict_logits
    from .models import load_checkpoint
    from .plots import save_figure

    checkpoint, run_dir = resolve_checkpoint(checkpoint, run_dir)
    config = read_run_file(run_dir, "config.json")
    metrics = read_run_file(run_dir, "metrics.json")
    settings = split_settings(config, seed, val_size, data)
    splits = load_splits(settings, (metrics.get("data") or {}).get("fingerprint"), progress=progress)
    model = load_checkpoint(checkpoint)
    val_logits = predict_logits(model, splits.x_val, batch_size)
    test_logits = predict_logits(model, splits.x_test, batch_size)
    temperature = fit_temperature(val_logits, splits.y_val)

    result = {"checkpoint": str(checkpoint), "run_dir": str(run_dir) if run_dir else None, "temperature": temperature,
              "n_bins": n_bins, "fitted_on": "validation split",
              "split": {k: settings[k] for k in ("seed", "val_size", "limit", "test_limit")},
              "data": {"source": splits.source, "fingerprint": splits.fingerprint}}
    for split, logits, labels in (("val", val_logits, splits.y_val), ("test", test_logits, splits.y_test)):
        result[split] = {when: calibration_metrics(apply_temperature(logits, t), labels, n_bins)
                         for when, t in (("before", 1.0), ("after", temperature))}

    name = checkpoint.stem
    out_dir = Path(out_dir) if out_dir else (run_dir or checkpoint.parent)
    figures_dir = Path(figures_dir) if figures_dir else out_dir / "figures"
    figures = {}
    for when, t in (("before", 1.0), ("after", temperature)):
        title = f"{name}, test split, {when} temperature scaling (T = {t:.3f})"
        fig = reliability_diagram(apply_temperature(test_logits, t), splits.y_test, n_bins, title=title)
        figures[when] = str(save_figure(fig, figures_dir / f"reliability_{name}_{when}.png"))
    result["figures"] = figures
    sidecar = save_temperature(checkpoint, temperature, **{k: result[k] for k in ("n_bins", "fitted_on", "split", "data",
                                                                                 "val", "test")})
    result["sidecar"] = str(sidecar)
    write_json(out_dir / f"calibration_{name}.json", result)
    atomic_write_text(out_dir / f"calibration_{name}.md", f"# Calibration of {name}\n\n" + markdown_table(result))
    return result


def _run(args) -> int:
    result = calibrate_checkpoint(args.checkpoint, args.run_dir, args.out_dir, args.figures_dir, args.data, args.seed,
                                  args.val_size, args.n_bins, args.batch_size, progress=not args.quiet)
    if not args.quiet:
        print(markdown_table(result))
        print(f"temperature written to {result['sidecar']}")
    return 0


def register_commands(subparsers) -> None:
    p = subparsers.add_parser(
        "calibrate",
        help="fit a temperature on the validation split; write the sidecar, tables and reliability diagrams",
        description=__doc__.split("\n\n")[0],
    )
    p.add_argument("checkpoint", metavar="CHECKPOINT_OR_RUN_DIR", help="a .keras checkpoint or a run directory")
    p.add_argument("--run-dir", help="the training run's directory (config.json) when not the checkpoint's folder")
    p.add_argument("--data", help="CIFAR-10 source (default: the run's, else VISIONDL_DATA)")
    p.add_argument("--seed", type=int, help="split seed (default: the run's config.json)")
    p.add_argument("--val-size", type=int, help="validation size (default: the run's config.json)")
    p.add_argument("--out-dir", help="folder for calibration_<name>.json/.md (default: the run directory)")
    p.add_argument("--figures-dir", help="folder for the reliability diagrams (default: OUT_DIR/figures)")
    p.add_argument("--n-bins", type=int, default=15, help="bins of ECE/MCE (default 15)")
    p.add_argument("--batch-size", type=int, default=500)
    p.add_argument("--quiet", action="store_true", help="no progress bars, no table")
    p.set_defaults(func=_run)


if __name__ == "__main__":  # pragma: no cover
    from .cli import main

    sys.exit(main(["calibrate", *sys.argv[1:]]))
