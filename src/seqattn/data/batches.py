"""Batch sources whose batches depend on (seed, epoch, index) alone, so that a training resumed at
epoch e sees the batches an uninterrupted one saw, on every backend.

`model.fit(x, y, shuffle=True)` on arrays does not give that: on tensorflow, Keras draws each
epoch's order with a `tf.random.shuffle` traced into its input pipeline, whose state lives in that
pipeline and restarts with it, so a resumed run trains on other batches than an uninterrupted one.
`ShuffledArrays` draws the order with numpy from (seed, epoch) instead.
"""

import math

import keras
import numpy as np


class EpochSync(keras.callbacks.Callback):
    """Tells a batch source (anything with an `epoch` attribute) which epoch `fit` is in, so the
    batches it makes from (seed, epoch, index) follow a resumed run too."""

    def __init__(self, batches):
        super().__init__()
        self.batches = batches

    def on_epoch_begin(self, epoch, logs=None):
        self.batches.epoch = epoch


class ShuffledArrays(keras.utils.PyDataset):
    """Batches of arrays (or dicts or tuples of arrays with one first axis) in an order drawn from
    (seed, epoch): the `model.fit(x, y, batch_size, shuffle=True)` of Keras, made resumable.

    Pass `epoch_callback()` to `fit` with `shuffle=False`.
    """

    def __init__(self, x, y, batch_size: int, seed: int, **kwargs):
        super().__init__(**kwargs)
        sizes = {len(a) for a in keras.tree.flatten((x, y))}
        if len(sizes) != 1:
            raise ValueError(f"inputs and targets must have the same number of rows; got {sorted(sizes)}")
        if int(batch_size) < 1:
            raise ValueError(f"batch_size must be a positive integer; got {batch_size}")
        self.x, self.y, self.batch_size, self.seed = x, y, int(batch_size), int(seed)
        self.rows = sizes.pop()
        self.epoch = 0
        self._order = (None, None)  # (epoch, permutation) last drawn

    def __len__(self) -> int:
        return math.ceil(self.rows / self.batch_size)

    def order(self, epoch: int) -> np.ndarray:
        """The rows in the order epoch `epoch` visits them."""
        drawn, order = self._order  # one read: a prefetching thread may draw another epoch's meanwhile
        if drawn != epoch:
            order = np.random.default_rng([self.seed, epoch]).permutation(self.rows)
            self._order = (epoch, order)
        return order

    def __getitem__(self, index: int):
        if not 0 <= index < len(self):
            raise IndexError(f"batch {index} out of range for {len(self)} batches")
        rows = self.order(self.epoch)[index * self.batch_size : (index + 1) * self.batch_size]
        return keras.tree.map_structure(lambda a: a[rows], (self.x, self.y))

    def epoch_callback(self) -> keras.callbacks.Callback:
        return EpochSync(self)
