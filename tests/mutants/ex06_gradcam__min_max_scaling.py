"""gradcam_from_activations scales each map with (cam - min) / (max - min) instead of dividing by its maximum."""

import numpy as np


def gradcam_from_activations(activations, gradients):
    a = np.asarray(activations, dtype=np.float32)
    alpha = channel_weights(gradients)  # noqa: F821 (the solution's)
    cam = np.maximum((a * alpha[:, None, None, :]).sum(axis=-1), 0.0)
    low = cam.min(axis=(1, 2), keepdims=True)
    span = cam.max(axis=(1, 2), keepdims=True) - low
    return np.divide(cam - low, span, out=np.zeros_like(cam), where=span > 0).astype(np.float32)
