"""The computations behind the dashboard's tabs, free of UI code (and tested directly).

Every number comes from the package's own functions: uploads are read by the inference command's
:func:`~visiondl_keras.deploy.predictor.load_image`, predictions are the calibrated probabilities of
its predictors, TTA is :func:`~visiondl_keras.evaluation.tta.tta_logits`, the out-of-distribution
caution is the threshold stored with the model (:mod:`visiondl_keras.evaluation.ood`), Grad-CAM is
:func:`~visiondl_keras.evaluation.gradcam.gradcam`, the calibration metrics come from
:mod:`visiondl_keras.evaluation.calibration`, and the perturbations from
:mod:`~visiondl_keras.evaluation.corruptions` and :mod:`~visiondl_keras.evaluation.attacks`.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
from PIL import Image

from visiondl_keras.deploy.predictor import InputError, load_image
from visiondl_keras.errors import ConfigError
from visiondl_keras.runs import RunDir

MIN_SIDE = 8  # smaller uploads carry too little to classify (a 1x1 image is one colour)
MAX_UPLOAD_BYTES = 25 * 1024 * 1024
TTA_LEVEL = 2  # flips and +-1 pixel shifts: six views
PERTURBATIONS = ("corruption", "gaussian noise", "FGSM")


# --------------------------------------------------------------------------------------------
# Uploads
# --------------------------------------------------------------------------------------------


def validate_upload(path: str | os.PathLike | None) -> tuple[np.ndarray, list[str]]:
    """Read an uploaded file as the model's input, or say in one sentence why it cannot be used.

    The file goes through the inference command's reader (:func:`load_image`: the first frame of
    an animation, EXIF orientation, alpha on white, the central square, 32x32 by area averaging),
    after these checks: at most 25 MB, at least 8 pixels on each side.

    Args:
        path: the uploaded file (None: nothing uploaded).

    Returns:
        ``(image, notes)``: the uint8 (32, 32, 3) input and notes for the page (an animated image
        says that its first frame is used; a non-square one that its centre is used).

    Raises:
        InputError: no file, too large, not an image, a possible decompression bomb, or too small.

    Example:
        >>> validate_upload("notes.txt")  # doctest: +SKIP
        InputError: not an image file Pillow can read
    """
    if path is None or str(path) == "":
        raise InputError("no file: upload an image (PNG, JPEG, GIF, WebP, BMP, ...)")
    path = Path(path)
    if path.is_file() and path.stat().st_size > MAX_UPLOAD_BYTES:
        raise InputError(f"the file is {path.stat().st_size / 2**20:.1f} MB, over the "
                         f"{MAX_UPLOAD_BYTES // 2**20} MB limit; shrink it first")
    image = load_image(path)  # raises InputError for what it cannot read
    notes = []
    with Image.open(path) as im:
        (w, h), frames = im.size, getattr(im, "n_frames", 1)
    if min(w, h) < MIN_SIDE:
        raise InputError(f"the image is {w}x{h} pixels, too small to classify (at least {MIN_SIDE}x{MIN_SIDE} "
                         "needed)")
    if frames > 1:
        notes.append(f"an animated image ({frames} frames): its first frame is classified")
    if w != h:
        notes.append(f"{w}x{h} pixels: the central {min(w, h)}x{min(w, h)} square is classified")
    return image, notes


# --------------------------------------------------------------------------------------------
# Predictions
# --------------------------------------------------------------------------------------------


def predict_probs(predictor, images: np.ndarray, tta: bool = False) -> tuple[np.ndarray, bool]:
    """Calibrated probabilities of ``images``; with ``tta`` (Keras models only) averaged over six views.

    Returns:
        ``(probs, tta_used)``: float64 (N, classes) and whether TTA was applied (exports have no
        Keras model to run the views through, so they answer without it).
    """
    if tta and predictor.keras_model is not None:
        from visiondl_keras.evaluation.calibration import apply_temperature
        from visiondl_keras.evaluation.tta import tta_logits

        logits = tta_logits(predictor.keras_model, images, level=TTA_LEVEL)
        return apply_temperature(logits, predictor.temperature).astype(np.float64), True
    return predictor.predict(images), False


def top_k(probs_row: np.ndarray, class_names, k: int) -> list[dict]:
    """The ``k`` most probable labels of one row: ``[{"label", "probability"}, ...]``."""
    order = np.argsort(-probs_row, kind="stable")[: max(1, min(int(k), len(probs_row)))]
    return [{"label": class_names[j], "probability": round(float(probs_row[j]), 6)} for j in order]


def model_answer(name: str, predictor, image: np.ndarray, k: int = 3, tta: bool = False) -> dict:
    """One model's answer for one image, as the page shows it.

    Returns:
        ``{"model", "kind", "temperature", "calibrated", "tta", "predictions", "ood", "ood_score",
        "ood_threshold"}``; ``ood`` is None when the model carries no threshold (see
        :func:`visiondl_keras.evaluation.ood.is_ood`).
    """
    from visiondl_keras.evaluation.ood import is_ood, msp_score

    probs, used = predict_probs(predictor, image[None], tta)
    out = {"model": name, "kind": predictor.kind, "temperature": round(float(predictor.temperature), 4),
           "calibrated": predictor.temperature != 1.0, "tta": used,
           "predictions": top_k(probs[0], predictor.class_names, k),
           "ood": None, "ood_score": None, "ood_threshold": predictor.ood_threshold}
    if predictor.ood_threshold is not None:
        score = float(msp_score(probs)[0])
        out.update(ood=bool(is_ood(np.array([score]), predictor.ood_threshold)[0]), ood_score=round(score, 6))
    return out


def gradcam_overlay(predictor, image: np.ndarray, scale: int = 8) -> np.ndarray:
    """The Grad-CAM map of the predicted class over the image, enlarged ``scale`` times (uint8 RGB).

    Raises:
        ConfigError: the model is an export (no gradients).
    """
    if predictor.keras_model is None:
        raise ConfigError(f"{Path(predictor.source).name}: Grad-CAM needs a .keras checkpoint.")
    from visiondl_keras.evaluation.gradcam import gradcam, overlay_heatmap

    heat = gradcam(predictor.keras_model, image[None])[0]
    return overlay_heatmap(enlarge(image, scale), heat)


def enlarge(image: np.ndarray, scale: int = 8) -> np.ndarray:
    """A small image enlarged by nearest-neighbour sampling (pixels stay visible)."""
    return np.repeat(np.repeat(np.asarray(image, np.uint8), scale, axis=0), scale, axis=1)


# --------------------------------------------------------------------------------------------
# Errors and calibration on the test subset
# --------------------------------------------------------------------------------------------


def confusion(logits: np.ndarray, labels: np.ndarray, num_classes: int) -> dict:
    """The confusion matrices of a model on labelled images (see
    :func:`visiondl_keras.evaluation.diagnostics.confusion_matrices`), plus its accuracy."""
    from visiondl_keras.evaluation.diagnostics import confusion_matrices

    pred = np.asarray(logits).argmax(axis=1)
    out = confusion_matrices(labels, pred, num_classes)
    out["accuracy"] = float(np.mean(pred == labels)) if len(labels) else float("nan")
    return out


def cell_examples(probs: np.ndarray, labels: np.ndarray, true: int, predicted: int, limit: int = 24) -> np.ndarray:
    """Positions (into ``labels``) of the images of class ``true`` predicted as ``predicted``,
    most confident first, at most ``limit``."""
    pred = probs.argmax(axis=1)
    where = np.flatnonzero((labels == true) & (pred == predicted))
    return where[np.argsort(-probs[where, predicted], kind="stable")][:limit]


def temperature_report(logits, labels, temperature: float, n_bins: int = 15) -> dict:
    """Calibration metrics of ``softmax(logits / temperature)``: what the temperature slider shows.

    Args:
        logits: (N, classes) logits.
        labels: (N,) int labels.
        temperature: T > 0.
        n_bins: equal-width confidence bins of the ECE.

    Returns:
        :func:`~visiondl_keras.evaluation.calibration.calibration_metrics` of the scaled
        probabilities (``accuracy``, ``nll``, ``ece``, ...) plus ``temperature`` and ``probs``.
    """
    from visiondl_keras.evaluation.calibration import apply_temperature, calibration_metrics

    probs = apply_temperature(np.asarray(logits, np.float64), temperature)
    out = calibration_metrics(probs, labels, n_bins)
    out.update(temperature=float(temperature), probs=probs)
    return out


# --------------------------------------------------------------------------------------------
# Robustness
# --------------------------------------------------------------------------------------------


def perturb(image: np.ndarray, kind: str, corruption: str = "gaussian_noise", severity: int = 3,
            sigma: float = 8.0, epsilon: float = 4.0, keras_model=None, label: int | None = None,
            seed: int = 0) -> np.ndarray:
    """One image perturbed: a CIFAR-10-C corruption at a severity, Gaussian pixel noise of standard
    deviation ``sigma``, or an FGSM step of size ``epsilon`` (both in 0-255 pixel units).

    Args:
        image: uint8 (32, 32, 3).
        kind: one of :data:`PERTURBATIONS`.
        keras_model, label: for FGSM, the model attacked and the label whose loss is increased.

    Returns:
        uint8 (32, 32, 3) (FGSM and noise outputs rounded to whole pixel values).

    Raises:
        ConfigError: unknown kind, bad parameter, or FGSM without a Keras model.
    """
    x = np.asarray(image, np.uint8)[None]
    if kind == "corruption":
        from visiondl_keras.evaluation.corruptions import corrupt

        return corrupt(x, corruption, int(severity), seed=seed)[0]
    if kind == "gaussian noise":
        if not np.isfinite(sigma) or sigma < 0:
            raise ConfigError(f"sigma must be a non-negative number of 0-255 pixel units, got {sigma}.")
        noise = np.random.default_rng(seed).normal(0.0, float(sigma), size=x.shape)
        out = np.clip(x + noise, 0, 255)
    elif kind == "FGSM":
        if keras_model is None:
            raise ConfigError("FGSM needs gradients: choose a .keras model.")
        from visiondl_keras.evaluation.attacks import fgsm_attack

        out = fgsm_attack(keras_model, x, np.array([int(label)]), float(epsilon))
    else:
        raise ConfigError(f"unknown perturbation {kind!r}; choose one of {', '.join(PERTURBATIONS)}.")
    return np.clip(np.rint(out[0]), 0, 255).astype(np.uint8)


def read_diagnostics(path: str | os.PathLike) -> dict | None:
    """The ``noise``, ``attacks`` and ``corruptions`` sections (and ``data``) of a diagnostics JSON
    written by ``python -m visiondl_keras diagnose``; None when the file is missing."""
    path = Path(path)
    if not path.is_file():
        return None
    d = json.loads(path.read_text())
    return {k: d.get(k) for k in ("model", "data", "noise", "attacks", "corruptions")}


# --------------------------------------------------------------------------------------------
# Runs
# --------------------------------------------------------------------------------------------


def find_runs(roots, base: str | os.PathLike | None = None) -> dict[str, Path]:
    """Run directories holding a ``history.csv`` under the given folders, in order.

    Returns:
        ``{name: path}``, the name being the path relative to ``base`` (default: to each root's parent).
    """
    out: dict[str, Path] = {}
    for root in roots:
        root = Path(root)
        if root.is_dir():
            for hist in sorted(root.rglob("history.csv")):
                rel = hist.parent.relative_to(Path(base) if base is not None else root.parent)
                out[rel.as_posix()] = hist.parent
    return out


def read_history(run_dir: str | os.PathLike) -> list[dict]:
    """The rows of a run's ``history.csv`` (:meth:`visiondl_keras.runs.RunDir.read_history`), numeric
    values only (empty cells, such as an unused momentum column, are dropped)."""
    rows = RunDir(run_dir).read_history()
    return [{k: float(v) for k, v in row.items() if isinstance(v, (int, float))} for row in rows]


def overlaid_curves(histories: dict[str, list[dict]], metric: str, x: str = "epoch") -> dict:
    """Long-format columns for a line plot of ``metric`` against ``x`` for several runs:
    ``{x: [...], metric: [...], "run": [...]}`` (runs without the metric contribute nothing)."""
    xs, ys, runs = [], [], []
    for name, rows in histories.items():
        for i, row in enumerate(rows):
            if metric in row:
                xs.append(row.get(x, float(i + 1)))
                ys.append(row[metric])
                runs.append(name)
    return {x: xs, metric: ys, "run": runs}
