"""preprocess_image composites on white only for RGBA: LA and palette images with transparency lose their alpha."""

import numpy as np
from PIL import Image


def preprocess_image(image, size=32):
    im = image
    if im.mode == "RGBA":
        background = Image.new("RGBA", im.size, (255, 255, 255, 255))
        im = Image.alpha_composite(background, im)
    im = im.convert("RGB")
    w, h = im.size
    side = min(w, h)
    left, top = (w - side) // 2, (h - side) // 2
    if (w, h) != (side, side):
        im = im.crop((left, top, left + side, top + side))
    if side != size:
        im = im.resize((size, size), Image.Resampling.BOX)
    return np.asarray(im, dtype=np.uint8).copy()
