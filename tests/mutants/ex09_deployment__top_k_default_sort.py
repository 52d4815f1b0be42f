"""top_k sorts with numpy's default (unstable) sort: ties among many classes lose their class order."""

import numpy as np


def top_k(probs, class_names, k=3):
    probs = np.asarray(probs, dtype=np.float64)
    order = np.argsort(-probs)[:k]
    return [(class_names[i], float(probs[i])) for i in order]
