"""softmax_with_temperature computes in the input's dtype: float32 logits give float32 probabilities, not float64."""

import numpy as np


def softmax_with_temperature(logits, temperature=1.0):
    z = np.asarray(logits)
    z = z / np.asarray(temperature, dtype=z.dtype)
    e = np.exp(z - z.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)
