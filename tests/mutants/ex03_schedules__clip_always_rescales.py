"""clip_by_global_norm always rescales to max_norm, also when the gradients are already small."""

import numpy as np


def clip_by_global_norm(gradients, max_norm):
    norm = global_norm(gradients)  # noqa: F821 (the solution's)
    scale = max_norm / norm if norm > 0 else 1.0
    return [None if g is None else (np.asarray(g) * scale).astype(np.asarray(g).dtype) for g in gradients]
