"""random_crop draws offsets with rng.integers(0, 2 * padding): the offset 2 * padding never occurs."""

import numpy as np


def random_crop(images, padding=4, rng=None):
    rng = np.random.default_rng() if rng is None else rng
    images = np.asarray(images)
    if padding == 0:
        return images.copy()
    n, h, w, _ = images.shape
    padded = np.pad(images, ((0, 0), (padding, padding), (padding, padding), (0, 0)), mode="reflect")
    tops = rng.integers(0, 2 * padding, size=n)
    lefts = rng.integers(0, 2 * padding, size=n)
    return np.stack([padded[i, tops[i] : tops[i] + h, lefts[i] : lefts[i] + w] for i in range(n)])
