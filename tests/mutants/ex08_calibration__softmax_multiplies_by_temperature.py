"""softmax_with_temperature multiplies the logits by T instead of dividing (the temperature applied the wrong way)."""

import numpy as np


def softmax_with_temperature(logits, temperature=1.0):
    z = np.asarray(logits, dtype=np.float64) * float(temperature)
    z = z - z.max(axis=-1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=-1, keepdims=True)
