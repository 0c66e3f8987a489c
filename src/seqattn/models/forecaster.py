"""RNN + attention hybrid forecaster: an LSTM/GRU encoder, a decoder whose horizon queries attend
over all encoder states, every horizon step produced at once (direct) or one after another.

    x (B, L, C) -> [RevIN or last value] -> [channel independence: (B*C, L, 1)] -> key segments (B', L/k, k*c)
      -> Dense -> RNN encoder -> states S (B', N_in = L/k, d), final state h_L
    direct:         q_j = cell(step_embedding_j [+ channel_embedding], h_L)   all j at once
    autoregressive: q_j = cell(embed(y_{j-1}) + step_embedding_j, q_{j-1})    one j at a time
      z_j = LayerNorm(q_j + MHA(q_j, S)) -> MLP -> segment y_j (w*c) -> (B, H, C) -> [undo the normalisation]

The encoder reads segments of k steps (`key_segment`, default w), and each is one key of the
attention: with k = w = 24 and L = 96 the decoder chooses among four keys, too few to select
anything, so k can be finer than the output segments w.

References:
- Bahdanau et al. (2015), Luong et al. (2015): a recurrent decoder attending over encoder states;
  LSTMa in Informer's tables (Zhou et al., 2021) is this design, decoding step by step.
- SegRNN (Lin et al., 2023, arXiv:2308.11200): segments of w steps as RNN inputs and outputs, and
  parallel multi-step decoding where per-step position (and channel) embeddings are the decoder
  inputs and the encoder's final state its initial state. Our "direct" decoder is that, plus
  attention over all encoder states.
- RevIN (Kim et al., 2022, ICLR): subtract each window's mean, divide by its std, undo at the
  output, with a learned per-channel affine map.
- Last-value normalisation (NLinear, Zeng et al., 2023, AAAI; SegRNN's default): subtract each
  window's last value and add it back to the forecast, so the model predicts changes from now.
- Channel independence (Nie et al., 2023, PatchTST): one univariate model shared by all channels.

The attention is our from-scratch `seqattn.attention.MultiHeadAttention`. `call(x,
return_attention=True)` also returns its weights (B, G, nh, H/w, L/k), G = C with channel
independence, else 1: one row per decoder segment, one column per lookback (key) segment.
"""

import keras
from keras import ops

from seqattn.attention import MultiHeadAttention

RNNS = ("lstm", "gru")
DECODINGS = ("direct", "autoregressive")
NORMALISATIONS = ("revin", "last", "none")


@keras.saving.register_keras_serializable(package="seqattn")
class RevIN(keras.layers.Layer):
    """Reversible instance normalisation over the time axis of (B, T, C) windows."""

    def __init__(self, affine: bool = True, eps: float = 1e-5, **kwargs):
        super().__init__(**kwargs)
        self.affine = affine
        self.eps = eps

    def build(self, input_shape):
        channels = input_shape[-1]
        if self.affine:
            self.scale = self.add_weight(name="scale", shape=(channels,), initializer="ones")
            self.shift = self.add_weight(name="shift", shape=(channels,), initializer="zeros")

    def normalise(self, x):
        """(B, L, C) -> normalised x, mean (B, 1, C), std (B, 1, C)."""
        mean = ops.mean(x, axis=1, keepdims=True)
        std = ops.sqrt(ops.var(x, axis=1, keepdims=True) + self.eps)
        x = (x - mean) / std
        if self.affine:
            x = x * self.scale + self.shift
        return x, mean, std

    def denormalise(self, y, mean, std):
        if self.affine:
            y = (y - self.shift) / (self.scale + self.eps)
        return y * std + mean

    def call(self, x):
        return self.normalise(x)[0]

    def get_config(self):
        return {**super().get_config(), "affine": self.affine, "eps": self.eps}


@keras.saving.register_keras_serializable(package="seqattn")
class LastValueNorm(keras.layers.Layer):
    """Subtracts each (B, T, C) window's last value; the same interface as RevIN, with no weights."""

    def normalise(self, x):
        """(B, L, C) -> x minus its last step, last step (B, 1, C), None."""
        last = x[:, -1:, :]
        return x - last, last, None

    def denormalise(self, y, last, _):
        return y + last

    def call(self, x):
        return self.normalise(x)[0]


NORMALISERS = {"revin": RevIN, "last": LastValueNorm}


def _rnn_cell(rnn: str, units: int, name: str):
    cell = {"lstm": keras.layers.LSTMCell, "gru": keras.layers.GRUCell}[rnn]
    return cell(units, name=name)


@keras.saving.register_keras_serializable(package="seqattn")
class Forecaster(keras.Model):
    """Maps lookback windows (B, L, C) to forecasts (B, H, C).

    Args:
        horizon: H, steps to forecast.
        rnn: "lstm" or "gru", for encoder and decoder.
        units: d, width of the RNN states, queries and attention.
        num_heads: attention heads (d must divide by it).
        segment: w, steps per decoder output segment (1 = step by step); must divide H.
        key_segment: k, steps per encoder input segment, i.e. per attention key; must divide L.
            None: w (the encoder and decoder cut the series alike).
        decoding: "direct" (all horizon segments at once) or "autoregressive".
        use_attention: False gives the same seq2seq RNN without attention (a baseline).
        normalisation: how every window is normalised, and its forecast restored: "revin" (its mean and
            std, RevIN), "last" (its last value) or "none".
        channel_independent: one univariate model shared by all channels.
        dropout: dropout rate before the output head.
    """

    def __init__(
        self,
        horizon: int,
        rnn: str = "gru",
        units: int = 64,
        num_heads: int = 4,
        segment: int = 1,
        key_segment: int | None = None,
        decoding: str = "direct",
        use_attention: bool = True,
        normalisation: str = "revin",
        channel_independent: bool = True,
        dropout: float = 0.0,
        **kwargs,
    ):
        super().__init__(**kwargs)
        if int(horizon) < 1:
            raise ValueError(f"horizon must be a positive integer; got {horizon}")
        if rnn not in RNNS:
            raise ValueError(f"rnn must be one of {RNNS}; got {rnn!r}")
        if normalisation not in NORMALISATIONS:
            raise ValueError(f"normalisation must be one of {NORMALISATIONS}; got {normalisation!r}")
        if decoding not in DECODINGS:
            raise ValueError(f"decoding must be one of {DECODINGS}; got {decoding!r}")
        if int(segment) < 1 or int(horizon) % int(segment):
            raise ValueError(f"segment must be a positive divisor of horizon={horizon}; got {segment}")
        if key_segment is not None and int(key_segment) < 1:
            raise ValueError(f"key_segment must be a positive integer or None; got {key_segment}")
        if int(units) % int(num_heads):
            raise ValueError(f"units={units} must be divisible by num_heads={num_heads}")
        self.horizon = int(horizon)
        self.rnn = rnn
        self.units = int(units)
        self.num_heads = int(num_heads)
        self.segment = int(segment)
        self.key_segment = int(key_segment) if key_segment is not None else self.segment
        self.decoding = decoding
        self.use_attention = use_attention
        self.normalisation = normalisation
        self.channel_independent = channel_independent
        self.dropout = dropout
        self.n_out = self.horizon // self.segment

        d = self.units
        self.normaliser = NORMALISERS[normalisation](name=normalisation) if normalisation != "none" else None
        self.embed = keras.layers.Dense(d, name="segment_embedding")
        rnn_layer = {"lstm": keras.layers.LSTM, "gru": keras.layers.GRU}[rnn]
        self.encoder = rnn_layer(d, return_sequences=True, return_state=True, name="encoder")
        self.decoder_cell = _rnn_cell(rnn, d, name="decoder_cell")
        self.attention = (
            MultiHeadAttention(self.num_heads, key_dim=d // self.num_heads, name="attention")
            if use_attention
            else None
        )
        self.norm = keras.layers.LayerNormalization(name="norm")
        self.drop = keras.layers.Dropout(dropout)
        self.hidden = keras.layers.Dense(d, activation="gelu", name="head_hidden")
        self.out = None  # built with the channel count

    def build(self, input_shape):
        _, lookback, channels = input_shape
        if lookback % self.key_segment:
            raise ValueError(f"key_segment={self.key_segment} must divide the lookback L={lookback}")
        self.lookback, self.channels = int(lookback), int(channels)
        self.n_in = self.lookback // self.key_segment
        c = 1 if self.channel_independent else self.channels
        d = self.units
        if self.normaliser is not None:
            self.normaliser.build(input_shape)
        self.embed.build((None, self.n_in, self.key_segment * c))
        self.encoder.build((None, self.n_in, d))
        self.decoder_cell.build((None, d))
        self.step_embedding = self.add_weight(
            name="step_embedding", shape=(self.n_out, d), initializer=keras.initializers.RandomNormal(stddev=0.1)
        )
        self.channel_embedding = None
        if self.channel_independent and self.channels > 1:
            self.channel_embedding = self.add_weight(
                name="channel_embedding", shape=(self.channels, d),
                initializer=keras.initializers.RandomNormal(stddev=0.1),
            )
        if self.decoding == "autoregressive":
            self.feedback = keras.layers.Dense(d, name="feedback_embedding")
            self.feedback.build((None, self.segment * c))
        if self.attention is not None:
            self.attention.build((None, self.n_out, d), (None, self.n_in, d))
        self.norm.build((None, d))
        self.hidden.build((None, d))
        self.out = keras.layers.Dense(self.segment * c, name="head_out")
        self.out.build((None, d))

    # ------------------------------------------------------------------ pieces

    def _fold_channels(self, x):
        """(B, L, C) -> (B*C, L, 1) under channel independence, else unchanged."""
        if not self.channel_independent:
            return x
        x = ops.transpose(x, (0, 2, 1))  # (B, C, L)
        return ops.reshape(x, (-1, self.lookback, 1))  # (B*C, L, 1)

    def _unfold_channels(self, y):
        """(B*C, H, 1) -> (B, H, C) under channel independence, else unchanged."""
        if not self.channel_independent:
            return y
        y = ops.reshape(y, (-1, self.channels, self.horizon))  # (B, C, H)
        return ops.transpose(y, (0, 2, 1))  # (B, H, C)

    def _encode(self, x):
        """(B', L, c) -> states (B', N_in, d), final RNN state list."""
        segments = ops.reshape(x, (-1, self.n_in, self.key_segment * x.shape[-1]))  # (B', N_in, k*c)
        outputs = self.encoder(self.embed(segments))
        return outputs[0], list(outputs[1:])  # (B', N_in, d), [h (B', d)] or [h, c]

    def _channel_queries(self, x):
        """Step embeddings, plus the channel's embedding under channel independence: (B', N_out, d)."""
        steps = self.step_embedding[None]  # (1, N_out, d)
        if self.channel_embedding is None:
            return steps
        per_window = ops.zeros_like(x[:, 0, :])[:, :, None] + self.channel_embedding  # (B, C, d)
        channel = ops.reshape(per_window, (-1, 1, self.units))  # (B*C, 1, d)
        return steps + channel  # (B*C, N_out, d)

    def _head(self, queries, states, training, return_attention):
        """queries (B', Tq, d) attend over states (B', N_in, d) -> segments (B', Tq, w*c)."""
        weights = None
        z = queries
        if self.attention is not None:
            context = self.attention(queries, states, return_attention_scores=return_attention, training=training)
            if return_attention:
                context, weights = context  # weights (B', nh, Tq, N_in)
            z = z + context
        z = self.drop(self.norm(z), training=training)
        return self.out(self.hidden(z)), weights

    def _decode_direct(self, x_folded, states, final, queries, training, return_attention):
        batch_queries = queries + ops.zeros_like(states[:, :1, :])  # (B', N_out, d)
        inputs = ops.reshape(batch_queries, (-1, self.units))  # (B'*N_out, d)
        init = [ops.repeat(s, self.n_out, axis=0) for s in final]  # each (B'*N_out, d)
        h, _ = self.decoder_cell(inputs, init if self.rnn == "lstm" else init[0], training=training)
        h = ops.reshape(h, (-1, self.n_out, self.units))  # (B', N_out, d)
        return self._head(h, states, training, return_attention)

    def _decode_autoregressive(self, x_folded, states, final, queries, training, return_attention):
        c = x_folded.shape[-1]
        previous = ops.reshape(x_folded[:, -self.segment :, :], (-1, self.segment * c))  # (B', w*c)
        cell_state = final if self.rnn == "lstm" else final[0]
        segments, weights = [], []
        for j in range(self.n_out):
            query = queries[:, j, :] + self.feedback(previous)  # (B', d)
            h, cell_state = self.decoder_cell(query, cell_state, training=training)
            if self.rnn == "gru":
                cell_state = cell_state[0] if isinstance(cell_state, (list, tuple)) else cell_state
            y, w = self._head(h[:, None, :], states, training, return_attention)  # (B', 1, w*c)
            segments.append(y)
            weights.append(w)
            previous = y[:, 0, :]
        y = ops.concatenate(segments, axis=1)  # (B', N_out, w*c)
        return y, (ops.concatenate(weights, axis=2) if return_attention and self.attention is not None else None)

    # ------------------------------------------------------------------ forward

    def call(self, x, training=None, return_attention=False):
        if self.normaliser is not None:
            x, centre, scale = self.normaliser.normalise(x)
        folded = self._fold_channels(x)  # (B', L, c)
        states, final = self._encode(folded)  # (B', N_in, d)
        queries = self._channel_queries(x)  # (1 or B', N_out, d)
        decode = self._decode_direct if self.decoding == "direct" else self._decode_autoregressive
        y, weights = decode(folded, states, final, queries, training, return_attention)
        y = ops.reshape(y, (-1, self.horizon, folded.shape[-1]))  # (B', H, c)
        y = self._unfold_channels(y)  # (B, H, C)
        if self.normaliser is not None:
            y = self.normaliser.denormalise(y, centre, scale)
        if not return_attention:
            return y
        if weights is not None:
            groups = self.channels if self.channel_independent else 1
            weights = ops.reshape(weights, (-1, groups, self.num_heads, self.n_out, self.n_in))
        return y, weights

    def attention_weights(self, x):
        """Forecast and attention weights (B, G, nh, H/w, L/k) for a numpy batch, in inference mode."""
        y, weights = self(ops.convert_to_tensor(x), training=False, return_attention=True)
        return ops.convert_to_numpy(y), None if weights is None else ops.convert_to_numpy(weights)

    def get_config(self):
        return {
            **super().get_config(),
            "horizon": self.horizon,
            "rnn": self.rnn,
            "units": self.units,
            "num_heads": self.num_heads,
            "segment": self.segment,
            "key_segment": self.key_segment,
            "decoding": self.decoding,
            "use_attention": self.use_attention,
            "normalisation": self.normalisation,
            "channel_independent": self.channel_independent,
            "dropout": self.dropout,
        }
