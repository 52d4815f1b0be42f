"""random_flip mirrors the wrong axis (height: upside down) instead of the width."""

import numpy as np


def random_flip(images, rng=None):
    rng = np.random.default_rng() if rng is None else rng
    images = np.asarray(images)
    flip = rng.random(len(images)) < 0.5
    out = images.copy()
    out[flip] = images[flip][:, ::-1]
    return out
