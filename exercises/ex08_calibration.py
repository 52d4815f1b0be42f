"""Exercise 08 (lesson 08, calibration): softmax with a temperature, ECE, and temperature scaling.

A calibrated model that says "90 %" is right 90 % of the time. The expected calibration error
(ECE) measures the gap; temperature scaling (Guo et al., 2017) closes much of it with one number
fitted on held-out data, without changing a single prediction.

Run the graded tests with ``pytest exercises/test_ex08_calibration.py``.
"""

from __future__ import annotations

import numpy as np


def softmax_with_temperature(logits: np.ndarray, temperature: float = 1.0) -> np.ndarray:
    """``softmax(logits / temperature)`` along the last axis, computed without overflow.

    Contract:
        * ``logits`` is ``(..., K)`` (any float dtype); the result has the same shape, float64 whatever
          the input dtype, every row sums to 1; ``logits`` is not modified.
        * ``temperature > 1`` softens the distribution (towards uniform), ``< 1`` sharpens it; the
          argmax never changes.
        * Must stay finite for huge logits (e.g. 1000): subtract *each row's own* maximum before ``exp``
          (one maximum for the whole array underflows the rows whose logits are much smaller).

    Hints:
        * ``z = logits / T``; ``z - z.max(axis=-1, keepdims=True)`` changes nothing mathematically.

    Args:
        logits: unnormalised scores.
        temperature: ``T > 0``.

    Returns:
        Probabilities.
    """
    raise NotImplementedError("replace this line with your code; the docstring above gives the contract and hints.")


def expected_calibration_error(probs: np.ndarray, labels: np.ndarray, n_bins: int = 15) -> float:
    """ECE with ``n_bins`` equal-width confidence bins.

    Contract:
        * confidence ``c_i = max(probs[i])``, prediction ``argmax(probs[i])``, correct when it equals ``labels[i]``.
        * Bin ``b`` (``b = 0..n_bins-1``) holds the examples with ``b / n_bins < c_i <= (b + 1) / n_bins``:
          left-open, right-closed, so a confidence of exactly ``1.0`` is in the last bin and ``0.5`` with
          two bins is in the first.
        * ``ECE = sum over non-empty bins of (n_b / N) * |accuracy_b - mean confidence_b|``.
        * Returns a Python float in ``[0, 1]``.

    Hints:
        * ``edges = np.linspace(0, 1, n_bins + 1)`` and a loop over ``(edges[b], edges[b + 1])``.
        * The weight is the bin's share of *all* examples; empty bins contribute nothing.

    Args:
        probs: ``(N, K)`` probabilities.
        labels: ``(N,)`` true classes.
        n_bins: number of bins.

    Returns:
        The ECE.
    """
    raise NotImplementedError("replace this line with your code; the docstring above gives the contract and hints.")


def fit_temperature(logits: np.ndarray, labels: np.ndarray) -> float:
    """The temperature ``T`` that minimises the negative log-likelihood of ``softmax(logits / T)``.

    Contract:
        * ``logits`` ``(N, K)`` and ``labels`` ``(N,)`` come from a held-out (validation) set.
        * Returns the ``T > 0`` that minimises ``mean(-log softmax(logits / T)[i, labels[i]])``, searched
          at least over ``[0.05, 20]``, to within 1 % of the best ``T``. Logits are *divided* by ``T``.
        * An over-confident model gets ``T > 1``, an under-confident one ``T < 1``.

    Hints:
        * The NLL is smooth with a single minimum in ``log T``: a grid over ``np.geomspace(0.05, 20, ...)``
          then a finer grid around the best point works; so does
          ``scipy.optimize.minimize_scalar(..., bounds=(0.05, 20), method="bounded")``.
        * Use the log-sum-exp trick (as in ``softmax_with_temperature``) so that large logits stay finite.

    Args:
        logits: ``(N, K)`` validation logits.
        labels: ``(N,)`` validation labels.

    Returns:
        The fitted temperature, a float.
    """
    raise NotImplementedError("replace this line with your code; the docstring above gives the contract and hints.")
