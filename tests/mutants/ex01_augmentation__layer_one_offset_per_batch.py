"""PerImageRandomCrop draws one offset for the whole batch (like keras.layers.RandomCrop)."""

import keras
from keras import ops


class PerImageRandomCrop(PerImageRandomCrop):  # noqa: F821 - the solution's class, defined above
    def call(self, images, training=None):
        if not training or self.padding == 0:
            return images
        p = self.padding
        h, w = images.shape[1], images.shape[2]
        padded = ops.pad(images, [[0, 0], [p, p], [p, p], [0, 0]], mode="reflect")
        top, left = (int(v) for v in ops.convert_to_numpy(
            keras.random.randint((2,), 0, 2 * p + 1, seed=self.seed_generator, dtype="int32")))
        return padded[:, top : top + h, left : left + w, :]
