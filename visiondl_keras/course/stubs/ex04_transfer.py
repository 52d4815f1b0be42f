"""Exercise 04 (lesson 04, transfer learning): freezing layers and counting what will train.

Fine-tuning a pretrained network usually starts by training only its top layers. You will write
the freezing rule and the count that tells you whether it worked.

Run the graded tests with ``pytest exercises/test_ex04_transfer.py``.
"""

from __future__ import annotations

import keras  # noqa: F401 (you will need it)


def freeze_all_but_top(model, n: int) -> list[str]:
    """Freeze a (backbone) model except its top ``n`` weighted layers; BatchNormalization stays frozen.

    Contract (the same rules as the package's ``visiondl_keras.models.backbones.freeze_all_but_top``,
    which lesson 04 uses):
        * The layers that *count* are the model's direct layers (``model.layers``, input side first)
          that own weights (``layer.weights`` is not empty, whatever their kind: Conv2D, Dense,
          DepthwiseConv2D, LayerNormalization, ...), except ``keras.layers.BatchNormalization`` layers. The "top ``n``" are the last ``n`` of those; ``n = 0`` chooses none and ``n`` larger
          than their number chooses all of them.
        * First ``model.trainable = True`` (in Keras 3, setting a model's flag sets every layer's, and a
          frozen model hides all its weights); then every layer of ``model.layers`` gets
          ``trainable = True`` if it is one of the chosen layers and ``False`` otherwise, so
          BatchNormalization layers and layers without weights end up frozen.
        * Returns the names of the chosen layers, bottom to top (a list of str).
        * As in lesson 04: re-``compile`` after changing ``trainable``, or the change is not used.

    Hints:
        * Build the list of counted layers first, then take its last ``n``.
        * Beware ``layers[-0:]``: ``-0`` is ``0``, so that slice is *every* layer.
        * ``isinstance(layer, keras.layers.BatchNormalization)``.

    Args:
        model: a ``keras.Model`` (e.g. a pretrained backbone).
        n: how many of the counted layers stay trainable, ``n >= 0``.

    Returns:
        Names of the unfrozen layers, bottom to top.
    """
    raise NotImplementedError("replace this line with your code; the docstring above gives the contract and hints.")


def count_trainable_params(model) -> int:
    """How many scalar parameters an optimiser would update: the size of ``model.trainable_weights``.

    Contract:
        * The sum of the number of elements of every variable in ``model.trainable_weights``.
        * Non-trainable variables never count: frozen layers' weights, and BatchNormalization's moving
          mean and variance even in a trainable layer (they are updated by statistics, not gradients).
        * The package's ``visiondl_keras.models.backbones.trainable_params`` computes the same number.
        * Returns a Python ``int`` (not a numpy integer).

    Hints:
        * A variable has a ``.shape``; ``math.prod`` or ``numpy.prod`` turns it into a size.
        * ``model.count_params()`` counts *all* weights: not what is asked.

    Args:
        model: a built ``keras.Model``.

    Returns:
        The number of trainable scalars.
    """
    raise NotImplementedError("replace this line with your code; the docstring above gives the contract and hints.")
