"""softmax_with_temperature exponentiates without subtracting the maximum: large logits overflow to nan."""

import numpy as np


def softmax_with_temperature(logits, temperature=1.0):
    e = np.exp(np.asarray(logits, dtype=np.float64) / float(temperature))
    return e / e.sum(axis=-1, keepdims=True)
