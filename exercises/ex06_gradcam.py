"""Exercise 06 (lesson 06, Grad-CAM): turning a layer's gradients into a heat map.

Grad-CAM (Selvaraju et al., 2017) weighs each channel of the last convolutional feature map by
how much the class score increases with it, sums the weighted channels and keeps the positive part.
Computing the gradients needs the backend (the package does that); the weighting is plain numpy,
and that is what you will write.

Run the graded tests with ``pytest exercises/test_ex06_gradcam.py``.
"""

from __future__ import annotations

import numpy as np


def channel_weights(gradients: np.ndarray) -> np.ndarray:
    """Grad-CAM's importance of each channel: the gradient averaged over the spatial positions.

    Contract:
        * ``gradients`` is ``(N, H, W, C)``: d(class score) / d(feature map) for a batch of ``N`` images.
        * Returns ``alpha`` of shape ``(N, C)``: ``alpha[n, c]`` is the mean of ``gradients[n, :, :, c]``
          over all ``H * W`` positions of image ``n`` (global average pooling of the gradients), float32
          whatever the input dtype; ``gradients`` is not modified.

    Hints:
        * Average over the two spatial axes together; the images and the channels stay.

    Args:
        gradients: ``(N, H, W, C)``.

    Returns:
        ``(N, C)`` weights.
    """
    raise NotImplementedError("replace this line with your code; the docstring above gives the contract and hints.")


def gradcam_from_activations(activations: np.ndarray, gradients: np.ndarray) -> np.ndarray:
    """The Grad-CAM heat maps of a batch from a layer's activations and gradients.

    Contract:
        * ``activations`` and ``gradients`` are both ``(N, H, W, C)``: the feature maps of the chosen
          layer and the gradients of each image's class score with respect to them.
        * ``cam[n, y, x] = ReLU(sum over c of alpha[n, c] * activations[n, y, x, c])`` with
          ``alpha = channel_weights(gradients)``.
        * Then each map is scaled to ``[0, 1]`` by dividing it by *its own* maximum; a map whose maximum
          is 0 (nothing positive) stays all zeros, never ``nan``.
        * Neither input is modified (``np.asarray`` does not copy a float32 array: no in-place ``*=``).
        * Returns float32 ``(N, H, W)`` whatever the input dtypes (the package's ``visiondl_keras.evaluation.gradcam.gradcam_from_activations``
          has the same contract; it is what lesson 06 calls).

    Hints:
        * ``np.maximum(x, 0)`` is the ReLU; it comes *before* the scaling.
        * ``alpha[:, None, None, :]`` broadcasts the weights over the positions.
        * ``cam.max(axis=(1, 2), keepdims=True)`` is one maximum per image.

    Args:
        activations: ``(N, H, W, C)`` feature maps.
        gradients: ``(N, H, W, C)`` gradients.

    Returns:
        ``(N, H, W)`` heat maps in ``[0, 1]``.
    """
    raise NotImplementedError("replace this line with your code; the docstring above gives the contract and hints.")
