"""random_crop pads with zeros (mode="constant") instead of a reflection."""

import numpy as np


def random_crop(images, padding=4, rng=None):
    rng = np.random.default_rng() if rng is None else rng
    images = np.asarray(images)
    n, h, w, _ = images.shape
    padded = np.pad(images, ((0, 0), (padding, padding), (padding, padding), (0, 0)))
    tops = rng.integers(0, 2 * padding + 1, size=n)
    lefts = rng.integers(0, 2 * padding + 1, size=n)
    return np.stack([padded[i, tops[i] : tops[i] + h, lefts[i] : lefts[i] + w] for i in range(n)])
