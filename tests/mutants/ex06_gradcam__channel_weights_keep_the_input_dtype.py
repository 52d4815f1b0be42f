"""channel_weights averages without converting: float64 gradients give float64 weights, not float32."""

import numpy as np


def channel_weights(gradients):
    return np.asarray(gradients).mean(axis=(1, 2))
