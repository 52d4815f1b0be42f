"""gradcam_from_activations divides every map by the maximum of the whole batch, not its own."""

import numpy as np


def gradcam_from_activations(activations, gradients):
    a = np.asarray(activations, dtype=np.float32)
    alpha = np.asarray(gradients, dtype=np.float32).mean(axis=(1, 2))
    cam = np.maximum((a * alpha[:, None, None, :]).sum(axis=-1), 0.0)
    peak = cam.max()
    return (cam / peak if peak > 0 else cam).astype(np.float32)
