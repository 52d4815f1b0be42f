"""cutmix converts with np.asarray and pastes in place: a float32 batch is modified (uint8 is copied by the conversion)."""

import numpy as np


def cutmix(images, labels_onehot, alpha=1.0, rng=None):
    rng = np.random.default_rng() if rng is None else rng
    x = np.asarray(images, dtype=np.float32)
    y = np.asarray(labels_onehot, dtype=np.float32)
    n, h, w = x.shape[:3]
    lam = rng.beta(alpha, alpha)
    perm = rng.permutation(n)
    top, bottom, left, right = cutmix_box(h, w, lam, rng)  # noqa: F821 (the solution's, this file is appended to it)
    x[:, top:bottom, left:right] = x[perm, top:bottom, left:right]
    lam_adj = np.float32(1.0 - (bottom - top) * (right - left) / (h * w))
    return x, lam_adj * y + (1 - lam_adj) * y[perm]
