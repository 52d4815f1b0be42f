"""The model card's section on the shipped transfer-learning model, read from its artifacts.

Read (each optional; the section says what is missing):

* ``artifacts/metrics/transfer_reference.json`` (``transfer-train --publish``): recipe, test accuracy,
  training time, checkpoint;
* ``artifacts/metrics/calibration_<checkpoint stem>.json`` (``calibrate``): ECE/NLL before and after
  temperature scaling;
* ``artifacts/metrics/diagnostics_<checkpoint stem>.json`` (``diagnose``): noise and corruption accuracy;
* ``artifacts/metrics/transfer_vs_scratch.json`` (``benchmarks/transfer_vs_scratch.py``): which family
  wins at equal training budgets.
"""

from __future__ import annotations

from pathlib import Path

from visiondl_keras.reporting.model_card import _pct, _read


def transfer_lines(art: Path, sources: list[str]) -> list[str]:
    """Markdown lines of the transfer model's section (empty when no transfer model is published).

    Args:
        art: the ``artifacts/`` folder.
        sources: the card's list of files read; the files used here are appended.
    """
    ref_path = art / "metrics" / "transfer_reference.json"
    ref = _read(ref_path)
    if "test_accuracy" not in ref:  # nothing published (or not a transfer-train summary)
        return []
    sources.append(str(ref_path))
    L: list[str] = ["## The transfer-learning model", ""]
    add = L.append
    ckpt = Path(ref.get("checkpoint", ""))
    data = ref.get("data") or {}  # n_test (newer runs) or test_images
    size = ref.get("checkpoint_bytes")
    add(f"`{ckpt.as_posix()}`: {ref.get('model', '?')}, {ref.get('params', 0):,} parameters"
        + (f", {size / 1e6:.1f} MB" if size else "") + "; raw 0–255 RGB in, logits out.")
    add("")
    add(f"Recipe: {ref.get('recipe', '(not recorded)')}")
    add("")
    n_test = data.get("n_test") or data.get("test_images")
    split = ref.get("test_split") or (f"{n_test:,} test images" if n_test else "the test split")
    tta = ""
    if ref.get("tta_level"):
        level = ref["tta_level"]
        passes = (ref.get("tta") or {}).get(str(level), {}).get("forward_passes_per_image")
        tta = (f"; **{_pct(ref['test_accuracy_tta'])}** with test-time augmentation level {level}"
               + (f" ({passes} forward passes per image)" if passes else ""))
    add(f"Test accuracy **{_pct(ref['test_accuracy'])}** (the checkpoint alone){tta} on the {split} after "
        f"{ref.get('train_time_s', 0) / 60:.1f} min of training "
        f"(best validation accuracy {_pct(ref.get('best_val_accuracy', 0))}); command: `{ref.get('command', '?')}`.")
    stem = ckpt.stem
    cal_path = art / "metrics" / f"calibration_{stem}.json"
    cal = _read(cal_path)
    if cal.get("test"):
        sources.append(str(cal_path))
        b, a = cal["test"]["before"], cal["test"]["after"]
        add("")
        add(f"Calibration (temperature {cal['temperature']:.3f}, fitted on the {cal.get('fitted_on', 'validation split')}): "
            f"test ECE {_pct(b['ece'])} → {_pct(a['ece'])}, NLL {b['nll']:.4f} → {a['nll']:.4f}.")
    else:
        add("")
        add(f"Not calibrated yet: `python -m visiondl_keras calibrate {ckpt.as_posix()}`.")
    diag_path = art / "metrics" / f"diagnostics_{stem}.json"
    diag = _read(diag_path)
    if diag:
        sources.append(str(diag_path))
        d = diag.get("data") or {}
        parts = [f"accuracy {_pct(diag['accuracy'])} on {d.get('num_images', '?')} test images"
                 + (" (a stratified subset)" if d.get("subset") else "")]
        corr = diag.get("corruptions") or {}
        if corr.get("mean_by_corruption"):
            mean = sum(corr["mean_by_corruption"].values()) / len(corr["mean_by_corruption"])
            worst = min(corr["mean_by_corruption"].items(), key=lambda kv: kv[1])
            parts.append(f"mean corruption accuracy {_pct(mean)} (worst: {worst[0]}, {_pct(worst[1])})")
        add("")
        add("Diagnostics: " + "; ".join(parts) + ".")
    vs_path = art / "metrics" / "transfer_vs_scratch.json"
    vs = _read(vs_path)
    if vs.get("table"):
        sources.append(str(vs_path))
        add("")
        add("Transfer vs scratch at equal training budgets (best run finished within the budget):")
        add("")
        add("| budget | scratch | transfer |")
        add("|---:|---:|---:|")
        for row in vs["table"]:
            s, t = row["scratch"]["finished_test_accuracy"], row["transfer"]["finished_test_accuracy"]
            add(f"| {row['budget_minutes']:.0f} min | {_pct(s) if s is not None else '–'} | "
                f"{_pct(t) if t is not None else '–'} |")
    add("")
    return L
