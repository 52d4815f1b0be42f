"""expected_calibration_error averages the bins' gaps without weighting them by their number of examples."""

import numpy as np


def expected_calibration_error(probs, labels, n_bins=15):
    probs = np.asarray(probs, dtype=np.float64)
    conf = probs.max(axis=1)
    correct = (probs.argmax(axis=1) == np.asarray(labels)).astype(np.float64)
    edges = np.linspace(0, 1, n_bins + 1)
    gaps = []
    for lo, hi in zip(edges[:-1], edges[1:]):
        sel = (conf > lo) & (conf <= hi)
        if sel.any():
            gaps.append(abs(correct[sel].mean() - conf[sel].mean()))
    return float(np.mean(gaps))
