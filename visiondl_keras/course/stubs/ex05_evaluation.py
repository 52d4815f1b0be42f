"""Exercise 05 (lesson 05, evaluation): the confusion matrix and the misclassification review.

Accuracy hides *which* classes are confused and *how sure* the model was when it was wrong.
You will write the confusion matrix, per-class recall from it, and the search for the most
confident mistakes that lesson 05 shows in a gallery.

Run the graded tests with ``pytest exercises/test_ex05_evaluation.py``.
"""

from __future__ import annotations

import numpy as np


def confusion_matrix(labels: np.ndarray, preds: np.ndarray, num_classes: int) -> np.ndarray:
    """Count how often true class ``i`` was predicted as class ``j``.

    Contract:
        * ``labels`` and ``preds`` are integer arrays of the same length with values in ``0..num_classes-1``.
        * Returns an int64 array ``(num_classes, num_classes)``: ``cm[i, j]`` is the number of examples whose
          true label is ``i`` and whose prediction is ``j`` (rows: truth, columns: prediction; the
          convention of scikit-learn).
        * Its shape is ``(num_classes, num_classes)`` even when some class never occurs; empty inputs
          give all zeros.

    Hints:
        * ``np.add.at(cm, (labels, preds), 1)``, or a loop over pairs.

    Args:
        labels: true classes, ``(N,)``.
        preds: predicted classes, ``(N,)``.
        num_classes: number of classes ``K``.

    Returns:
        The ``(K, K)`` matrix.
    """
    raise NotImplementedError("replace this line with your code; the docstring above gives the contract and hints.")


def per_class_recall(cm: np.ndarray) -> np.ndarray:
    """The fraction of each true class that was recognised: the per-class accuracy of lesson 05.

    Contract:
        * ``cm`` is a confusion matrix as returned by ``confusion_matrix`` (rows: truth).
        * ``recall[i] = cm[i, i] / (number of examples of true class i)``, float64, shape ``(K,)``.
        * A class with no examples gets ``nan`` (there is nothing to recall), without a warning.
        * ``cm`` itself is not modified (whatever its dtype).

    Hints:
        * Which axis holds the examples of one *true* class? (Dividing by the other axis gives precision.)
        * ``np.divide(a, b, out=np.full(..., np.nan), where=b > 0)``.

    Args:
        cm: ``(K, K)`` confusion matrix.

    Returns:
        ``(K,)`` recalls.
    """
    raise NotImplementedError("replace this line with your code; the docstring above gives the contract and hints.")


def most_confident_mistakes(probs: np.ndarray, labels: np.ndarray, k: int) -> np.ndarray:
    """Indices of the ``k`` misclassified examples on which the model was most confident.

    Contract:
        * ``probs`` is ``(N, K)`` (rows sum to 1), ``labels`` is ``(N,)``. The prediction is
          ``argmax(probs[i])`` and the confidence is ``max(probs[i])``, the probability of the
          *predicted* class.
        * Only mistakes (prediction != label) are candidates. They are ordered by confidence, highest
          first; equal confidences keep the lower index first.
        * Equal confidences keep the lower index first however many ties there are (a stable sort).
        * Returns an int64 numpy array (not a list) of at most ``k`` indices into ``probs``: fewer when there are fewer
          mistakes, empty (``shape (0,)``) when there are none.

    Hints:
        * ``np.flatnonzero(pred != labels)`` gives the candidates.
        * ``np.argsort(-conf, kind="stable")`` sorts descending and keeps ties in index order.

    Args:
        probs: predicted probabilities.
        labels: true classes.
        k: how many to return.

    Returns:
        The indices, most confident mistake first.
    """
    raise NotImplementedError("replace this line with your code; the docstring above gives the contract and hints.")
