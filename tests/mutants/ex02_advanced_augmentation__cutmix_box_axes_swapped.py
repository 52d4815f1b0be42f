"""cutmix_box takes the box height from the image width and the width from the height."""

import numpy as np


def cutmix_box(height, width, lam, rng=None):
    rng = np.random.default_rng() if rng is None else rng
    cut = np.sqrt(1.0 - lam)
    cut_h, cut_w = int(round(width * cut)), int(round(height * cut))
    cy = int(rng.integers(0, height))
    cx = int(rng.integers(0, width))
    top, left = cy - cut_h // 2, cx - cut_w // 2
    return (
        int(np.clip(top, 0, height)),
        int(np.clip(top + cut_h, 0, height)),
        int(np.clip(left, 0, width)),
        int(np.clip(left + cut_w, 0, width)),
    )
