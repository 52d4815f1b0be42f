"""global_norm adds up the norms of the arrays instead of taking the norm of all of them together."""

import numpy as np


def global_norm(gradients):
    return float(sum(np.linalg.norm(np.ravel(g)) for g in gradients if g is not None))
