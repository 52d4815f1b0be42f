"""Exercise 10 (lesson 03, a CNN from scratch): one training step written by hand.

For every batch, ``model.fit`` runs the same few lines: a forward pass in training mode, the loss
(plus the penalties of the model's regularisers), the gradients of that loss with respect to the
trainable variables, and one optimizer update. Writing them yourself is how custom training
(a second loss, gradient clipping, two optimizers, a GAN) starts; the tests check that your step
does *exactly* what the built-in one does.

Keras has no backend-independent "gradient of this loss" call, so the gradient line is the one
place that depends on the backend: ``tf.GradientTape`` on TensorFlow (the default here), a
``jax.value_and_grad`` of ``model.stateless_call`` on JAX, ``loss.backward()`` on PyTorch.
``KERAS_BACKEND=jax pytest exercises/test_ex10_training_loop.py`` grades the step on JAX.

Run the graded tests with ``pytest exercises/test_ex10_training_loop.py``.
"""

from __future__ import annotations

import keras  # noqa: F401 (you will need it)
from keras import ops  # noqa: F401 (you will need it)


def train_step(model, optimizer, loss_fn, x, y) -> float:
    """One optimisation step of ``model`` on the batch ``(x, y)``, as ``model.train_on_batch`` does it.

    Contract:
        * Forward pass in *training* mode: ``predictions = model(x, training=True)`` (BatchNormalization
          normalises with the batch's statistics and updates its moving mean and variance; Dropout drops).
        * ``loss = loss_fn(y, predictions)`` plus the sum of ``model.losses`` (the regularisation
          penalties created by that forward pass; none when the model has no regulariser).
        * The gradients of that loss with respect to every variable of ``model.trainable_variables``,
          applied by ONE call ``optimizer.apply(gradients, model.trainable_variables)``: every trainable
          variable takes one step *down* the loss, and ``optimizer.iterations`` grows by 1.
        * Non-trainable variables (the weights of a frozen layer) are never updated by the optimizer;
          BatchNormalization's moving statistics change only through the forward pass, as in ``fit``.
        * Returns the loss computed *before* the update, as a Python float (what ``train_on_batch``
          returns for the same batch).
        * Starting from the same weights, ``n`` calls leave the model with the same weights (to float32
          rounding) as ``n`` calls of ``model.train_on_batch(x, y)`` after
          ``model.compile(optimizer=<same settings>, loss=loss_fn)``.

    Hints:
        * TensorFlow: compute the predictions and the loss inside ``with tf.GradientTape() as tape:``,
          then ``tape.gradient(loss, model.trainable_variables)``.
        * JAX: ``model.stateless_call(trainable_values, non_trainable_values, x, training=True,
          return_losses=True)`` returns ``(predictions, new_non_trainable_values, losses)``; take
          ``jax.value_and_grad(f, has_aux=True)`` of a function ``f(trainable_values, non_trainable_values)``
          that returns ``(loss, new_non_trainable_values)``, then ``assign`` the new values to
          ``model.non_trainable_variables`` before ``optimizer.apply``.
        * ``model.losses`` must be read *after* the forward pass (it holds the penalties of the last call);
          ``float(keras.ops.convert_to_numpy(loss))`` turns a scalar tensor into a Python float.

    Args:
        model: a built ``keras.Model``.
        optimizer: a ``keras.optimizers.Optimizer`` (SGD, Adam, ...).
        loss_fn: a ``keras.losses.Loss`` (or any ``f(y_true, y_pred) -> scalar``).
        x: a batch of inputs.
        y: the batch's targets.

    Returns:
        The loss of the batch before the update.
    """
    raise NotImplementedError("replace this line with your code; the docstring above gives the contract and hints.")
