"""freeze_all_but_top freezes the model object itself, then unfreezes the top layers: the model hides them all."""

import keras


def freeze_all_but_top(model, n):
    counted = [layer for layer in model.layers if layer.weights and not isinstance(layer, keras.layers.BatchNormalization)]
    chosen = counted[len(counted) - min(n, len(counted)) :]
    model.trainable = False
    for layer in chosen:
        layer.trainable = True
    return [layer.name for layer in chosen]
