"""most_confident_mistakes returns the k most confident predictions, right or wrong."""

import numpy as np


def most_confident_mistakes(probs, labels, k):
    probs = np.asarray(probs)
    return np.argsort(-probs.max(axis=1), kind="stable")[:k].astype(np.int64)
