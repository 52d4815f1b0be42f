"""random_flip flips the images whose coin is >= 0.5 (the contract flips those below 0.5)."""

import numpy as np


def random_flip(images, rng=None):
    rng = np.random.default_rng() if rng is None else rng
    images = np.asarray(images)
    flip = rng.random(len(images)) >= 0.5
    out = images.copy()
    out[flip] = images[flip][:, :, ::-1]
    return out
