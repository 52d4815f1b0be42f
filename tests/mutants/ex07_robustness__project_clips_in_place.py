"""project_linf clips the adversarial images in place: a float32 input is modified."""

import numpy as np


def project_linf(adversarial, original, epsilon):
    x0 = np.asarray(original, dtype=np.float32)
    x = np.asarray(adversarial, dtype=np.float32)
    np.clip(x, x0 - epsilon, x0 + epsilon, out=x)
    np.clip(x, 0.0, 255.0, out=x)
    return x
