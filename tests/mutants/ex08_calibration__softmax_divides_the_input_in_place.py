"""softmax_with_temperature divides and shifts the logits in place: a float64 input is modified."""

import numpy as np


def softmax_with_temperature(logits, temperature=1.0):
    z = np.asarray(logits, dtype=np.float64)
    z /= float(temperature)
    z -= z.max(axis=-1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=-1, keepdims=True)
