"""confusion_matrix sizes itself from the largest class seen, ignoring num_classes."""

import numpy as np


def confusion_matrix(labels, preds, num_classes):
    labels, preds = np.asarray(labels, dtype=np.int64), np.asarray(preds, dtype=np.int64)
    k = int(max(labels.max(initial=-1), preds.max(initial=-1))) + 1
    cm = np.zeros((k, k), dtype=np.int64)
    np.add.at(cm, (labels, preds), 1)
    return cm
