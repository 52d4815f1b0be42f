"""count_trainable_params returns numpy's sum of numpy's products: a numpy integer, not a Python int."""

import numpy as np


def count_trainable_params(model):
    return np.sum([np.prod(w.shape, dtype=np.int64) for w in model.trainable_weights], dtype=np.int64)
