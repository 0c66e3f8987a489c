"""Video predictors for Moving MNIST: TAP, H-TAP (latent space) and ConvLSTM (pixel space).

All three take a clip (B, T, H, W, C) and return the next-frame predictions for frames 2..T,
(B, T - 1, H, W, C): frames 2..context are one-step predictions from observed frames, frames
context+1..T come from a closed-loop rollout that sees only the first `context` frames. The
frames after the context in the input are never read, and `predict` on a longer clip rolls out
further than training did.

- TAP: a latent predictor whose transition is recurrent: a convolutional GRU (or LSTM) cell over
  the latent grid, stepped in closed loop, after the recurrent latent-transition predictors of
  Denton & Fergus (2018, SVG) and Hafner et al. (2019, PlaNet's RSSM). "TAP" is this project's name
  for that generic baseline; it is not Jayaraman et al.'s (2019) Time-Agnostic Prediction.
- H-TAP: the same codec, with the transition replaced by causal space-time attention over the
  whole latent history (`transitions.SpaceTimeBlock`), rolled out with a key/value cache.
- ConvLSTM (Shi et al., 2015): the pixel-space anchor, in the OpenSTL layout: frames are folded
  into 4x4 patches (64x64x1 -> 16x16x16) and ConvLSTM2D layers run on the folded grid.

Latents are grids (B, g, g, C) in (-1, 1) (`frame_codec`). Closed loop in latent space: the latent
models feed back their own predicted latent, never a re-encoded predicted frame, and the decoder
turns every predicted latent into a frame at the end, in one batch. Each step predicts a residual
in the codec's pre-tanh space, z_{t+1} = tanh(atanh(z_t) + f(history)_t), so the untrained
transition already holds the last latent still (the last-frame baseline) and no rollout can leave
the codec's range. The experiment trains the codec first and the transitions on its latents
(`experiments/video_training.py`); `call` is the whole frame-to-frame model that is saved,
evaluated and benchmarked.
"""

import keras
from keras import ops

from seqattn.models.frame_codec import FrameDecoder, FrameEncoder, grid_size
from seqattn.models.transitions import (
    RNN_CELLS, ConvRNNCell, SpaceTimeBlock, conv_rnn_params, space_time_block_params,
)

_ATANH_LIMIT = 0.999  # atanh(0.999) = 3.8: keeps the residual step finite on saturated codes


def residual_step(z, delta):
    """z_{t+1} = tanh(atanh(z_t) + delta): a residual update that stays inside (-1, 1)."""
    z = ops.clip(z, -_ATANH_LIMIT, _ATANH_LIMIT)
    return ops.tanh(0.5 * ops.log((1.0 + z) / (1.0 - z)) + delta)


def _check_clip(frames, context: int, frame_size: int, channels: int) -> None:
    if len(frames.shape) != 5:
        raise ValueError(f"frames must have shape (batch, time, height, width, channels); got rank {len(frames.shape)}")
    t, h, w, c = frames.shape[1:]
    if (h, w, c) != (frame_size, frame_size, channels):
        raise ValueError(
            f"frames are {h}x{w}x{c}, but the model was built for {frame_size}x{frame_size}x{channels}"
        )
    if t is not None and t <= context:
        raise ValueError(f"a clip of {t} frames leaves nothing to predict after context={context}")


def _next_frames_shape(clip_shape):
    """(B, T, H, W, C) clip -> (B, T - 1, H, W, C): every model predicts frames 2..T."""
    t = None if clip_shape[1] is None else clip_shape[1] - 1
    return (clip_shape[0], t, *clip_shape[2:])


class _LatentPredictor(keras.Model):
    """Shared codec and the clip -> next-frame contract; subclasses define the transition.

    Subclasses implement `rollout_latents(latents (B, c, g, g, C), horizon)`, which returns the
    predictions of z_2..z_{c+horizon}, (B, c + horizon - 1, g, g, C): one-step predictions from
    the observed latents, then a closed loop on its own predictions.
    """

    def __init__(self, context: int = 10, latent_channels: int = 16, codec_widths=(32, 64), token_patch: int = 2,
                 frame_size: int = 64, channels: int = 1, **kwargs):
        super().__init__(**kwargs)
        if int(context) < 1:
            raise ValueError(f"context must be a positive integer; got {context}")
        self.context = int(context)
        self.latent_channels = int(latent_channels)
        self.codec_widths = tuple(int(w) for w in codec_widths)
        self.frame_size = int(frame_size)
        self.channels = int(channels)
        self.grid = grid_size(self.frame_size, self.codec_widths)
        self.token_patch = int(token_patch)
        if self.token_patch < 1 or self.grid % self.token_patch:
            raise ValueError(f"token_patch={token_patch} must divide the latent grid side {self.grid}")
        self.encoder = FrameEncoder(latent_channels, codec_widths, frame_size, name="encoder")
        self.decoder = FrameDecoder(codec_widths, frame_size, channels, name="decoder")

    @property
    def latent_shape(self) -> tuple:
        return (self.grid, self.grid, self.latent_channels)

    @property
    def token_shape(self) -> tuple:
        """What the transition steps on: the latent grid folded into patches of token_patch^2 cells."""
        side = self.grid // self.token_patch
        return (side, side, self.token_patch**2 * self.latent_channels)

    def rollout_latents(self, latents, horizon: int, training=None, **kwargs):
        """Observed latents (B, c, g, g, Cz) -> predictions of z_2..z_{c+horizon}, (B, c + horizon - 1, g, g, Cz).

        The transition runs on tokens, patches of token_patch x token_patch latent cells (as
        TimeSformer's patches, and 4x fewer sequences for H-TAP to attend over per frame).
        """
        result = self.rollout_tokens(_fold(latents, self.token_patch), horizon, training=training, **kwargs)
        tokens, extra = (result[0], result[1:]) if isinstance(result, tuple) else (result, ())
        latents = _unfold(tokens, self.token_patch, self.latent_channels)
        return (latents, *extra) if extra else latents

    def build(self, input_shape=None):
        self.encoder.build((None, self.frame_size, self.frame_size, self.channels))
        self.decoder.build((None, *self.latent_shape))
        self._build_transition()

    def encode(self, frames, training=False):
        """(B, T, H, W, C) frames -> (B, T, g, g, Cz) latents."""
        t = frames.shape[1]
        flat = ops.reshape(frames, (-1, self.frame_size, self.frame_size, self.channels))  # (B*T, H, W, C)
        return ops.reshape(self.encoder(flat, training=training), (-1, t, *self.latent_shape))

    def decode(self, latents, training=False):
        """(B, T, g, g, Cz) latents -> (B, T, H, W, C) frames."""
        t = latents.shape[1]
        frames = self.decoder(ops.reshape(latents, (-1, *self.latent_shape)), training=training)  # (B*T, H, W, C)
        return ops.reshape(frames, (-1, t, self.frame_size, self.frame_size, self.channels))

    def call(self, frames, training=None):
        _check_clip(frames, self.context, self.frame_size, self.channels)
        horizon = frames.shape[1] - self.context
        latents = self.encode(frames[:, : self.context])  # (B, context, g, g, Cz)
        predicted = self.rollout_latents(latents, horizon, training=training)  # (B, T - 1, g, g, Cz)
        return self.decode(predicted)  # (B, T - 1, H, W, C)

    def compute_output_shape(self, input_shape):
        return _next_frames_shape(input_shape)

    def get_config(self):
        return {
            "name": self.name,
            "context": self.context,
            "latent_channels": self.latent_channels,
            "codec_widths": list(self.codec_widths),
            "token_patch": self.token_patch,
            "frame_size": self.frame_size,
            "channels": self.channels,
        }

    @classmethod
    def from_config(cls, config):
        return cls(**config)

    def codec_params(self) -> int:
        return self.encoder.count_params() + self.decoder.count_params()

    def transition_params(self) -> int:
        """Parameters of the latent transition alone (everything but the shared codec)."""
        return self.count_params() - self.codec_params()

    def transition_weights(self) -> list:
        codec = {id(w) for w in self.encoder.weights + self.decoder.weights}
        return [w for w in self.trainable_weights if id(w) not in codec]


@keras.saving.register_keras_serializable(package="seqattn")
class TAP(_LatentPredictor):
    """Latent predictor with a recurrent transition over the grid:
    h_t = ConvCell(z_t, h_{t-1}), z_{t+1} = tanh(atanh(z_t) + W h_t) (W: 1x1 convolution).

    Args:
        rnn: "gru" or "lstm".
        units: state channels F of the cell (`matched_units` picks it to match an H-TAP).
        other args: see the codec (`context` observed frames, `latent_channels`, ...).
    """

    def __init__(self, rnn: str = "gru", units: int = 48, **kwargs):
        super().__init__(**kwargs)
        if rnn not in RNN_CELLS:
            raise ValueError(f"rnn must be one of {RNN_CELLS}; got {rnn!r}")
        self.rnn = rnn
        self.units = int(units)
        self.cell = ConvRNNCell(rnn, self.units, name=f"conv_{rnn}")
        self.head = keras.layers.Conv2D(self.token_shape[-1], 1, name="head")

    def _build_transition(self):
        self.cell.build((None, *self.token_shape))
        self.head.build((None, *self.token_shape[:2], self.units))

    def rollout_tokens(self, latents, horizon: int, training=None):
        """Observed tokens (B, c, s, s, D) -> predictions of tokens 2..c+horizon, (B, c + horizon - 1, s, s, D)."""
        context = latents.shape[1]
        observed = ops.unstack(latents, axis=1)  # c x (B, g, g, Cz)
        state = self.cell.initial_state(observed[0])
        predictions, z = [], None
        for t in range(context + horizon - 1):
            z_in = observed[t] if t < context else z  # observed, then its own prediction
            h, state = self.cell(z_in, state)  # (B, g, g, F)
            z = residual_step(z_in, self.head(h))  # (B, g, g, Cz)
            predictions.append(z)
        return ops.stack(predictions, axis=1)

    def get_config(self):
        return {**super().get_config(), "rnn": self.rnn, "units": self.units}


@keras.saving.register_keras_serializable(package="seqattn")
class HTAP(_LatentPredictor):
    """Latent predictor whose transition attends causally to the whole latent history:
    z_{t+1} = tanh(atanh(z_t) + W_out SpaceTime(W_in z_1, ..., W_in z_t)_t), with ALiBi positions
    in time and a key/value cache during rollout.

    Args:
        d_model, num_layers, num_heads, ff_dim, dropout: width, depth and heads of the
            `SpaceTimeBlock`s.
        other args: see the codec.
    """

    def __init__(self, d_model: int = 32, num_layers: int = 2, num_heads: int = 4, ff_dim: int = 64,
                 dropout: float = 0.0, **kwargs):
        super().__init__(**kwargs)
        if int(num_layers) < 1:
            raise ValueError(f"num_layers must be a positive integer; got {num_layers}")
        self.d_model = int(d_model)
        self.num_layers = int(num_layers)
        self.num_heads = int(num_heads)
        self.ff_dim = int(ff_dim)
        self.dropout = float(dropout)
        self.embed = keras.layers.Dense(self.d_model, name="embed")
        self.blocks = [SpaceTimeBlock(d_model, num_heads, ff_dim, dropout, name=f"block{i}")
                       for i in range(self.num_layers)]
        self.norm_out = keras.layers.LayerNormalization(epsilon=1e-5, name="norm_out")
        self.head = keras.layers.Dense(self.token_shape[-1], name="head")

    def _build_transition(self):
        self.embed.build((None, self.token_shape[-1]))
        for block in self.blocks:
            block.build((None, None, *self.token_shape[:2], self.d_model))
        self.norm_out.build((None, self.d_model))
        self.head.build((None, self.d_model))

    def _extend(self, z, cache, return_attention_scores, training):
        """New tokens z (B, Tn, s, s, D) after the cached history -> residuals (B, Tn, s, s, D)."""
        x = self.embed(z)  # (B, Tn, g, g, d)
        new_cache, weights = [], []
        for i, block in enumerate(self.blocks):
            x, kv, w = block.extend(x, None if cache is None else cache[i], return_attention_scores, training)
            new_cache.append(kv)
            weights.append(w)
        return self.head(self.norm_out(x)), new_cache, weights

    def rollout_tokens(self, latents, horizon: int, training=None, use_cache: bool = True,
                       return_attention_scores: bool = False):
        """Observed tokens (B, c, s, s, D) -> predictions of tokens 2..c+horizon, (B, c + horizon - 1, s, s, D).

        use_cache=False recomputes attention over the whole history at every step (the reference
        the cache is tested against). With return_attention_scores, also returns per layer the
        weights of every prediction step over the history, (B*s*s, nh, c + horizon - 1, same),
        zero above the diagonal.
        """
        delta, cache, weights = self._extend(latents, None, return_attention_scores, training)
        predicted = residual_step(latents, delta)  # (B, c, g, g, Cz): z_2..z_{c+1}
        history = None if use_cache else ops.concatenate([latents, predicted[:, -1:]], axis=1)
        steps, step_weights = [predicted], [weights]
        z = predicted[:, -1:]  # (B, 1, g, g, Cz)
        for _ in range(horizon - 1):
            if use_cache:
                delta, cache, w = self._extend(z, cache, return_attention_scores, training)
            else:
                delta, _, w = self._extend(history, None, return_attention_scores, training)
                delta = delta[:, -1:]  # only the newest step's output is new
                w = [wl[:, :, -1:] for wl in w] if return_attention_scores else w
            z = residual_step(z, delta)  # (B, 1, g, g, Cz)
            if not use_cache:
                history = ops.concatenate([history, z], axis=1)
            steps.append(z)
            step_weights.append(w)
        predictions = ops.concatenate(steps, axis=1)  # (B, c + horizon - 1, g, g, Cz)
        if not return_attention_scores:
            return predictions
        total = latents.shape[1] + horizon - 1
        per_layer = []
        for layer in range(self.num_layers):
            rows = [ops.pad(w[layer], [(0, 0), (0, 0), (0, 0), (0, total - w[layer].shape[-1])])
                    for w in step_weights]
            per_layer.append(ops.concatenate(rows, axis=2))  # (B*g*g, nh, total, total)
        return predictions, per_layer

    def attention_maps(self, frames):
        """Per-layer attention weights (B*s*s, nh, T - 1, T - 1) of the rollout on clip `frames`, one
        row of sequences per token (patch of latent cells)."""
        _check_clip(frames, self.context, self.frame_size, self.channels)
        latents = self.encode(frames[:, : self.context])
        _, per_layer = self.rollout_latents(latents, frames.shape[1] - self.context, return_attention_scores=True)
        return per_layer

    def get_config(self):
        return {
            **super().get_config(),
            "d_model": self.d_model,
            "num_layers": self.num_layers,
            "num_heads": self.num_heads,
            "ff_dim": self.ff_dim,
            "dropout": self.dropout,
        }


def _fold(frames, patch: int):
    """(B, T, H, W, C) -> (B, T, H/p, W/p, p*p*C): space-to-depth, as OpenSTL's ConvLSTM."""
    _, t, h, w, c = frames.shape
    x = ops.reshape(frames, (-1, t, h // patch, patch, w // patch, patch, c))
    x = ops.transpose(x, (0, 1, 2, 4, 3, 5, 6))  # (B, T, H/p, W/p, p, p, C)
    return ops.reshape(x, (-1, t, h // patch, w // patch, patch * patch * c))


def _unfold(patches, patch: int, channels: int):
    """Inverse of `_fold`: (B, T, H/p, W/p, p*p*C) -> (B, T, H, W, C)."""
    _, t, gh, gw, _ = patches.shape
    x = ops.reshape(patches, (-1, t, gh, gw, patch, patch, channels))
    x = ops.transpose(x, (0, 1, 2, 4, 3, 5, 6))  # (B, T, H/p, p, W/p, p, C)
    return ops.reshape(x, (-1, t, gh * patch, gw * patch, channels))


@keras.saving.register_keras_serializable(package="seqattn")
class ConvLSTMPredictor(keras.Model):
    """Pixel-space anchor: stacked ConvLSTM2D on 4x4-folded frames, closed loop on its own frames.

    Args:
        context: observed frames.
        filters: channels of each ConvLSTM2D layer.
        kernel_size: their kernel size.
        patch_size: side of the folded patches.
        frame_size, channels: frame geometry.
    """

    def __init__(self, context: int = 10, filters=(32, 32), kernel_size: int = 3, patch_size: int = 4,
                 frame_size: int = 64, channels: int = 1, **kwargs):
        super().__init__(**kwargs)
        if frame_size % patch_size:
            raise ValueError(f"frame_size={frame_size} must be divisible by patch_size={patch_size}")
        self.context = int(context)
        self.filters = tuple(int(f) for f in filters)
        self.kernel_size = int(kernel_size)
        self.patch_size = int(patch_size)
        self.frame_size = int(frame_size)
        self.channels = int(channels)
        self.cells = [
            keras.layers.ConvLSTM2D(
                f, kernel_size, padding="same", return_sequences=True, return_state=True, name=f"convlstm{i}"
            )
            for i, f in enumerate(self.filters)
        ]
        self.readout = keras.layers.Conv2D(
            patch_size * patch_size * channels, 1, activation="sigmoid", name="readout"
        )

    def build(self, input_shape=None):
        grid = self.frame_size // self.patch_size
        depth = self.patch_size * self.patch_size * self.channels
        for cell in self.cells:
            cell.build((None, None, grid, grid, depth))
            depth = cell.filters
        self.readout.build((None, grid, grid, depth))

    def _step(self, patches, states):
        """patches (B, Tn, g, g, p*p*C) -> next-frame patches (B, Tn, g, g, p*p*C) and new states."""
        x, new_states = patches, []
        for cell, state in zip(self.cells, states):
            x, h, c = cell(x, initial_state=state)  # x (B, Tn, g, g, f)
            new_states.append([h, c])
        t, g = x.shape[1], x.shape[2]
        out = self.readout(ops.reshape(x, (-1, g, g, x.shape[-1])))  # (B*Tn, g, g, p*p*C)
        return ops.reshape(out, (-1, t, g, g, out.shape[-1])), new_states

    def call(self, frames, training=None):
        _check_clip(frames, self.context, self.frame_size, self.channels)
        horizon = frames.shape[1] - self.context
        patches = _fold(frames[:, : self.context], self.patch_size)  # (B, C, g, g, p*p*C)
        predicted, states = self._step(patches, [None] * len(self.cells))  # frames 2..C+1
        steps = [predicted]
        last = predicted[:, -1:]
        for _ in range(horizon - 1):
            last, states = self._step(last, states)  # fed back its own predicted frame
            steps.append(last)
        return _unfold(ops.concatenate(steps, axis=1), self.patch_size, self.channels)  # (B, T - 1, H, W, C)

    def compute_output_shape(self, input_shape):
        return _next_frames_shape(input_shape)

    def get_config(self):
        return {
            "name": self.name,
            "context": self.context,
            "filters": list(self.filters),
            "kernel_size": self.kernel_size,
            "patch_size": self.patch_size,
            "frame_size": self.frame_size,
            "channels": self.channels,
        }

    @classmethod
    def from_config(cls, config):
        return cls(**config)


def htap_transition_params(token_channels: int, d_model: int, num_layers: int, ff_dim: int) -> int:
    """Parameters of H-TAP's transition on tokens of `token_channels`: embed, space-time blocks,
    final LayerNorm, head."""
    return ((token_channels * d_model + d_model) + num_layers * space_time_block_params(d_model, ff_dim)
            + 2 * d_model + (d_model * token_channels + token_channels))


def tap_transition_params(token_channels: int, units: int, rnn: str) -> int:
    """Parameters of TAP's transition on tokens of `token_channels`: the convolutional cell and its 1x1 head."""
    return conv_rnn_params(token_channels, units, rnn) + units * token_channels + token_channels


def matched_units(target_params: int, token_channels: int, rnn: str) -> int:
    """The state channels whose TAP transition has the parameter count nearest `target_params`."""
    return min(range(1, 1025), key=lambda u: abs(tap_transition_params(token_channels, u, rnn) - target_params))


MODELS = {"tap": TAP, "htap": HTAP, "convlstm": ConvLSTMPredictor}
