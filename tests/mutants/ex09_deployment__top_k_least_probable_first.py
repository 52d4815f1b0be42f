"""top_k sorts ascending and returns the least probable classes."""

import numpy as np


def top_k(probs, class_names, k=3):
    probs = np.asarray(probs, dtype=np.float64)
    return [(class_names[i], float(probs[i])) for i in np.argsort(probs, kind="stable")[:k]]
