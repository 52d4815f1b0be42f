"""preprocess_image resizes the whole picture to 32x32 without cropping the central square (objects get squashed)."""

import numpy as np
from PIL import Image


def preprocess_image(image, size=32):
    im = image
    if im.mode in ("RGBA", "LA", "PA") or (im.mode == "P" and "transparency" in im.info):
        background = Image.new("RGBA", im.size, (255, 255, 255, 255))
        im = Image.alpha_composite(background, im.convert("RGBA"))
    im = im.convert("RGB")
    if im.size != (size, size):
        im = im.resize((size, size), Image.Resampling.BOX)
    return np.asarray(im, dtype=np.uint8).copy()
