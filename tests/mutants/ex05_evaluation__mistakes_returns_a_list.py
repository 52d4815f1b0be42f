"""most_confident_mistakes returns a Python list of ints instead of an int64 array."""

import numpy as np


def most_confident_mistakes(probs, labels, k):
    probs = np.asarray(probs)
    labels = np.asarray(labels)
    pred = probs.argmax(axis=1)
    wrong = np.flatnonzero(pred != labels)
    conf = probs[wrong].max(axis=1) if len(wrong) else np.zeros(0)
    order = np.argsort(-conf, kind="stable")
    return [int(i) for i in wrong[order][:k]]
