"""Exercise 07 (lesson 07, robustness): one FGSM step and the PGD projection.

The fast gradient sign method (Goodfellow et al., 2015) moves every pixel by ``epsilon`` in the
direction that increases the loss; projected gradient descent (Madry et al., 2018) repeats small
steps and projects back into the allowed neighbourhood after each. The package computes the
gradients; you write the two array updates.

Images here are float arrays in pixel units, ``0..255`` (the package's models take raw RGB), so
``epsilon = 8`` means 8/255 of the range.

Run the graded tests with ``pytest exercises/test_ex07_robustness.py``.
"""

from __future__ import annotations

import numpy as np


def fgsm_perturb(images: np.ndarray, gradients: np.ndarray, epsilon: float) -> np.ndarray:
    """One FGSM step: ``images + epsilon * sign(gradients)``, kept inside the valid pixel range.

    Contract:
        * ``gradients`` is d(loss)/d(images), same shape as ``images``; the step goes *up* the loss.
        * Every pixel moves by exactly ``epsilon`` (or 0 where the gradient is 0), then the result is
          clipped to ``[0, 255]``.
        * ``images`` may be uint8 or float; compute in float32 (a uint8 ``250 + 8`` would wrap around).
        * Returns float32, same shape; ``epsilon = 0`` returns the images (as float32). The inputs
          are not modified.

    Hints:
        * ``np.sign``; only the sign of the gradient is used, not its size.

    Args:
        images: ``(N, H, W, C)`` images in ``0..255``.
        gradients: gradients of the loss with respect to the images.
        epsilon: step size in pixel units.

    Returns:
        The adversarial images.
    """
    raise NotImplementedError("replace this line with your code; the docstring above gives the contract and hints.")


def project_linf(adversarial: np.ndarray, original: np.ndarray, epsilon: float) -> np.ndarray:
    """PGD's projection: the closest image to ``adversarial`` within ``epsilon`` of ``original`` (L-infinity).

    Contract:
        * Every pixel is clipped to ``[original - epsilon, original + epsilon]`` *and* to ``[0, 255]``.
        * Pixels already inside both ranges are unchanged. Returns float32, same shape.
        * ``original`` may be uint8: compute the bounds in float32 (a uint8 ``3 - 8`` wraps to 251).
          The inputs are not modified.

    Hints:
        * The ball is centred on the *original* image, not on the current adversarial one.
        * Two ``np.clip`` calls, or one with array bounds.

    Args:
        adversarial: the image after a gradient step.
        original: the clean image.
        epsilon: radius of the allowed change, pixel units.

    Returns:
        The projected image.
    """
    raise NotImplementedError("replace this line with your code; the docstring above gives the contract and hints.")
