"""mixup draws the permutation before lam (the contract draws lam first)."""

import numpy as np


def mixup(images, labels_onehot, alpha=0.2, rng=None):
    rng = np.random.default_rng() if rng is None else rng
    x = np.asarray(images, dtype=np.float32)
    y = np.asarray(labels_onehot, dtype=np.float32)
    perm = rng.permutation(len(x))
    lam = np.float32(rng.beta(alpha, alpha))
    return lam * x + (1 - lam) * x[perm], lam * y + (1 - lam) * y[perm]
