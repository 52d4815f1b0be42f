"""fgsm_perturb does not clip to [0, 255]."""

import numpy as np


def fgsm_perturb(images, gradients, epsilon):
    return (np.asarray(images, dtype=np.float32) + epsilon * np.sign(gradients)).astype(np.float32)
