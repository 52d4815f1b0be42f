"""softmax_with_temperature subtracts the maximum of the whole array, not of each row: small rows underflow."""

import numpy as np


def softmax_with_temperature(logits, temperature=1.0):
    z = np.asarray(logits, dtype=np.float64) / float(temperature)
    e = np.exp(z - z.max())
    return e / e.sum(axis=-1, keepdims=True)
