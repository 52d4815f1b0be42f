"""Calibration: ECE and friends, reliability diagrams, temperature scaling, the temperature sidecar.

A classifier is *calibrated* when, among the images it labels with confidence p, a fraction p is
right. The metrics here measure how far a model is from that, on the top label:

* :func:`expected_calibration_error` (ECE, Guo et al. 2017): equal-width confidence bins
  ``((m-1)/M, m/M]``, the gap ``|accuracy - confidence|`` of each bin weighted by its share of images;
* :func:`adaptive_calibration_error`: the same with equal-mass bins (each holds ~N/M images);
* :func:`maximum_calibration_error` (MCE): the largest gap over the non-empty bins;
* :func:`negative_log_likelihood` and :func:`brier_score`: proper scoring rules of the whole vector.

**Temperature scaling** divides the logits by one scalar T > 0 fitted on the validation split
(:func:`fit_temperature`). It never changes the arg-max, so accuracy is untouched, and it lowers
the validation NLL. The fitted T is stored *with the model* in a sidecar JSON beside the checkpoint,
``<checkpoint>.calibration.json`` (:func:`save_temperature` / :func:`load_temperature`), and used
by evaluation, the inference CLI and export (which folds it into the exported graph).

Everything here is numpy (post-hoc analysis on arrays of logits or probabilities).
"""

from __future__ import annotations

import json
import os
import warnings
from pathlib import Path

import numpy as np
from scipy.optimize import minimize_scalar

from visiondl_keras.errors import ConfigError, ModelError
from visiondl_keras.evaluation.metrics import accuracy, check_temperature, softmax
from visiondl_keras.io import file_sha256, read_json, write_json
from visiondl_keras.reporting.plots import reliability_diagram_figure

SIDECAR_SUFFIX = ".calibration.json"
TEMPERATURE_BOUNDS = (0.05, 20.0)


# --------------------------------------------------------------------------------------------
# Input checks
# --------------------------------------------------------------------------------------------


def _check(scores, labels, name: str) -> tuple[np.ndarray, np.ndarray]:
    scores = np.asarray(scores, dtype=np.float64)
    labels = np.asarray(labels)
    if scores.ndim != 2 or scores.shape[1] < 2:
        raise ConfigError(f"{name} must be a 2-D array (N, num_classes) with num_classes >= 2, got shape {scores.shape}.")
    if labels.shape != (scores.shape[0],):
        raise ConfigError(f"labels must have shape ({scores.shape[0]},) to match {name}, got {labels.shape}.")
    if scores.shape[0] == 0:
        raise ConfigError(f"{name} is empty; need at least one example.")
    if not np.all(np.isfinite(scores)):
        raise ConfigError(f"{name} contains NaN or Inf values.")
    if not np.issubdtype(labels.dtype, np.integer) or labels.min() < 0 or labels.max() >= scores.shape[1]:
        raise ConfigError(f"labels must be integers in [0, {scores.shape[1] - 1}].")
    return scores, labels.astype(np.int64)


def apply_temperature(logits, temperature: float) -> np.ndarray:
    """Calibrated probabilities ``softmax(logits / temperature)`` as float32.

    Args:
        logits: array (N, num_classes) of logits.
        temperature: T > 0 (1.0 leaves the model as it is).

    Returns:
        float32 probabilities (N, num_classes); the arg-max of every row is unchanged.

    Example:
        >>> apply_temperature([[2.0, 0.0]], 2.0).round(3)
        array([[0.731, 0.269]], dtype=float32)
    """
    return softmax(logits, temperature).astype(np.float32)


# --------------------------------------------------------------------------------------------
# Metrics
# --------------------------------------------------------------------------------------------


def calibration_bins(probs, labels, n_bins: int = 15) -> dict:
    """Equal-width top-label confidence bins: bin m (1-based) holds confidences in ((m-1)/M, m/M].

    Args:
        probs: probabilities (N, num_classes).
        labels: int labels (N,).
        n_bins: M.

    Returns:
        A dict of numpy arrays of length M: ``edges`` (M+1), ``counts``, ``accuracy`` and
        ``confidence`` (mean per bin, NaN for empty bins), plus ``gap`` = |accuracy - confidence|
        (0 for empty bins).
    """
    probs, labels = _check(probs, labels, "probs")
    if not isinstance(n_bins, (int, np.integer)) or n_bins < 1:
        raise ConfigError(f"n_bins must be a positive integer, got {n_bins!r}.")
    conf = probs.max(axis=1)
    correct = (probs.argmax(axis=1) == labels).astype(np.float64)
    edges = np.linspace(0.0, 1.0, n_bins + 1)
    # searchsorted(side="left") gives i with edges[i-1] < conf <= edges[i]: bin i-1 is ((i-1)/M, i/M].
    idx = np.clip(np.searchsorted(edges, conf, side="left") - 1, 0, n_bins - 1)
    counts = np.bincount(idx, minlength=n_bins).astype(np.int64)
    with np.errstate(invalid="ignore", divide="ignore"):
        acc = np.bincount(idx, weights=correct, minlength=n_bins) / counts
        mean_conf = np.bincount(idx, weights=conf, minlength=n_bins) / counts
    gap = np.where(counts > 0, np.abs(acc - mean_conf), 0.0)
    return {"edges": edges, "counts": counts, "accuracy": acc, "confidence": mean_conf, "gap": np.nan_to_num(gap)}


def expected_calibration_error(probs, labels, n_bins: int = 15) -> float:
    """Top-label expected calibration error with equal-width bins (Guo et al. 2017).

    ``ECE = sum_m |B_m| / N * |acc(B_m) - conf(B_m)|`` with bin m holding the confidences in
    ((m-1)/M, m/M].

    Args:
        probs: probabilities (N, num_classes) (apply a softmax to logits first).
        labels: int labels (N,).
        n_bins: M, the number of bins (15 as in Guo et al.).

    Returns:
        The ECE, a float in [0, 1].

    Example:
        >>> expected_calibration_error([[0.9, 0.1], [0.6, 0.4]], [0, 1], n_bins=10)
        0.35
    """
    b = calibration_bins(probs, labels, n_bins)
    return float(round(np.sum(b["counts"] * b["gap"]) / b["counts"].sum(), 12))


def adaptive_calibration_error(probs, labels, n_bins: int = 15) -> float:
    """ECE with equal-mass bins: images sorted by confidence, split into ``n_bins`` groups of ~N/M.

    Args:
        probs: probabilities (N, num_classes).
        labels: int labels (N,).
        n_bins: number of groups (at most N are used).

    Returns:
        The adaptive ECE, a float in [0, 1].
    """
    probs, labels = _check(probs, labels, "probs")
    if not isinstance(n_bins, (int, np.integer)) or n_bins < 1:
        raise ConfigError(f"n_bins must be a positive integer, got {n_bins!r}.")
    conf = probs.max(axis=1)
    correct = probs.argmax(axis=1) == labels
    order = np.argsort(conf, kind="stable")
    total = 0.0
    for group in np.array_split(order, min(n_bins, len(order))):
        total += len(group) * abs(correct[group].mean() - conf[group].mean())
    return float(total / len(conf))


def maximum_calibration_error(probs, labels, n_bins: int = 15) -> float:
    """Largest ``|accuracy - confidence|`` over the non-empty equal-width bins (MCE)."""
    return float(calibration_bins(probs, labels, n_bins)["gap"].max())


def negative_log_likelihood(probs, labels, eps: float = 1e-12) -> float:
    """Mean ``-log p(true class)``; probabilities are clipped at ``eps`` so the value stays finite."""
    probs, labels = _check(probs, labels, "probs")
    return float(-np.mean(np.log(np.clip(probs[np.arange(len(labels)), labels], eps, 1.0))))


def brier_score(probs, labels) -> float:
    """Multi-class Brier score: mean over images of ``sum_k (p_k - 1[k = y])^2`` (0 is perfect, max 2)."""
    probs, labels = _check(probs, labels, "probs")
    onehot = np.eye(probs.shape[1])[labels]
    return float(np.mean(np.sum((probs - onehot) ** 2, axis=1)))


def calibration_metrics(probs, labels, n_bins: int = 15) -> dict:
    """All the metrics of this module for one set of predictions.

    Returns:
        ``{"n", "accuracy", "nll", "ece", "adaptive_ece", "mce", "brier", "mean_confidence"}``.
    """
    probs, labels = _check(probs, labels, "probs")
    return {
        "n": int(len(labels)),
        "accuracy": accuracy(probs, labels),
        "nll": negative_log_likelihood(probs, labels),
        "ece": expected_calibration_error(probs, labels, n_bins),
        "adaptive_ece": adaptive_calibration_error(probs, labels, n_bins),
        "mce": maximum_calibration_error(probs, labels, n_bins),
        "brier": brier_score(probs, labels),
        "mean_confidence": float(probs.max(axis=1).mean()),
    }


def reliability_diagram(probs, labels, n_bins: int = 15, title: str | None = None):
    """A reliability diagram (accuracy vs confidence per bin) above a confidence histogram.

    Args:
        probs: probabilities (N, num_classes).
        labels: int labels (N,).
        n_bins: equal-width bins, as in :func:`expected_calibration_error`.
        title: figure title (the ECE is added).

    Returns:
        A matplotlib ``Figure`` (one figure, two panels); save it with
        :func:`visiondl_keras.reporting.plots.save_figure`.
    """
    probs, labels = _check(probs, labels, "probs")
    bins = calibration_bins(probs, labels, n_bins)
    return reliability_diagram_figure(
        bins,
        ece=expected_calibration_error(probs, labels, n_bins),
        accuracy=accuracy(probs, labels),
        mean_confidence=float(probs.max(axis=1).mean()),
        title=title,
    )


# --------------------------------------------------------------------------------------------
# Temperature scaling
# --------------------------------------------------------------------------------------------


def temperature_nll(logits, labels, temperature: float) -> float:
    """Mean NLL of ``softmax(logits / temperature)`` computed stably in log space."""
    logits, labels = _check(logits, labels, "logits")
    z = logits / check_temperature(temperature)
    z = z - z.max(axis=1, keepdims=True)
    logsumexp = np.log(np.exp(z).sum(axis=1))
    return float(np.mean(logsumexp - z[np.arange(len(labels)), labels]))


def _check_bounds(bounds) -> tuple[float, float]:
    """``(low, high)`` of a temperature interval, checked: ``0 < low < high``."""
    lo, hi = float(bounds[0]), float(bounds[1])
    if not 0 < lo < hi:
        raise ConfigError(f"bounds must satisfy 0 < low < high, got {bounds}.")
    return lo, hi


def fit_temperature(logits, labels, bounds: tuple[float, float] = TEMPERATURE_BOUNDS) -> float:
    """The temperature T > 0 that minimises the NLL of ``softmax(logits / T)`` on held-out data.

    The NLL is convex in ``beta = 1 / T`` (a log-sum-exp of a linear function minus a linear
    function), so a bounded scalar minimisation over beta (scipy's Brent method) finds the
    global optimum; its gradient is checked at the end.

    Args:
        logits: validation logits (N, num_classes) (logits, not probabilities).
        labels: validation int labels (N,).
        bounds: the search interval for T.

    Returns:
        The fitted temperature, a float. T > 1 softens an over-confident model.

    Raises:
        ConfigError: bad shapes, non-finite logits, labels out of range or bad bounds.

    Example:
        >>> rng = np.random.default_rng(0)
        >>> z = rng.normal(size=(4000, 10)) * 3
        >>> from visiondl_keras.evaluation.metrics import softmax
        >>> y = np.array([rng.choice(10, p=p) for p in softmax(z, temperature=2.0)])
        >>> round(fit_temperature(z, y), 2)  # close to the true 2.0 on 4,000 samples
        2.06
    """
    logits, labels = _check(logits, labels, "logits")
    lo, hi = _check_bounds(bounds)
    z = logits - logits.max(axis=1, keepdims=True)
    z_true = z[np.arange(len(labels)), labels]

    def nll(beta: float) -> float:
        s = beta * z
        m = s.max(axis=1)
        return float(np.mean(m + np.log(np.exp(s - m[:, None]).sum(axis=1)) - beta * z_true))

    res = minimize_scalar(nll, bounds=(1.0 / hi, 1.0 / lo), method="bounded", options={"xatol": 1e-9, "maxiter": 500})
    return float(1.0 / res.x)


def lowest_ece_temperature(logits, labels, n_bins: int = 15, bounds: tuple[float, float] = TEMPERATURE_BOUNDS,
                           points: int = 801) -> tuple[float, float]:
    """The temperature with the lowest ECE on these labels, and that ECE: a bound, not a fit.

    The ECE is not smooth in T (images change bins), so this searches ``points`` log-spaced
    temperatures in ``bounds``. Run on the split you report, it says how low temperature scaling
    could bring that split's ECE even with the answer key: when the bound is above a goal, no
    temperature fitted on other data can reach it, and the miscalibration is not a matter of
    scale (label smoothing, for one, changes the shape of the confidence distribution). Use
    :func:`fit_temperature` (held-out data, NLL) to calibrate.

    Args:
        logits: logits (N, num_classes).
        labels: int labels (N,).
        n_bins: bins of the ECE.
        bounds: the searched interval of T.
        points: grid size.

    Returns:
        ``(temperature, ece)``.

    Raises:
        ConfigError: bad shapes, non-finite logits, labels out of range or bad bounds.

    Example:
        >>> rng = np.random.default_rng(0)
        >>> z = rng.normal(size=(4000, 10)) * 3
        >>> from visiondl_keras.evaluation.metrics import softmax
        >>> y = np.array([rng.choice(10, p=p) for p in softmax(z, temperature=2.0)])
        >>> t, ece = lowest_ece_temperature(z, y)
        >>> 1.5 < t < 2.5, ece < expected_calibration_error(apply_temperature(z, 1.0), y)
        (True, True)
    """
    logits, labels = _check(logits, labels, "logits")
    lo, hi = _check_bounds(bounds)
    grid = np.geomspace(lo, hi, int(points))
    eces = np.array([expected_calibration_error(apply_temperature(logits, t), labels, n_bins) for t in grid])
    best = int(np.argmin(eces))
    return float(grid[best]), float(eces[best])


# --------------------------------------------------------------------------------------------
# The sidecar: <checkpoint>.calibration.json
# --------------------------------------------------------------------------------------------


def sidecar_path(checkpoint_path: str | os.PathLike) -> Path:
    """``<checkpoint>.calibration.json`` beside the checkpoint (e.g. ``best.keras.calibration.json``)."""
    p = Path(checkpoint_path)
    return p.with_name(p.name + SIDECAR_SUFFIX)


def save_temperature(checkpoint_path: str | os.PathLike, temperature: float, **info) -> Path:
    """Write the sidecar ``<checkpoint>.calibration.json`` atomically.

    Args:
        checkpoint_path: the ``.keras`` file the temperature belongs to (it must exist: its
            sha256 is recorded, so a retrained checkpoint does not silently reuse a stale T).
        temperature: the fitted T.
        **info: more JSON-serialisable fields to store (e.g. ``before``/``after`` metrics, the split).

    Returns:
        The sidecar's path.
    """
    checkpoint_path = Path(checkpoint_path)
    if not checkpoint_path.is_file():
        raise ModelError(f"{checkpoint_path}: checkpoint not found; cannot store a temperature beside it.")
    record = {
        "temperature": check_temperature(temperature),
        "method": "temperature scaling (Guo et al. 2017): probabilities = softmax(logits / temperature)",
        "checkpoint": checkpoint_path.name,
        "checkpoint_sha256": file_sha256(checkpoint_path),
    }
    record.update(info)
    return write_json(sidecar_path(checkpoint_path), record)


def read_calibration(checkpoint_path: str | os.PathLike) -> dict | None:
    """The sidecar's content, or None when there is none or it belongs to another checkpoint.

    Raises:
        ModelError: the sidecar exists but is not valid JSON or has no positive ``temperature``.
    """
    checkpoint_path = Path(checkpoint_path)
    path = sidecar_path(checkpoint_path)
    if not path.is_file():
        return None
    try:
        record = read_json(path)
        check_temperature(record["temperature"])
    except (OSError, json.JSONDecodeError, KeyError, TypeError, ConfigError) as exc:
        raise ModelError(
            f"{path}: unreadable calibration sidecar ({type(exc).__name__}); delete it or re-run "
            "`python -m visiondl_keras calibrate`."
        ) from exc
    expected = record.get("checkpoint_sha256")
    if expected and checkpoint_path.is_file() and file_sha256(checkpoint_path) != expected:
        warnings.warn(
            f"{path} was fitted on a different version of {checkpoint_path.name}; ignoring it (temperature 1.0). "
            "Re-run `python -m visiondl_keras calibrate` on this checkpoint.",
            stacklevel=2,
        )
        return None
    return record


def load_temperature(checkpoint_path: str | os.PathLike) -> float:
    """The temperature stored beside ``checkpoint_path``, or 1.0 when it has none.

    Args:
        checkpoint_path: a ``.keras`` file.

    Returns:
        T (1.0 when there is no sidecar, or it was fitted on another version of the checkpoint,
        which also warns).

    Example:
        >>> load_temperature("artifacts/checkpoints/scratch_airbench94.keras")  # doctest: +SKIP
        1.43
    """
    record = read_calibration(checkpoint_path)
    return 1.0 if record is None else float(record["temperature"])


__all__ = [
    "adaptive_calibration_error",
    "apply_temperature",
    "brier_score",
    "calibration_bins",
    "calibration_metrics",
    "expected_calibration_error",
    "fit_temperature",
    "load_temperature",
    "lowest_ece_temperature",
    "maximum_calibration_error",
    "negative_log_likelihood",
    "read_calibration",
    "reliability_diagram",
    "save_temperature",
    "sidecar_path",
    "temperature_nll",
]
