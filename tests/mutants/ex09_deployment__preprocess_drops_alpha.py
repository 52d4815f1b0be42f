"""preprocess_image drops the alpha channel with convert("RGB"): transparent pixels keep their (black) colour."""

import numpy as np
from PIL import Image


def preprocess_image(image, size=32):
    im = image.convert("RGB")
    w, h = im.size
    side = min(w, h)
    left, top = (w - side) // 2, (h - side) // 2
    im = im.crop((left, top, left + side, top + side))
    if side != size:
        im = im.resize((size, size), Image.Resampling.BOX)
    return np.asarray(im, dtype=np.uint8).copy()
