"""count_trainable_params counts all weights of the trainable layers, BatchNorm moving statistics included."""

import math


def count_trainable_params(model):
    return sum(math.prod(int(d) for d in w.shape) for layer in model.layers if layer.trainable for w in layer.weights)
