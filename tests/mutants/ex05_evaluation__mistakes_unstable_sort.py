"""most_confident_mistakes sorts with numpy's default (unstable) sort: ties lose their index order."""

import numpy as np


def most_confident_mistakes(probs, labels, k):
    probs = np.asarray(probs)
    labels = np.asarray(labels)
    pred = probs.argmax(axis=1)
    wrong = np.flatnonzero(pred != labels)
    conf = probs[wrong].max(axis=1) if len(wrong) else np.zeros(0)
    order = np.argsort(-conf)
    return wrong[order][:k].astype(np.int64)
