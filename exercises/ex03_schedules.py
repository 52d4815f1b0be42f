"""Exercise 03 (lesson 03, a CNN from scratch): a learning-rate schedule and gradient-norm monitoring.

Warm-up then cosine decay is the schedule the reference runs use; the global gradient norm is
the number lesson 03 watches to spot unstable training (and the one gradient clipping caps).

The Keras part: a small CNN built with the functional API, and a callback that stops a run whose
loss has become NaN or infinite (what lesson 03's stability monitor does first).

Run the graded tests with ``pytest exercises/test_ex03_schedules.py``.
"""

from __future__ import annotations

import math  # noqa: F401 (you will need it)

import keras
import numpy as np  # noqa: F401 (you will need it)


def warmup_cosine(step: int, total_steps: int, base_lr: float, warmup_steps: int, min_lr: float = 0.0) -> float:
    """Learning rate at ``step``: linear warm-up to ``base_lr``, then cosine decay to ``min_lr``.

    Contract (``step`` counts optimiser updates from 0):
        * Warm-up, ``step < warmup_steps``: ``base_lr * (step + 1) / warmup_steps``, so the first step
          already learns a little and step ``warmup_steps - 1`` reaches ``base_lr``.
        * Decay, ``warmup_steps <= step <= total_steps``: with
          ``progress = (step - warmup_steps) / max(1, total_steps - warmup_steps)``,
          ``min_lr + 0.5 * (base_lr - min_lr) * (1 + cos(pi * progress))``: ``base_lr`` at the end of
          the warm-up, ``min_lr`` at ``total_steps``.
        * After ``total_steps`` the rate stays at ``min_lr``.
        * ``warmup_steps = 0`` means no warm-up. A warm-up as long as the run
          (``warmup_steps == total_steps``) ends at ``base_lr`` at step ``total_steps`` (no division
          by zero: the ``max(1, ...)`` above) and stays at ``min_lr`` after it. Returns a Python float.

    Hints:
        * ``math.cos`` and ``math.pi``; clip ``progress`` to at most 1.
        * Draw the curve (lesson 03 does) before you run the tests.

    Args:
        step: the current update, ``0, 1, 2, ...``.
        total_steps: updates in the whole run.
        base_lr: the peak learning rate.
        warmup_steps: length of the linear warm-up.
        min_lr: the final learning rate.

    Returns:
        The learning rate, a float.
    """
    raise NotImplementedError("replace this line with your code; the docstring above gives the contract and hints.")


def global_norm(gradients: list) -> float:
    """The global L2 norm of a list of gradient arrays, as if they were one long vector.

    Contract:
        * ``sqrt(sum over arrays g of sum(g ** 2))``; entries that are ``None`` (variables without a
          gradient) are skipped; an empty list gives ``0.0``.
        * Works for arrays of any shape and float dtype, float16 included (a float16 square overflows
          above 65504: compute in float64); returns a Python float.

    Hints:
        * It is *not* the sum of the per-array norms.
        * Accumulate in float64 so that large models do not lose precision.

    Args:
        gradients: list of arrays (one per trainable variable), possibly with ``None`` entries.

    Returns:
        The global norm.
    """
    raise NotImplementedError("replace this line with your code; the docstring above gives the contract and hints.")


def clip_by_global_norm(gradients: list, max_norm: float) -> list:
    """Scale all gradients by one common factor so that their global norm is at most ``max_norm``.

    Contract:
        * With ``n = global_norm(gradients)``: when ``n <= max_norm`` the gradients come back unchanged
          (same values); otherwise every array is multiplied by ``max_norm / n``, so the direction of the
          update is kept and the new global norm is ``max_norm``.
        * ``None`` entries stay ``None``; the result is a new list of the same length, arrays keep their
          shapes and float dtypes; neither the input arrays nor the caller's list are modified.

    Hints:
        * One factor for all arrays: clipping each array on its own changes the direction.

    Args:
        gradients: list of arrays (or ``None``).
        max_norm: the cap, ``> 0``.

    Returns:
        The list of (possibly scaled) gradients.
    """
    raise NotImplementedError("replace this line with your code; the docstring above gives the contract and hints.")


def build_small_cnn(input_shape=(32, 32, 3), num_classes: int = 10, widths=(16, 32)) -> keras.Model:
    """A small CNN with the Keras functional API.

    Contract:
        * ``keras.Input(input_shape)``, then for each ``width`` in ``widths`` one block:
          ``Conv2D(width, 3, padding="same", use_bias=False)`` -> ``BatchNormalization()`` ->
          ``ReLU()`` -> ``MaxPooling2D(2)``, in that order;
        * then ``GlobalAveragePooling2D()`` and ``Dense(num_classes)`` **without** activation: the
          model outputs logits (train it with ``from_logits=True``);
        * returns the ``keras.Model`` (uncompiled); no rescaling layer (inputs are used as given).

    Parameters: each block has ``9 * c_in * width`` convolution weights (no bias) and ``4 * width``
    BatchNormalization values (2 trained, 2 running statistics); the head ``widths[-1] * num_classes
    + num_classes``.
    """
    raise NotImplementedError("replace this line with your code; the docstring above gives the contract and hints.")


class StopOnNaN(keras.callbacks.Callback):
    """A callback that stops training at the first batch whose loss is NaN or infinite.

    Contract:
        * ``StopOnNaN()``; after ``fit`` its ``stopped_at`` is ``None`` when every loss was finite,
          else the ``(epoch, batch)`` of the first bad loss (both counted from 0);
        * at that batch it sets ``self.model.stop_training = True`` (Keras then ends the run after
          the current batch) and leaves ``stopped_at`` as the first bad batch;
        * the current epoch comes from ``on_epoch_begin(epoch, logs)``, the loss from
          ``logs["loss"]`` in ``on_train_batch_end(batch, logs)``.
    """

    def __init__(self):
        raise NotImplementedError("replace this line with your code; the docstring above gives the contract and hints.")

    def on_epoch_begin(self, epoch, logs=None):
        raise NotImplementedError("replace this line with your code; the docstring above gives the contract and hints.")

    def on_train_batch_end(self, batch, logs=None):
        raise NotImplementedError("replace this line with your code; the docstring above gives the contract and hints.")
