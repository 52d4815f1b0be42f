"""top_k reverses an ascending sort: equal probabilities come out in reverse class order."""

import numpy as np


def top_k(probs, class_names, k=3):
    probs = np.asarray(probs, dtype=np.float64)
    order = np.argsort(probs, kind="stable")[::-1][:k]
    return [(class_names[i], float(probs[i])) for i in order]
