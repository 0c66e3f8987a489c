"""The hybrid forecaster and the baselines: shapes, options, .keras round trips, and learning."""

import keras
import numpy as np
import pytest

from seqattn.data.windows import sliding_windows
from seqattn.metrics.forecast import mse
from seqattn.models.baselines import DLinear, RepeatLast, seq2seq_rnn
from seqattn.models.forecaster import Forecaster, LastValueNorm, RevIN

pytestmark = pytest.mark.backend

X = np.random.default_rng(0).normal(size=(3, 48, 2)).astype("float32")

VARIANTS = [
    {},
    {"rnn": "lstm", "segment": 4},
    {"decoding": "autoregressive", "segment": 8},
    {"channel_independent": False, "normalisation": "none", "segment": 8},
    {"normalisation": "last", "segment": 8},
    {"rnn": "lstm", "decoding": "autoregressive", "segment": 12, "use_attention": False},
]


@pytest.mark.parametrize("options", VARIANTS)
def test_shapes_and_attention_weights(options):
    model = Forecaster(24, units=16, num_heads=2, **options)
    y = model(X)
    assert tuple(y.shape) == (3, 24, 2)
    pred, weights = model.attention_weights(X)
    assert np.allclose(pred, keras.ops.convert_to_numpy(y), atol=1e-6)
    segment = options.get("segment", 1)
    if options.get("use_attention", True) is False:
        assert weights is None
        return
    groups = 2 if options.get("channel_independent", True) else 1
    assert weights.shape == (3, groups, 2, 24 // segment, 48 // segment)
    assert np.allclose(weights.sum(axis=-1), 1.0, atol=1e-5)


@pytest.mark.parametrize("options", [VARIANTS[1], VARIANTS[2]])
def test_keras_round_trip_gives_equal_outputs(tmp_path, options):
    model = Forecaster(24, units=16, num_heads=2, dropout=0.1, **options)
    model(X)  # random weights: equal outputs after loading means every weight came back
    model.save(tmp_path / "hybrid.keras")
    loaded = keras.models.load_model(tmp_path / "hybrid.keras")
    assert loaded.get_config() == model.get_config()
    assert np.allclose(loaded.predict(X, verbose=0), model.predict(X, verbose=0), atol=1e-6)
    assert np.allclose(loaded.attention_weights(X)[1], model.attention_weights(X)[1], atol=1e-6)


def test_baselines_round_trip_and_values(tmp_path):
    repeat = RepeatLast(5)
    assert np.array_equal(keras.ops.convert_to_numpy(repeat(X)), np.repeat(X[:, -1:], 5, axis=1))
    linear = DLinear(24, kernel_size=5)
    linear(X)
    linear.save(tmp_path / "dlinear.keras")
    assert np.allclose(keras.models.load_model(tmp_path / "dlinear.keras").predict(X, verbose=0),
                       linear.predict(X, verbose=0), atol=1e-6)
    assert isinstance(seq2seq_rnn(24), Forecaster) and seq2seq_rnn(24).use_attention is False


def test_dlinear_moving_average_replicates_edges():
    x = np.array([[[1.0], [2.0], [3.0], [10.0]]], dtype="float32")  # (1, 4, 1)
    trend = keras.ops.convert_to_numpy(DLinear(2, kernel_size=3).moving_average(x))[0, :, 0]
    assert np.allclose(trend, [(1 + 1 + 2) / 3, 2.0, 5.0, (3 + 10 + 10) / 3])


def test_revin_round_trip_and_statistics():
    layer = RevIN()
    layer.build(X.shape)
    normed, mean, std = layer.normalise(keras.ops.convert_to_tensor(X))
    normed = keras.ops.convert_to_numpy(normed)
    assert np.allclose(normed.mean(axis=1), 0, atol=1e-5) and np.allclose(normed.std(axis=1), 1, atol=1e-3)
    back = keras.ops.convert_to_numpy(layer.denormalise(keras.ops.convert_to_tensor(normed), mean, std))
    assert np.allclose(back, X, atol=1e-4)


def test_last_value_norm_centres_on_the_last_step_and_adds_it_back():
    x = np.array([[[1.0, 10.0], [4.0, 20.0], [2.0, 5.0]]], dtype="float32")  # (1, 3, 2)
    normed, last, _ = LastValueNorm().normalise(keras.ops.convert_to_tensor(x))
    assert np.allclose(keras.ops.convert_to_numpy(normed)[0], [[-1.0, 5.0], [2.0, 15.0], [0.0, 0.0]])
    y = keras.ops.convert_to_tensor(np.array([[[0.5, -1.0]]], dtype="float32"))  # changes from the last step
    assert np.allclose(keras.ops.convert_to_numpy(LastValueNorm().denormalise(y, last, None)), [[[2.5, 4.0]]])


def test_a_constant_window_is_forecast_constant_under_last_value_norm():
    # The normalised input is all zeros, so with zero output weights the forecast is the last value.
    model = Forecaster(12, units=8, num_heads=2, segment=4, normalisation="last")
    x = np.full((2, 24, 3), 7.5, dtype="float32")
    model(x)
    model.out.set_weights([np.zeros_like(w) for w in model.out.get_weights()])
    assert np.allclose(keras.ops.convert_to_numpy(model(x)), 7.5)


def test_invalid_options_are_named():
    with pytest.raises(ValueError, match="normalisation must be one of"):
        Forecaster(24, normalisation="batch")
    with pytest.raises(ValueError, match="rnn must be one of"):
        Forecaster(24, rnn="transformer")
    with pytest.raises(ValueError, match="segment must be a positive divisor of horizon=24"):
        Forecaster(24, segment=5)
    with pytest.raises(ValueError, match="segment=5 must divide the lookback L=48"):
        Forecaster(25, segment=5)(X)


@pytest.mark.slow
def test_hybrid_learns_a_sine_far_better_than_repeat():
    t = np.arange(1200, dtype="float32")
    series = (np.sin(2 * np.pi * t / 24) + 0.5 * np.sin(2 * np.pi * t / 7.3))[:, None]  # (T, 1)
    x, y = sliding_windows(series, 48, 24)
    x_train, y_train, x_test, y_test = x[:900], y[:900], x[1000:], y[1000:]
    model = Forecaster(24, units=32, num_heads=2, segment=4)
    model.compile(optimizer=keras.optimizers.Adam(3e-3), loss="mse")
    model.fit(x_train, y_train, epochs=6, batch_size=32, verbose=0)
    hybrid = mse(model.predict(x_test, verbose=0), y_test)
    repeat = mse(RepeatLast(24).predict(x_test, verbose=0), y_test)
    assert hybrid < 0.1 * repeat, (hybrid, repeat)
