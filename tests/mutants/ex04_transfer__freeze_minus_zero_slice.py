"""freeze_all_but_top takes counted[-n:], which for n = 0 is every layer."""

import keras


def freeze_all_but_top(model, n):
    counted = [layer for layer in model.layers if layer.weights and not isinstance(layer, keras.layers.BatchNormalization)]
    chosen = counted[-n:]
    model.trainable = True
    for layer in model.layers:
        layer.trainable = any(layer is c for c in chosen)
    return [layer.name for layer in chosen]
