"""count_trainable_params returns model.count_params(): frozen weights and BatchNorm statistics included."""


def count_trainable_params(model):
    return int(model.count_params())
