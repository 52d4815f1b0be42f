"""clip_by_global_norm writes the scaled arrays back into the caller's list and returns that list."""

import numpy as np


def clip_by_global_norm(gradients, max_norm):
    norm = global_norm(gradients)  # noqa: F821 (the solution's)
    scale = 1.0 if norm <= max_norm else max_norm / norm
    for i, g in enumerate(gradients):
        if g is not None:
            gradients[i] = (np.asarray(g) * scale).astype(np.asarray(g).dtype)
    return gradients
