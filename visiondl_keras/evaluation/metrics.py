"""Softmax and accuracy: the one home of the basic metrics every other module uses.

Everything here is numpy on arrays of logits (or probabilities) and integer labels, so it applies
to any backend and to exported models alike.

Example:
    >>> logits = np.array([[2.0, 0.0], [0.0, 1.0], [3.0, 1.0]])
    >>> accuracy(logits, [0, 1, 1])
    0.6666666666666666
    >>> softmax([[0.0, np.log(3.0)]]).round(2)
    array([[0.25, 0.75]])
"""

from __future__ import annotations

import numpy as np

from visiondl_keras.errors import ConfigError

__all__ = ["accuracy", "check_temperature", "evaluate_logits", "log_softmax", "per_class_accuracy", "softmax"]


def check_temperature(temperature) -> float:
    """``temperature`` as a float, checked to be a positive finite number.

    Args:
        temperature: a softmax temperature T.

    Returns:
        T as a float.

    Raises:
        ConfigError: ``temperature`` is not a positive finite number.
    """
    try:
        t = float(temperature)
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"temperature must be a positive number, got {temperature!r}.") from exc
    if not np.isfinite(t) or t <= 0:
        raise ConfigError(f"temperature must be a positive finite number, got {temperature!r}.")
    return t


def log_softmax(logits, temperature: float = 1.0, axis: int = -1) -> np.ndarray:
    """Numerically stable ``log(softmax(logits / temperature))`` as float64.

    Args:
        logits: array of logits (any shape; the classes along ``axis``).
        temperature: T > 0; the logits are divided by it first.
        axis: the class axis.

    Returns:
        float64 log-probabilities of the same shape.

    Raises:
        ConfigError: ``temperature`` is not a positive finite number.
    """
    z = np.asarray(logits, dtype=np.float64) / check_temperature(temperature)
    z = z - z.max(axis=axis, keepdims=True)
    return z - np.log(np.exp(z).sum(axis=axis, keepdims=True))


def softmax(logits, temperature: float = 1.0, axis: int = -1) -> np.ndarray:
    """Numerically stable ``softmax(logits / temperature)`` as float64.

    Args:
        logits: array of logits (any shape; the classes along ``axis``).
        temperature: T > 0 (1.0: the plain softmax; T > 1 softens, see temperature scaling in
            :mod:`visiondl_keras.evaluation.calibration`).
        axis: the class axis.

    Returns:
        float64 probabilities of the same shape, summing to 1 along ``axis``.

    Raises:
        ConfigError: ``temperature`` is not a positive finite number.

    Example:
        >>> softmax([[1000.0, 1000.0]])
        array([[0.5, 0.5]])
        >>> softmax([[0.0, 2.0]], temperature=2.0).round(3)
        array([[0.269, 0.731]])
    """
    z = np.asarray(logits, dtype=np.float64) / check_temperature(temperature)
    z = z - z.max(axis=axis, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=axis, keepdims=True)


def _scores_and_labels(scores, labels) -> tuple[np.ndarray, np.ndarray]:
    s = np.asarray(scores)
    y = np.asarray(labels)
    if s.ndim != 2:
        raise ConfigError(f"scores must have shape (N, num_classes), got {s.shape}.")
    if y.shape != (len(s),):
        raise ConfigError(f"labels must have shape ({len(s)},) to match the scores, got {y.shape}.")
    return s, y.astype(np.int64, copy=False)


def accuracy(logits_or_probs, labels) -> float:
    """Top-1 accuracy of (N, K) scores (logits or probabilities) against (N,) int labels.

    Args:
        logits_or_probs: (N, K) scores; the arg-max of each row is the prediction.
        labels: (N,) true labels.

    Returns:
        The fraction of rows whose arg-max is the label; NaN when N is 0.

    Raises:
        ConfigError: the shapes do not match.

    Example:
        >>> accuracy([[0.9, 0.1], [0.2, 0.8]], [0, 0])
        0.5
    """
    s, y = _scores_and_labels(logits_or_probs, labels)
    if len(y) == 0:
        return float("nan")
    return float(np.mean(s.argmax(axis=1) == y))


def per_class_accuracy(logits_or_probs, labels, class_names) -> dict:
    """Accuracy (recall) of every class: the share of its images predicted as it.

    Args:
        logits_or_probs: (N, K) scores.
        labels: (N,) true labels.
        class_names: K names; the keys of the result.

    Returns:
        ``{name: accuracy}``; None for a class without images.

    Raises:
        ConfigError: the shapes do not match.

    Example:
        >>> per_class_accuracy([[0.9, 0.1], [0.2, 0.8], [0.6, 0.4]], [0, 1, 1], ["a", "b"])
        {'a': 1.0, 'b': 0.5}
    """
    s, y = _scores_and_labels(logits_or_probs, labels)
    pred = s.argmax(axis=1) if len(y) else np.zeros(0, np.int64)
    return {
        name: float(np.mean(pred[y == k] == k)) if np.any(y == k) else None for k, name in enumerate(class_names)
    }


def evaluate_logits(logits, y, class_names) -> dict:
    """Accuracy, mean negative log-likelihood and per-class accuracy of logits against int labels.

    Args:
        logits: (N, K) logits (not probabilities: the loss applies a log-softmax).
        y: (N,) true labels.
        class_names: K names, the keys of ``per_class_accuracy``.

    Returns:
        ``{"accuracy", "loss", "per_class_accuracy", "n"}``; ``loss`` is the mean cross-entropy
        ``-log softmax(logits)[y]`` (temperature 1).

    Raises:
        ConfigError: the shapes do not match.

    Example:
        >>> r = evaluate_logits(np.array([[2.0, 0.0], [0.0, 2.0]]), np.array([0, 0]), ["a", "b"])
        >>> r["accuracy"], round(r["loss"], 4), r["per_class_accuracy"], r["n"]
        (0.5, 1.1269, {'a': 0.5, 'b': None}, 2)
    """
    s, labels = _scores_and_labels(logits, y)
    logp = log_softmax(s, axis=1)
    return {
        "accuracy": accuracy(s, labels),
        "loss": float(-np.mean(logp[np.arange(len(labels)), labels])),
        "per_class_accuracy": per_class_accuracy(s, labels, class_names),
        "n": int(len(labels)),
    }
