"""Exercise 01 (lesson 01, data and baseline augmentation): the standard CIFAR-10 recipe.

Pad-and-crop plus a horizontal flip is the baseline augmentation every CIFAR-10 paper uses.
You will write both for a numpy batch of images, drawing a *different* random choice for every
image of the batch (Keras' ``RandomCrop`` layer crops a whole batch at the same offset: lesson 01
shows why that matters).

The last part moves the crop *inside a Keras model*: a ``keras.layers.Layer`` subclass that crops
every image at its own offset while training and does nothing at inference.

Run the graded tests with ``pytest exercises/test_ex01_augmentation.py``.
"""

from __future__ import annotations

import keras
import numpy as np
from keras import ops  # noqa: F401 (you will need it)


def random_crop(images: np.ndarray, padding: int = 4, rng: np.random.Generator | None = None) -> np.ndarray:
    """Pad every image with a reflection of itself, then cut a random crop of the original size.

    Contract:
        * ``images`` is an array ``(N, H, W, C)`` (any dtype); the result has the same shape and dtype,
          and ``images`` itself is not modified.
        * Each image is padded by ``padding`` pixels on each side of its height and width in
          *reflect* mode (the mirror image without repeating the edge pixel, ``np.pad(..., mode="reflect")``),
          then cropped back to ``H x W`` at offset ``(top, left)``.
        * ``top`` and ``left`` are drawn independently for every image, uniformly from
          ``0, 1, ..., 2 * padding`` (both ends included): first all ``N`` tops, then all ``N`` lefts
          (``rng.integers(..., size=N)`` twice; this order makes your crops match the package's for
          the same seed).
        * ``padding=0`` returns an unchanged copy.
        * ``rng`` is the ``numpy.random.Generator`` to draw from; ``None`` means a fresh, unseeded
          ``np.random.default_rng()`` (two calls then crop differently).

    Hints:
        * Pad only axes 1 and 2: ``np.pad(images, ((0, 0), (p, p), (p, p), (0, 0)), mode="reflect")``.
        * ``rng.integers(low, high, size=n)`` never returns ``high``.
        * A loop over the images is fine; the batch is small.

    Args:
        images: batch of images, ``(N, H, W, C)``.
        padding: pixels added on each side, ``0 <= padding < min(H, W)``.
        rng: random generator.

    Returns:
        The cropped batch, ``(N, H, W, C)``, same dtype as ``images``.
    """
    raise NotImplementedError("replace this line with your code; the docstring above gives the contract and hints.")


def random_flip(images: np.ndarray, rng: np.random.Generator | None = None) -> np.ndarray:
    """Mirror each image left-right with probability 1/2, independently for every image.

    Contract:
        * ``images`` is ``(N, H, W, C)``; the result has the same shape and dtype.
        * Image ``i`` of the result is either ``images[i]`` or ``images[i]`` mirrored left-right
          (the width axis, ``axis=1`` of a single ``(H, W, C)`` image), each with probability 1/2,
          drawn independently per image: image ``i`` is flipped when ``rng.random(N)[i] < 0.5``
          (one call for the batch, so your flips match the package's for the same seed).
        * ``images`` itself is not modified (any dtype, float32 included).
        * ``rng=None`` means a fresh ``np.random.default_rng()`` (unseeded: two calls differ).

    Hints:
        * ``rng.random(n) < 0.5`` gives one coin per image.
        * ``images[:, :, ::-1]`` mirrors the width axis of a whole batch; which axis is the width?

    Args:
        images: batch of images, ``(N, H, W, C)``.
        rng: random generator (``None``: ``np.random.default_rng()``).

    Returns:
        The flipped batch.
    """
    raise NotImplementedError("replace this line with your code; the docstring above gives the contract and hints.")


class PerImageRandomCrop(keras.layers.Layer):
    """A Keras layer that pads each image (reflection) and crops a random window, *per image*.

    Written with ``keras.ops`` and ``keras.random`` only, so it runs on every backend and inside
    ``model.fit``; at inference it passes images through unchanged.

    Contract:
        * ``PerImageRandomCrop(padding=4, seed=None, **kwargs)``: ``padding`` a whole number >= 0
          (``ValueError`` otherwise, e.g. for ``-1`` or ``2.5``); ``seed`` seeds a ``keras.random.SeedGenerator`` made in ``__init__``.
        * ``call(images, training=None)`` with ``images`` of shape ``(N, H, W, C)``:
          - ``training`` true: reflect-pad by ``padding`` on both spatial axes and return, for every
            image, the ``H x W`` window at offsets ``(top, left)`` drawn independently per image,
            uniform in ``0..2*padding`` (``keras.random.randint`` with the seed generator);
          - otherwise (``False`` or ``None``): the images, unchanged.
        * Same shape and dtype out as in, for any ``H`` and ``W`` (not only square images);
          ``padding=0`` is the identity.
        * ``get_config()`` includes ``padding`` and ``seed`` (a model with the layer can be saved).

    Hints: ``ops.pad(x, [[0, 0], [p, p], [p, p], [0, 0]], mode="reflect")``; index grids
    ``rows = top[:, None] + ops.arange(H)[None, :]`` (int32 both) and two
    ``ops.take_along_axis`` calls (axis 1 with ``rows[:, :, None, None]``, then axis 2).
    """

    def __init__(self, padding: int = 4, seed=None, **kwargs):
        raise NotImplementedError("replace this line with your code; the docstring above gives the contract and hints.")

    def call(self, images, training=None):
        raise NotImplementedError("replace this line with your code; the docstring above gives the contract and hints.")

    def get_config(self):
        raise NotImplementedError("replace this line with your code; the docstring above gives the contract and hints.")
