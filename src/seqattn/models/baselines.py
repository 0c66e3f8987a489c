"""Forecasting baselines, run through the same protocol and metrics as the hybrid.

- Repeat: the last observed value, held for every horizon step (the "Repeat" row of Zeng et al.,
  2023, "Are Transformers Effective for Time Series Forecasting?", AAAI).
- DLinear (Zeng et al., 2023): a moving average (kernel 25, edges replicated) splits the window
  into trend and remainder; one linear map over time each, shared by all channels, summed.
- The same seq2seq RNN as the hybrid, without attention: `seq2seq_rnn`.

All map (B, L, C) windows to (B, H, C) forecasts.
"""

import keras
from keras import ops

from seqattn.models.forecaster import Forecaster


@keras.saving.register_keras_serializable(package="seqattn")
class RepeatLast(keras.Model):
    """y[t] = x[L - 1] for every horizon step; no weights, nothing to train."""

    def __init__(self, horizon: int, **kwargs):
        super().__init__(**kwargs)
        if int(horizon) < 1:
            raise ValueError(f"horizon must be a positive integer; got {horizon}")
        self.horizon = int(horizon)

    def call(self, x):
        return ops.repeat(x[:, -1:, :], self.horizon, axis=1)  # (B, H, C)

    def get_config(self):
        return {**super().get_config(), "horizon": self.horizon}


@keras.saving.register_keras_serializable(package="seqattn")
class DLinear(keras.Model):
    """Trend/remainder decomposition with one Dense(L -> H) each (Zeng et al., 2023)."""

    def __init__(self, horizon: int, kernel_size: int = 25, **kwargs):
        super().__init__(**kwargs)
        if int(horizon) < 1:
            raise ValueError(f"horizon must be a positive integer; got {horizon}")
        if int(kernel_size) < 1 or int(kernel_size) % 2 == 0:
            raise ValueError(f"kernel_size must be a positive odd integer; got {kernel_size}")
        self.horizon = int(horizon)
        self.kernel_size = int(kernel_size)
        self.trend_linear = keras.layers.Dense(self.horizon, name="trend")
        self.remainder_linear = keras.layers.Dense(self.horizon, name="remainder")

    def build(self, input_shape):
        lookback = input_shape[1]
        self.trend_linear.build((None, None, lookback))
        self.remainder_linear.build((None, None, lookback))

    def moving_average(self, x):
        """Centred mean over kernel_size steps, edges padded by repetition: (B, L, C) -> (B, L, C)."""
        k, half = self.kernel_size, (self.kernel_size - 1) // 2
        padded = ops.concatenate(
            [ops.repeat(x[:, :1], half, axis=1), x, ops.repeat(x[:, -1:], half, axis=1)], axis=1
        )  # (B, L + k - 1, C)
        total = ops.cumsum(padded, axis=1)
        total = ops.concatenate([ops.zeros_like(total[:, :1]), total], axis=1)  # (B, L + k, C)
        return (total[:, k:] - total[:, :-k]) / k  # (B, L, C)

    def call(self, x):
        trend = self.moving_average(x)
        remainder = x - trend
        out = self.trend_linear(ops.transpose(trend, (0, 2, 1))) + self.remainder_linear(
            ops.transpose(remainder, (0, 2, 1))
        )  # (B, C, H)
        return ops.transpose(out, (0, 2, 1))  # (B, H, C)

    def get_config(self):
        return {**super().get_config(), "horizon": self.horizon, "kernel_size": self.kernel_size}


def seq2seq_rnn(horizon: int, **kwargs) -> Forecaster:
    """The hybrid's encoder-decoder with the attention removed (all other options the same)."""
    return Forecaster(horizon, use_attention=False, **kwargs)
