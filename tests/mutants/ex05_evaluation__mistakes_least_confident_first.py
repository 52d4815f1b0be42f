"""most_confident_mistakes sorts ascending: the least confident mistakes come first."""

import numpy as np


def most_confident_mistakes(probs, labels, k):
    probs, labels = np.asarray(probs), np.asarray(labels)
    wrong = np.flatnonzero(probs.argmax(axis=1) != labels)
    return wrong[np.argsort(probs[wrong].max(axis=1), kind="stable")][:k].astype(np.int64)
