"""train_step watches and updates model.weights, so the frozen layer trains too."""

import keras


def train_step(model, optimizer, loss_fn, x, y):
    import tensorflow as tf

    variables = [w for w in model.weights if "moving" not in w.path]
    with tf.GradientTape() as tape:
        tape.watch([w.value for w in variables])
        loss = loss_fn(y, model(x, training=True))
        for penalty in model.losses:
            loss = loss + penalty
    gradients = tape.gradient(loss, [w.value for w in variables])
    optimizer.apply(gradients, variables)
    return float(keras.ops.convert_to_numpy(loss))
