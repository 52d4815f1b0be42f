"""gradcam_from_activations multiplies the activations by the weights in place: a float32 input is modified."""

import numpy as np


def gradcam_from_activations(activations, gradients):
    a = np.asarray(activations, dtype=np.float32)
    a *= channel_weights(gradients)[:, None, None, :]  # noqa: F821 (the solution's)
    cam = np.maximum(a.sum(axis=-1), 0.0)
    peak = cam.max(axis=(1, 2), keepdims=True)
    return np.divide(cam, peak, out=np.zeros_like(cam), where=peak > 0).astype(np.float32)
