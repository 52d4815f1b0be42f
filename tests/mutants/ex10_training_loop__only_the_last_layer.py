"""train_step differentiates and updates only the last layer's variables (the rest never train)."""

import keras


def train_step(model, optimizer, loss_fn, x, y):
    import tensorflow as tf

    variables = model.layers[-1].trainable_variables
    with tf.GradientTape() as tape:
        loss = loss_fn(y, model(x, training=True))
        for penalty in model.losses:
            loss = loss + penalty
    gradients = tape.gradient(loss, variables)
    optimizer.apply(gradients, variables)
    return float(keras.ops.convert_to_numpy(loss))
