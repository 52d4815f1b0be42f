"""PerImageRandomCrop checks only the sign of padding: 2.5 is silently truncated to 2."""

import keras
from keras import ops


class PerImageRandomCrop(keras.layers.Layer):
    def __init__(self, padding=4, seed=None, **kwargs):
        super().__init__(**kwargs)
        if padding < 0:
            raise ValueError(f"padding must be >= 0, got {padding!r}")
        self.padding, self.seed = int(padding), seed
        self.seed_generator = keras.random.SeedGenerator(seed)

    def call(self, images, training=None):
        if not training or self.padding == 0:
            return images
        p = self.padding
        h, w = images.shape[1], images.shape[2]
        padded = ops.pad(images, [[0, 0], [p, p], [p, p], [0, 0]], mode="reflect")
        n = ops.shape(images)[0]
        top = keras.random.randint((n,), 0, 2 * p + 1, seed=self.seed_generator, dtype="int32")
        left = keras.random.randint((n,), 0, 2 * p + 1, seed=self.seed_generator, dtype="int32")
        rows = top[:, None] + ops.arange(h, dtype="int32")[None, :]
        cols = left[:, None] + ops.arange(w, dtype="int32")[None, :]
        out = ops.take_along_axis(padded, rows[:, :, None, None], axis=1)
        return ops.take_along_axis(out, cols[:, None, :, None], axis=2)

    def get_config(self):
        return {**super().get_config(), "padding": self.padding, "seed": self.seed}
