"""global_norm squares the gradients in their own dtype: float16 squares overflow to inf."""

import math

import numpy as np


def global_norm(gradients):
    total = 0.0
    for g in gradients:
        if g is not None:
            g = np.asarray(g)
            total += float(np.sum(g * g))
    return math.sqrt(total)
