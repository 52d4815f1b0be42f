"""fgsm_perturb steps along the raw gradient instead of its sign."""

import numpy as np


def fgsm_perturb(images, gradients, epsilon):
    x = np.asarray(images, dtype=np.float32)
    return np.clip(x + epsilon * np.asarray(gradients, dtype=np.float32), 0, 255).astype(np.float32)
