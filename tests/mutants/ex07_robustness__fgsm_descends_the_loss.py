"""fgsm_perturb subtracts the step (gradient descent): it makes the model *more* confident."""

import numpy as np


def fgsm_perturb(images, gradients, epsilon):
    x = np.asarray(images, dtype=np.float32)
    return np.clip(x - epsilon * np.sign(gradients), 0, 255).astype(np.float32)
