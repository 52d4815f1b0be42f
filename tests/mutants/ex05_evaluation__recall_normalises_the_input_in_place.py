"""per_class_recall divides the confusion matrix by its row sums in place: a float64 matrix is modified."""

import numpy as np


def per_class_recall(cm):
    cm = np.asarray(cm, dtype=np.float64)
    support = cm.sum(axis=1, keepdims=True)
    np.divide(cm, support, out=cm, where=support > 0)
    cm[(support == 0)[:, 0]] = np.nan
    return np.diag(cm).copy()
