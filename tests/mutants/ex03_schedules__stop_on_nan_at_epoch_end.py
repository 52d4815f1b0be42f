"""StopOnNaN looks at the loss only at the end of an epoch: a whole epoch runs on NaN weights."""

import math

import keras


class StopOnNaN(keras.callbacks.Callback):
    def __init__(self):
        super().__init__()
        self.stopped_at = None

    def on_epoch_end(self, epoch, logs=None):
        loss = (logs or {}).get("loss")
        if loss is not None and not math.isfinite(float(loss)) and self.stopped_at is None:
            self.stopped_at = (epoch, 0)
            self.model.stop_training = True
