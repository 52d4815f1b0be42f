"""Exercise 09 (lesson 09, deployment): from any image file to the model's answer.

A deployed model gets photos of every size and mode: grey, RGBA, huge. Before the model sees
them they must become exactly what it was trained on, a 32x32 RGB uint8 array; after it answers,
its probabilities must become a short readable list. You will write both ends.

Run the graded tests with ``pytest exercises/test_ex09_deployment.py``.
"""

from __future__ import annotations

import numpy as np
from PIL import Image


def preprocess_image(image: Image.Image, size: int = 32) -> np.ndarray:
    """Any picture to the model's input: a ``(size, size, 3)`` uint8 RGB array.

    Contract (the same steps as the package's ``visiondl_keras.deploy.predictor.preprocess_image``):
        1. Colour: the image becomes RGB. Grey (mode ``"L"``) gets three equal channels; an image with
           transparency (modes ``"RGBA"``, ``"LA"``, ``"PA"``, and ``"P"`` with a ``"transparency"``
           entry in ``image.info``) is composited on a *white* background (a transparent pixel
           becomes white, not black); the channel order stays R, G, B.
        2. Shape: the central square is cropped, ``side = min(width, height)``,
           ``left = (width - side) // 2``, ``top = (height - side) // 2``, so objects keep their proportions.
        3. Size: the square is resized to ``size x size`` with Pillow's BOX filter (area averaging), which is
           skipped when it already has that size (a 32x32 RGB image comes back unchanged).
        4. Returns a uint8 numpy array ``(size, size, 3)`` for any ``size`` (smaller or larger than
           the square); the input image is not modified.
        Modes ``"L"``, ``"RGB"`` and ``"RGBA"`` must work (``"P"`` palette images too, via ``convert``).

    Hints:
        * ``Image.new("RGBA", im.size, (255, 255, 255, 255))`` and ``Image.alpha_composite(background, im)``.
        * ``im.crop((left, top, right, bottom))`` and ``im.resize((size, size), Image.Resampling.BOX)``.
        * ``np.asarray(im, dtype=np.uint8)`` at the end.

    Args:
        image: a ``PIL.Image.Image``.
        size: side of the output.

    Returns:
        ``(size, size, 3)`` uint8 array.
    """
    im = image
    if im.mode in ("RGBA", "LA", "PA") or (im.mode == "P" and "transparency" in im.info):
        background = Image.new("RGBA", im.size, (255, 255, 255, 255))
        im = Image.alpha_composite(background, im.convert("RGBA"))
    im = im.convert("RGB")
    w, h = im.size
    side = min(w, h)
    left, top = (w - side) // 2, (h - side) // 2
    if (w, h) != (side, side):
        im = im.crop((left, top, left + side, top + side))
    if side != size:
        im = im.resize((size, size), Image.Resampling.BOX)
    return np.asarray(im, dtype=np.uint8).copy()


def top_k(probs: np.ndarray, class_names: list[str], k: int = 3) -> list[tuple[str, float]]:
    """The ``k`` most probable classes of one prediction, as ``(name, probability)`` pairs.

    Contract:
        * ``probs`` is ``(K,)``, one probability per class in the order of ``class_names``.
        * Returns a list of ``min(k, K)`` tuples ``(class_name, probability)``, most probable first;
          probabilities are Python floats; equal probabilities keep the class order, however many
          classes tie (a stable sort).

    Hints:
        * ``np.argsort(-probs, kind="stable")[:k]``.

    Args:
        probs: probabilities of one image.
        class_names: the class names.
        k: how many to keep.

    Returns:
        List of ``(name, probability)``.
    """
    probs = np.asarray(probs, dtype=np.float64)
    order = np.argsort(-probs, kind="stable")[:k]
    return [(class_names[i], float(probs[i])) for i in order]
