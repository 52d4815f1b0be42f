"""freeze_all_but_top counts only Conv2D and Dense layers (other weighted layers are never chosen)."""

import keras


def freeze_all_but_top(model, n):
    counted = [layer for layer in model.layers if isinstance(layer, (keras.layers.Conv2D, keras.layers.Dense))]
    chosen = counted[len(counted) - min(n, len(counted)) :]
    model.trainable = True
    for layer in model.layers:
        layer.trainable = any(layer is c for c in chosen)
    return [layer.name for layer in chosen]
