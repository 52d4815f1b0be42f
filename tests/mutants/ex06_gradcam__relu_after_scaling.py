"""gradcam_from_activations scales by the maximum first and applies the ReLU afterwards."""

import numpy as np


def gradcam_from_activations(activations, gradients):
    a = np.asarray(activations, dtype=np.float32)
    alpha = np.asarray(gradients, dtype=np.float32).mean(axis=(1, 2))
    cam = (a * alpha[:, None, None, :]).sum(axis=-1)
    peak = cam.max(axis=(1, 2), keepdims=True)
    return np.maximum(np.divide(cam, peak, out=np.zeros_like(cam), where=peak != 0), 0.0).astype(np.float32)
