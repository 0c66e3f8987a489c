"""`ShuffledArrays`: every row once per epoch, in an order that depends on (seed, epoch) alone, so
a resumed `training.fit` sees the batches an uninterrupted one saw; Keras's `validation_split`
kept as Keras splits (the last rows)."""

import keras
import numpy as np
import pytest

from seqattn import training
from seqattn.data.batches import ShuffledArrays

pytestmark = pytest.mark.backend


def _rows(batches, epoch):
    batches.epoch = epoch
    return np.concatenate([batches[i][1] for i in range(len(batches))])


def test_each_epoch_visits_every_row_once_in_an_order_set_by_seed_and_epoch():
    x, y = np.arange(20.0)[:, None] * 10, np.arange(20)
    batches = ShuffledArrays({"a": x}, y, batch_size=6, seed=3)
    assert len(batches) == 4 and len(batches[3][1]) == 2  # 6 + 6 + 6 + 2
    first, second = _rows(batches, 0), _rows(batches, 1)
    assert sorted(first) == sorted(second) == list(range(20))
    assert not np.array_equal(first, second)
    batches.epoch = 1
    inputs, targets = batches[0]
    assert np.array_equal(inputs["a"][:, 0], targets * 10)  # inputs and targets stay paired
    resumed = ShuffledArrays({"a": x}, y, batch_size=6, seed=3)  # a new process, resuming at epoch 1
    assert np.array_equal(_rows(resumed, 1), second)
    assert not np.array_equal(_rows(ShuffledArrays({"a": x}, y, batch_size=6, seed=4), 1), second)


def test_bad_batches_are_refused():
    with pytest.raises(ValueError, match=r"same number of rows; got \[4, 5\]"):
        ShuffledArrays(np.zeros(5), np.zeros(4), batch_size=2, seed=0)
    with pytest.raises(ValueError, match="batch_size must be a positive integer; got 0"):
        ShuffledArrays(np.zeros(5), np.zeros(5), batch_size=0, seed=0)
    with pytest.raises(IndexError, match="batch 3 out of range for 3 batches"):
        ShuffledArrays(np.zeros(5), np.zeros(5), batch_size=2, seed=0)[3]


def test_fit_validates_on_the_last_rows_as_keras_splits(tmp_path):
    x = np.arange(10, dtype="float32")[:, None]
    model = keras.Sequential([keras.Input((1,)), keras.layers.Dense(1, kernel_initializer="zeros")])
    model.compile(optimizer=keras.optimizers.SGD(learning_rate=0.0), loss="mse")  # the model stays at 0
    seen = []

    class Record(keras.callbacks.Callback):
        def on_train_batch_begin(self, batch, logs=None):
            seen.append(batch)

    history = training.fit(model, x, x, epochs=1, state_dir=tmp_path, seed=0, batch_size=4, validation_split=0.3,
                           callbacks=[Record()], verbose=0)
    assert len(seen) == 2  # floor(10 * 0.7) = 7 training rows in batches of 4
    assert history.history["val_loss"][0] == pytest.approx((7**2 + 8**2 + 9**2) / 3)  # rows 7, 8, 9
    with pytest.raises(ValueError, match="validation_split=0.95 leaves no training or no validation rows of 10"):
        training.fit(model, x, x, epochs=1, state_dir=tmp_path / "b", seed=0, validation_split=0.95, verbose=0)


def test_fit_leaves_unshuffled_arrays_to_keras(tmp_path, monkeypatch):
    model = keras.Sequential([keras.Input((1,)), keras.layers.Dense(1)])
    model.compile(optimizer="sgd", loss="mse")
    given = []
    keras_fit = model.fit
    monkeypatch.setattr(model, "fit", lambda x, *args, **kwargs: given.append((x, kwargs)) or keras_fit(x, *args, **kwargs))
    x = np.zeros((6, 1), "float32")
    training.fit(model, x, x, epochs=1, state_dir=tmp_path / "a", seed=0, shuffle=False, verbose=0)
    training.fit(model, x, x, epochs=1, state_dir=tmp_path / "b", seed=0, batch_size=4, verbose=0)
    (unshuffled, kept), (shuffled, made) = given
    assert unshuffled is x and kept["shuffle"] is False
    assert isinstance(shuffled, ShuffledArrays) and made["shuffle"] is False and made["validation_batch_size"] == 4
