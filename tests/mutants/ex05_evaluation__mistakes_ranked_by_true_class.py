"""most_confident_mistakes ranks the mistakes by the probability of the true class, not of the prediction."""

import numpy as np


def most_confident_mistakes(probs, labels, k):
    probs, labels = np.asarray(probs), np.asarray(labels)
    wrong = np.flatnonzero(probs.argmax(axis=1) != labels)
    score = probs[wrong, labels[wrong]]
    return wrong[np.argsort(-score, kind="stable")][:k].astype(np.int64)
