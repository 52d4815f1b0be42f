"""freeze_all_but_top counts BatchNormalization layers among the top n (then leaves them frozen)."""

import keras


def freeze_all_but_top(model, n):
    counted = [layer for layer in model.layers if layer.weights]
    chosen = counted[len(counted) - min(n, len(counted)) :]
    model.trainable = True
    for layer in model.layers:
        layer.trainable = any(layer is c for c in chosen) and not isinstance(layer, keras.layers.BatchNormalization)
    return [layer.name for layer in chosen if not isinstance(layer, keras.layers.BatchNormalization)]
