"""gradcam_from_activations forgets the ReLU: negative evidence shows up in the map."""

import numpy as np


def gradcam_from_activations(activations, gradients):
    a = np.asarray(activations, dtype=np.float32)
    alpha = np.asarray(gradients, dtype=np.float32).mean(axis=(1, 2))
    cam = (a * alpha[:, None, None, :]).sum(axis=-1)
    peak = np.abs(cam).max(axis=(1, 2), keepdims=True)
    return np.divide(cam, peak, out=np.zeros_like(cam), where=peak > 0).astype(np.float32)
