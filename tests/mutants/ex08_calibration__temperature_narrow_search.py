"""fit_temperature searches only [0.5, 5]: a very over-confident model gets T = 5."""

import numpy as np


def fit_temperature(logits, labels):
    logits = np.asarray(logits, dtype=np.float64)
    labels = np.asarray(labels, dtype=np.int64)
    lo, hi = np.log(0.5), np.log(5.0)
    for _ in range(4):
        grid = np.linspace(lo, hi, 41)
        losses = [_nll(logits, labels, np.exp(t)) for t in grid]  # noqa: F821 (the solution's)
        best = int(np.argmin(losses))
        lo, hi = grid[max(best - 1, 0)], grid[min(best + 1, len(grid) - 1)]
    return float(np.exp(grid[best]))
