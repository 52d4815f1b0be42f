"""Where does the model go wrong? Confusion matrices, per-class reports, misclassification review.

Everything here works on numpy arrays of predicted probabilities (or logits) and labels, so it
applies to scratch and transfer models alike; :func:`visiondl_keras.evaluation.metrics.softmax`
turns logits into probabilities (with an optional temperature, see the calibration module).

Example:
    >>> probs = np.array([[0.9, 0.1], [0.2, 0.8], [0.7, 0.3]])
    >>> labels = np.array([0, 1, 1])
    >>> most_confident_mistakes(probs, labels, k=5).tolist()
    [2]
"""

from __future__ import annotations

import numpy as np
from sklearn.metrics import confusion_matrix, precision_recall_fscore_support

from visiondl_keras.errors import ConfigError

__all__ = [
    "classification_report",
    "confusion_matrices",
    "highest_loss_indices",
    "misclassification_review",
    "most_confident_mistakes",
    "most_confused_pairs",
    "per_sample_loss",
]


def _check(probs, labels):
    p = np.asarray(probs, dtype=np.float64)
    y = np.asarray(labels)
    if p.ndim != 2:
        raise ConfigError(f"probs must have shape (N, num_classes), got {p.shape}.")
    if y.shape != (len(p),):
        raise ConfigError(f"labels must have shape ({len(p)},), got {y.shape}.")
    if len(y) and (y.min() < 0 or y.max() >= p.shape[1]):
        raise ConfigError(f"labels must lie in 0..{p.shape[1] - 1}, got {y.min()}..{y.max()}.")
    return p, y.astype(np.int64)


def _check_k(k):
    if not isinstance(k, (int, np.integer)) or k < 0:
        raise ConfigError(f"k must be a non-negative integer, got {k!r}.")
    return int(k)


def per_sample_loss(probs, labels, eps: float = 1e-12) -> np.ndarray:
    """Cross-entropy ``-log p[label]`` of every sample (probabilities clipped at ``eps``)."""
    p, y = _check(probs, labels)
    return -np.log(np.clip(p[np.arange(len(y)), y], eps, 1.0))


def most_confident_mistakes(probs, labels, k: int) -> np.ndarray:
    """Indices of the ``k`` wrong predictions made with the highest confidence.

    Args:
        probs: (N, K) predicted probabilities.
        labels: (N,) true labels.
        k: how many (fewer are returned when there are fewer mistakes).

    Returns:
        int64 indices into ``probs``, sorted by the confidence of the (wrong) prediction,
        highest first; ties keep the lower index first.

    Example:
        >>> most_confident_mistakes(np.array([[0.6, 0.4], [0.1, 0.9], [0.3, 0.7]]), np.array([1, 0, 0]), 2).tolist()
        [1, 2]
    """
    p, y = _check(probs, labels)
    k = _check_k(k)
    wrong = np.flatnonzero(p.argmax(axis=1) != y)
    conf = p[wrong].max(axis=1)
    order = np.argsort(-conf, kind="stable")
    return wrong[order][:k].astype(np.int64)


def highest_loss_indices(probs, labels, k: int) -> np.ndarray:
    """Indices of the ``k`` samples with the highest cross-entropy loss, highest first.

    The loss is ``-log p[label]``: the images the model finds most surprising, right or wrong.
    Ties keep the lower index first.

    Args:
        probs: (N, K) predicted probabilities.
        labels: (N,) true labels.
        k: how many (at most N).

    Returns:
        int64 indices into ``probs``.

    Example:
        >>> highest_loss_indices(np.array([[0.6, 0.4], [0.1, 0.9], [0.3, 0.7]]), np.array([1, 0, 0]), 2).tolist()
        [1, 2]
    """
    p, y = _check(probs, labels)
    k = _check_k(k)
    p_true = p[np.arange(len(y)), y]
    return np.argsort(p_true, kind="stable")[:k].astype(np.int64)  # lowest p[label] = highest loss


def confusion_matrices(labels, predictions, num_classes: int) -> dict:
    """Confusion matrix as counts and row-normalised (per true class), via scikit-learn.

    Args:
        labels: (N,) true labels.
        predictions: (N,) predicted labels.
        num_classes: K; classes without samples get a zero row.

    Returns:
        ``{"counts": int64 (K, K), "normalized": float64 (K, K)}``; rows are true classes,
        columns predicted classes; a row of a class without samples is all zeros.
    """
    classes = np.arange(num_classes)
    counts = confusion_matrix(labels, predictions, labels=classes)
    rows = counts.sum(axis=1, keepdims=True)
    normalized = np.divide(counts, rows, out=np.zeros(counts.shape, dtype=np.float64), where=rows > 0)
    return {"counts": counts.astype(np.int64), "normalized": normalized}


def classification_report(labels, predictions, class_names) -> dict:
    """Per-class precision, recall, F1 and support (scikit-learn), plus macro averages.

    Returns:
        ``{"per_class": {name: {"precision", "recall", "f1", "support"}}, "macro": {...},
        "accuracy": float}``.
    """
    labels = np.asarray(labels)
    predictions = np.asarray(predictions)
    classes = np.arange(len(class_names))
    p, r, f, s = precision_recall_fscore_support(labels, predictions, labels=classes, zero_division=0)
    per_class = {
        str(name): {"precision": float(p[i]), "recall": float(r[i]), "f1": float(f[i]), "support": int(s[i])}
        for i, name in enumerate(class_names)
    }
    macro = {"precision": float(p.mean()), "recall": float(r.mean()), "f1": float(f.mean())}
    acc = float((labels == predictions).mean()) if len(labels) else float("nan")
    return {"per_class": per_class, "macro": macro, "accuracy": acc}


def most_confused_pairs(counts, class_names, k: int = 5) -> list[dict]:
    """The ``k`` largest off-diagonal cells of a confusion matrix.

    Args:
        counts: (K, K) confusion counts (rows true, columns predicted).
        class_names: K names.
        k: how many pairs.

    Returns:
        A list of ``{"true", "predicted", "count", "rate"}`` dicts (``rate``: share of the true
        class), largest count first; pairs with zero count are left out.
    """
    cm = np.asarray(counts)
    k = _check_k(k)
    off = cm.astype(np.float64).copy()
    np.fill_diagonal(off, -1)
    flat = np.argsort(-off, axis=None, kind="stable")
    rows = cm.sum(axis=1)
    out = []
    for f in flat[:k]:
        i, j = np.unravel_index(f, cm.shape)
        if off[i, j] <= 0:
            break
        out.append(
            {
                "true": str(class_names[i]),
                "predicted": str(class_names[j]),
                "count": int(cm[i, j]),
                "rate": float(cm[i, j] / rows[i]) if rows[i] else 0.0,
            }
        )
    return out


def misclassification_review(probs, labels, class_names, k: int = 24, indices=None) -> list[dict]:
    """The ``k`` highest-loss test images with their true label, prediction and confidence.

    Args:
        probs: (N, K) probabilities.
        labels: (N,) true labels.
        class_names: K names.
        k: how many.
        indices: optional original indices of the rows of ``probs`` (e.g. into the full test
            set when a subset was evaluated); reported as ``index``.

    Returns:
        A list of dicts ``{"index", "true", "predicted", "confidence", "p_true", "loss"}``,
        highest loss first.
    """
    p, y = _check(probs, labels)
    idx = highest_loss_indices(p, y, k)
    loss = per_sample_loss(p, y)
    ref = np.arange(len(y)) if indices is None else np.asarray(indices)
    return [
        {
            "index": int(ref[i]),
            "true": str(class_names[y[i]]),
            "predicted": str(class_names[int(p[i].argmax())]),
            "confidence": float(p[i].max()),
            "p_true": float(p[i, y[i]]),
            "loss": float(loss[i]),
        }
        for i in idx
    ]
