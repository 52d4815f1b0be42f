"""clip_by_global_norm clips every array to max_norm on its own (changes the update's direction)."""

import numpy as np


def clip_by_global_norm(gradients, max_norm):
    out = []
    for g in gradients:
        if g is None:
            out.append(None)
            continue
        g = np.asarray(g)
        norm = float(np.linalg.norm(g))
        out.append(g * (max_norm / norm) if norm > max_norm else g.copy())
    return out
