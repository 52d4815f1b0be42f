"""Exercise 02 (lesson 02, advanced augmentation): MixUp and CutMix.

Both blend two images of a batch and blend their labels in the *same* proportion: the label
says how much of each class is in the picture. You will write them for numpy batches with
one-hot labels.

Run the graded tests with ``pytest exercises/test_ex02_advanced_augmentation.py``.
"""

from __future__ import annotations

import numpy as np


def mixup(
    images: np.ndarray, labels_onehot: np.ndarray, alpha: float = 0.2, rng: np.random.Generator | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """MixUp (Zhang et al., 2018): blend every example with a random partner from the same batch.

    Contract:
        * Draw, in this order, ONE mixing weight ``lam = rng.beta(alpha, alpha)`` for the whole batch
          and ONE random permutation ``perm = rng.permutation(N)`` (the partners); this order makes
          your results match the package's for the same seed.
        * ``mixed_images = lam * images + (1 - lam) * images[perm]``, as float32.
        * ``mixed_labels = lam * labels_onehot + (1 - lam) * labels_onehot[perm]``, as float32:
          the same ``lam`` and the same ``perm`` as the images.
        * ``images`` may be uint8 or float; the arithmetic is done in float32 (uint8 arithmetic would
          wrap around). The inputs are not modified, whatever their dtype.

    Hints:
        * ``rng.beta(alpha, alpha)`` and ``rng.permutation(n)``.
        * Convert to float32 *before* multiplying: uint8 arithmetic wraps around.

    Args:
        images: ``(N, H, W, C)`` batch (uint8 or float).
        labels_onehot: ``(N, K)`` one-hot (or already soft) labels.
        alpha: Beta parameter; small values keep most examples nearly unmixed.
        rng: random generator (``None``: ``np.random.default_rng()``).

    Returns:
        ``(mixed_images, mixed_labels)``, float32 arrays of the input shapes.
    """
    raise NotImplementedError("replace this line with your code; the docstring above gives the contract and hints.")


def cutmix_box(height: int, width: int, lam: float, rng: np.random.Generator | None = None) -> tuple[int, int, int, int]:
    """The rectangle that CutMix (Yun et al., 2019) pastes: ``(top, bottom, left, right)``.

    Contract:
        * The uncut box has ``cut_h = int(round(height * sqrt(1 - lam)))`` rows (rounded to the
          nearest integer, not truncated) and
          ``cut_w = int(round(width * sqrt(1 - lam)))`` columns, so it covers a fraction ``1 - lam`` of the image.
        * Its centre is drawn uniformly over the pixels, first ``cy = rng.integers(0, height)``,
          then ``cx = rng.integers(0, width)`` (this order makes your boxes match the package's for
          the same seed).
        * ``top = cy - cut_h // 2``, ``bottom = top + cut_h``, ``left = cx - cut_w // 2``,
          ``right = left + cut_w``, each then clipped to ``[0, height]`` (rows) or ``[0, width]`` (columns).
        * The box is ``image[top:bottom, left:right]``; near a border the clipping makes it smaller.
          Returns plain Python ints.

    Hints:
        * Height goes with rows (``cy``, ``top``, ``bottom``); width with columns.
        * Clip *after* computing both ends: ``np.clip(value, 0, height)``.

    Args:
        height: image height.
        width: image width.
        lam: fraction of the image that stays (``0 <= lam <= 1``).
        rng: random generator (``None``: ``np.random.default_rng()``).

    Returns:
        ``(top, bottom, left, right)``.
    """
    raise NotImplementedError("replace this line with your code; the docstring above gives the contract and hints.")


def cutmix(
    images: np.ndarray, labels_onehot: np.ndarray, alpha: float = 1.0, rng: np.random.Generator | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """CutMix: paste a rectangle of a random partner into every image; mix the labels by area.

    Contract:
        * Draw, in this order, ONE ``lam = rng.beta(alpha, alpha)``, ONE permutation
          ``perm = rng.permutation(N)`` and ONE box ``cutmix_box(H, W, lam, rng)`` for the whole batch.
        * ``mixed_images`` is a float32 copy of ``images`` in which ``[top:bottom, left:right]`` of
          every image ``i`` is replaced by the same region of ``images[perm[i]]``.
        * Because the box may have been clipped at a border, the label weight is the *actual* area:
          ``lam_adj = 1 - (bottom - top) * (right - left) / (H * W)`` and
          ``mixed_labels = lam_adj * labels_onehot + (1 - lam_adj) * labels_onehot[perm]`` (float32).
        * The inputs are not modified, whatever their dtype: ``np.asarray(x, dtype=np.float32)`` does
          *not* copy a float32 array, so paste into a copy.

    Hints:
        * Reuse your ``cutmix_box``.
        * The sampled ``lam`` is not the area that was pasted.

    Args:
        images: ``(N, H, W, C)`` batch.
        labels_onehot: ``(N, K)`` labels.
        alpha: Beta parameter (1.0: ``lam`` uniform).
        rng: random generator (``None``: ``np.random.default_rng()``).

    Returns:
        ``(mixed_images, mixed_labels)``, float32.
    """
    raise NotImplementedError("replace this line with your code; the docstring above gives the contract and hints.")
