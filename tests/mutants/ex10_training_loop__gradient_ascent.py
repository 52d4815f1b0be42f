"""train_step applies the negative of the gradients: the step goes up the loss."""

import keras


def train_step(model, optimizer, loss_fn, x, y):
    import tensorflow as tf

    with tf.GradientTape() as tape:
        loss = loss_fn(y, model(x, training=True))
        for penalty in model.losses:
            loss = loss + penalty
    gradients = tape.gradient(loss, model.trainable_variables)
    optimizer.apply([-g for g in gradients], model.trainable_variables)
    return float(keras.ops.convert_to_numpy(loss))
