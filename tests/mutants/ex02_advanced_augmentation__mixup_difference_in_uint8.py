"""mixup computes x[perm] + lam * (x - x[perm]) on the uint8 images: the difference wraps around."""

import numpy as np


def mixup(images, labels_onehot, alpha=0.2, rng=None):
    rng = np.random.default_rng() if rng is None else rng
    x = np.asarray(images)
    y = np.asarray(labels_onehot, dtype=np.float32)
    lam = np.float32(rng.beta(alpha, alpha))
    perm = rng.permutation(len(x))
    return (x[perm] + lam * (x - x[perm])).astype(np.float32), lam * y + (1 - lam) * y[perm]
