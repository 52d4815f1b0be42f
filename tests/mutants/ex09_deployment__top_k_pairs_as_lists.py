"""top_k returns [name, probability] lists instead of (name, probability) tuples."""

import numpy as np


def top_k(probs, class_names, k=3):
    probs = np.asarray(probs, dtype=np.float64)
    order = np.argsort(-probs, kind="stable")[:k]
    return [[class_names[i], float(probs[i])] for i in order]
