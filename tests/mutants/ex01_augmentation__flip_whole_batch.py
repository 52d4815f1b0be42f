"""random_flip tosses one coin for the whole batch instead of one per image."""

import numpy as np


def random_flip(images, rng=None):
    rng = np.random.default_rng() if rng is None else rng
    images = np.asarray(images)
    return images[:, :, ::-1].copy() if rng.random() < 0.5 else images.copy()
