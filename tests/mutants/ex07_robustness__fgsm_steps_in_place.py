"""fgsm_perturb adds the step to the images in place: a float32 batch is modified (uint8 is copied by the conversion)."""

import numpy as np


def fgsm_perturb(images, gradients, epsilon):
    x = np.asarray(images, dtype=np.float32)
    x += np.float32(epsilon) * np.sign(np.asarray(gradients, dtype=np.float32))
    np.clip(x, 0.0, 255.0, out=x)
    return x
