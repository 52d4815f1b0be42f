"""build_small_cnn puts the ReLU before BatchNormalization (conv -> ReLU -> BN -> pool)."""

import keras


def build_small_cnn(input_shape=(32, 32, 3), num_classes=10, widths=(16, 32)):
    inputs = keras.Input(tuple(input_shape))
    x = inputs
    for width in widths:
        x = keras.layers.Conv2D(width, 3, padding="same", use_bias=False)(x)
        x = keras.layers.ReLU()(x)
        x = keras.layers.BatchNormalization()(x)
        x = keras.layers.MaxPooling2D(2)(x)
    x = keras.layers.GlobalAveragePooling2D()(x)
    return keras.Model(inputs, keras.layers.Dense(num_classes)(x))
