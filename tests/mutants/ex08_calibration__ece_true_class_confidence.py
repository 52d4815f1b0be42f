"""expected_calibration_error uses the probability of the true class as the confidence."""

import numpy as np


def expected_calibration_error(probs, labels, n_bins=15):
    probs, labels = np.asarray(probs, dtype=np.float64), np.asarray(labels)
    conf = probs[np.arange(len(labels)), labels]
    correct = (probs.argmax(axis=1) == labels).astype(np.float64)
    edges = np.linspace(0, 1, n_bins + 1)
    ece = 0.0
    for lo, hi in zip(edges[:-1], edges[1:]):
        sel = (conf > lo) & (conf <= hi)
        if sel.any():
            ece += sel.mean() * abs(correct[sel].mean() - conf[sel].mean())
    return float(ece)
