"""StopOnNaN tests math.isnan only: an infinite loss does not stop training."""

import math

import keras


class StopOnNaN(keras.callbacks.Callback):
    def __init__(self):
        super().__init__()
        self.stopped_at = None
        self.epoch = 0

    def on_epoch_begin(self, epoch, logs=None):
        self.epoch = epoch

    def on_train_batch_end(self, batch, logs=None):
        loss = (logs or {}).get("loss")
        if loss is not None and math.isnan(float(loss)) and self.stopped_at is None:
            self.stopped_at = (self.epoch, batch)
            self.model.stop_training = True
