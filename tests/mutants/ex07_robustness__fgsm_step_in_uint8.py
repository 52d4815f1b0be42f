"""fgsm_perturb adds the step in the images' dtype: on uint8 images -8 wraps to 248."""

import numpy as np


def fgsm_perturb(images, gradients, epsilon):
    x = np.asarray(images)
    step = (np.float32(epsilon) * np.sign(np.asarray(gradients, dtype=np.float32))).astype(x.dtype)
    return np.clip(x + step, 0, 255).astype(np.float32)
