"""StopOnNaN never tracks the epoch: stopped_at always says epoch 0."""

import math

import keras


class StopOnNaN(keras.callbacks.Callback):
    def __init__(self):
        super().__init__()
        self.stopped_at = None

    def on_train_batch_end(self, batch, logs=None):
        loss = (logs or {}).get("loss")
        if loss is not None and not math.isfinite(float(loss)) and self.stopped_at is None:
            self.stopped_at = (0, batch)
            self.model.stop_training = True
