"""PerImageRandomCrop ignores `training` and crops at inference too (predictions become random)."""


class PerImageRandomCrop(PerImageRandomCrop):  # noqa: F821 - the solution's class, defined above
    def call(self, images, training=None):
        return super().call(images, training=True)
