"""Latent transitions over a grid of latent cells (B, g, g, C): recurrent for TAP, attention over
the whole history for H-TAP. Both read neighbouring cells, so motion can cross cells.

- `ConvRNNCell`: a GRU (Cho et al., 2014) or LSTM (Hochreiter & Schmidhuber, 1997) cell whose
  gates are 3x3 convolutions over the grid, as ConvLSTM (Shi et al., 2015) and ConvGRU (Ballas
  et al., 2016). Its state is all it keeps of the past.
- `SpaceTimeBlock`: TimeSformer's divided space-time attention (Bertasius et al., 2021,
  arXiv:2102.05095) made causal: each cell attends over its own history (a `TemporalBlock`:
  causal ALiBi attention and an MLP, with a key/value cache for rollouts), then the cells of one
  frame mix spatially. TimeSformer mixes space by attention over all patches of a frame; here a
  3x3 convolution does it, which on a 16x16 grid costs 9 d^2 per cell instead of 256 d per
  cell and reaches as far per block as a digit moves per frame (under one cell). Spatial mixing
  reads the current frame only, so the block stays causal in time.
"""

import keras
from keras import ops

from seqattn.models.temporal_transformer import TemporalBlock

RNN_CELLS = ("gru", "lstm")


@keras.saving.register_keras_serializable(package="seqattn")
class ConvRNNCell(keras.layers.Layer):
    """One step of a convolutional GRU or LSTM: (x (B, g, g, Cin), state) -> (h (B, g, g, F), new state).

    GRU: [u, r] = sigmoid(W_g * [x, h]); c = tanh(W_c * [x, r h]); h' = u h + (1 - u) c.
    LSTM: [i, f, o, c~] = W * [x, h]; c' = sig(f) c + sig(i) tanh(c~); h' = sig(o) tanh(c').
    The state is [h] for a GRU and [h, c] for an LSTM.

    Args:
        rnn: "gru" or "lstm".
        filters: F, channels of the state.
        kernel_size: side of the gate convolutions.
    """

    def __init__(self, rnn: str = "gru", filters: int = 32, kernel_size: int = 3, **kwargs):
        super().__init__(**kwargs)
        if rnn not in RNN_CELLS:
            raise ValueError(f"rnn must be one of {RNN_CELLS}; got {rnn!r}")
        self.rnn = rnn
        self.filters = int(filters)
        self.kernel_size = int(kernel_size)
        conv = dict(kernel_size=self.kernel_size, padding="same")
        if rnn == "gru":
            self.gates = keras.layers.Conv2D(2 * self.filters, name="gates", **conv)
            self.candidate = keras.layers.Conv2D(self.filters, name="candidate", **conv)
        else:
            self.gates = keras.layers.Conv2D(4 * self.filters, name="gates", **conv)

    def build(self, input_shape):
        joint = (*input_shape[:-1], input_shape[-1] + self.filters)  # [x, h]
        self.gates.build(joint)
        if self.rnn == "gru":
            self.candidate.build(joint)

    def initial_state(self, x):
        zeros = ops.zeros((*ops.shape(x)[:-1], self.filters), x.dtype)  # (B, g, g, F)
        return [zeros] if self.rnn == "gru" else [zeros, zeros]

    def call(self, x, state):
        f = self.filters
        h = state[0]
        gates = self.gates(ops.concatenate([x, h], axis=-1))  # (B, g, g, 2F or 4F)
        if self.rnn == "gru":
            update, reset = ops.sigmoid(gates[..., :f]), ops.sigmoid(gates[..., f:])
            candidate = ops.tanh(self.candidate(ops.concatenate([x, reset * h], axis=-1)))  # (B, g, g, F)
            h = update * h + (1.0 - update) * candidate
            return h, [h]
        i, forget, o, c_new = (gates[..., k * f : (k + 1) * f] for k in range(4))
        c = ops.sigmoid(forget) * state[1] + ops.sigmoid(i) * ops.tanh(c_new)
        h = ops.sigmoid(o) * ops.tanh(c)
        return h, [h, c]

    def get_config(self):
        return {**super().get_config(), "rnn": self.rnn, "filters": self.filters, "kernel_size": self.kernel_size}


@keras.saving.register_keras_serializable(package="seqattn")
class SpaceTimeBlock(keras.layers.Layer):
    """Causal attention over each cell's history, then spatial mixing within each frame.

    x (B, T, g, g, d) -> (B, T, g, g, d):
        x <- TemporalBlock(x) per cell over time (x + Attn(LN x), x + MLP(LN x), causal, ALiBi)
        x <- x + Conv3x3(LN x) per frame

    Args:
        d_model, num_heads, ff_dim, dropout: see `TemporalBlock`.
        kernel_size: side of the spatial mixing convolution.
    """

    def __init__(self, d_model: int = 32, num_heads: int = 4, ff_dim: int = 64, dropout: float = 0.0,
                 kernel_size: int = 3, **kwargs):
        super().__init__(**kwargs)
        self.d_model = int(d_model)
        self.num_heads = int(num_heads)
        self.ff_dim = int(ff_dim)
        self.dropout = float(dropout)
        self.kernel_size = int(kernel_size)
        self.temporal = TemporalBlock(d_model, num_heads, ff_dim, dropout, name="temporal")
        self.norm_space = keras.layers.LayerNormalization(epsilon=1e-5, name="norm_space")
        self.space = keras.layers.Conv2D(d_model, kernel_size, padding="same", name="space")

    def build(self, input_shape):
        d = self.d_model
        self.temporal.build((None, None, d))
        self.norm_space.build((None, None, None, d))
        self.space.build((None, None, None, d))

    def extend(self, x, past=None, return_attention_scores=False, training=None):
        """x (B, Tn, g, g, d) continuing the cached history `past` (the temporal block's (k, v)).

        Returns (y (B, Tn, g, g, d), the new (k, v), weights (B*g*g, nh, Tn, Tk) or None).
        """
        t, g, d = x.shape[1], x.shape[2], self.d_model
        cells = ops.reshape(ops.transpose(x, (0, 2, 3, 1, 4)), (-1, t, d))  # (B*g*g, Tn, d)
        cells, kv, weights = self.temporal.extend(cells, past, return_attention_scores, training=training)
        x = ops.transpose(ops.reshape(cells, (-1, g, g, t, d)), (0, 3, 1, 2, 4))  # (B, Tn, g, g, d)
        frames = ops.reshape(x, (-1, g, g, d))  # (B*Tn, g, g, d)
        frames = frames + self.space(self.norm_space(frames))
        return ops.reshape(frames, (-1, t, g, g, d)), kv, weights

    def call(self, x, training=None):
        return self.extend(x, training=training)[0]

    def compute_output_shape(self, input_shape):
        return tuple(input_shape)

    def get_config(self):
        return {**super().get_config(), "d_model": self.d_model, "num_heads": self.num_heads,
                "ff_dim": self.ff_dim, "dropout": self.dropout, "kernel_size": self.kernel_size}


def conv_rnn_params(in_channels: int, filters: int, rnn: str, kernel_size: int = 3) -> int:
    """Parameters of a `ConvRNNCell` on `in_channels` inputs: its gate convolutions with biases."""
    gates = 3 if rnn == "gru" else 4
    return gates * (kernel_size**2 * (in_channels + filters) * filters + filters)


def space_time_block_params(d_model: int, ff_dim: int, kernel_size: int = 3) -> int:
    """Parameters of a `SpaceTimeBlock`: two LayerNorms, q/k/v/out projections and the MLP of the
    temporal block, a LayerNorm and the spatial convolution."""
    temporal = 2 * 2 * d_model + 4 * (d_model * d_model + d_model) + (d_model * ff_dim + ff_dim) + (ff_dim * d_model + d_model)
    return temporal + 2 * d_model + kernel_size**2 * d_model * d_model + d_model
