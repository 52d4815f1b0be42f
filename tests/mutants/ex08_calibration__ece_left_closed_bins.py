"""expected_calibration_error uses bins [lo, hi) (np.digitize): 0.5 lands in the upper bin, 1.0 in an extra one."""

import numpy as np


def expected_calibration_error(probs, labels, n_bins=15):
    probs = np.asarray(probs, dtype=np.float64)
    conf = probs.max(axis=1)
    correct = (probs.argmax(axis=1) == np.asarray(labels)).astype(np.float64)
    idx = np.minimum(np.digitize(conf, np.linspace(0, 1, n_bins + 1)) - 1, n_bins - 1)
    ece = 0.0
    for b in range(n_bins):
        sel = idx == b
        if sel.any():
            ece += sel.mean() * abs(correct[sel].mean() - conf[sel].mean())
    return float(ece)
