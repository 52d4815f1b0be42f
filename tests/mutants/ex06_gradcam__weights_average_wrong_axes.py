"""channel_weights averages over axes (0, 1), as for a single image: it mixes the batch into the weights."""

import numpy as np


def channel_weights(gradients):
    return np.asarray(gradients, dtype=np.float32).mean(axis=(0, 1))
