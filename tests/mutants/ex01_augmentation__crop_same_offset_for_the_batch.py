"""random_crop draws one offset for the whole batch (what keras.layers.RandomCrop does)."""

import numpy as np


def random_crop(images, padding=4, rng=None):
    rng = np.random.default_rng() if rng is None else rng
    images = np.asarray(images)
    _, h, w, _ = images.shape
    padded = np.pad(images, ((0, 0), (padding, padding), (padding, padding), (0, 0)), mode="reflect")
    top, left = rng.integers(0, 2 * padding + 1, size=2)
    return padded[:, top : top + h, left : left + w].copy()
