"""cutmix_box truncates height * sqrt(1 - lam) with int() instead of rounding it."""

import numpy as np


def cutmix_box(height, width, lam, rng=None):
    rng = np.random.default_rng() if rng is None else rng
    cut = np.sqrt(1.0 - lam)
    cut_h, cut_w = int(height * cut), int(width * cut)
    cy = int(rng.integers(0, height))
    cx = int(rng.integers(0, width))
    top, left = cy - cut_h // 2, cx - cut_w // 2
    bottom, right = top + cut_h, left + cut_w
    return (int(np.clip(top, 0, height)), int(np.clip(bottom, 0, height)),
            int(np.clip(left, 0, width)), int(np.clip(right, 0, width)))
