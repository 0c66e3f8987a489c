"""Video predictors for Moving MNIST: TAP, H-TAP (latent space) and ConvLSTM (pixel space).

All three take a clip (B, T, H, W, C) and return the next-frame predictions for frames 2..T,
(B, T - 1, H, W, C): frames 2..context are one-step predictions from observed frames, frames
context+1..T come from a closed-loop rollout that sees only the first `context` frames. The
frames after the context in the input are never read, so plain `compile`/`fit` trains the
rollout on every backend (the target is `clip[:, 1:]`), and `predict` on a longer clip rolls out
further than training did.

- TAP: a latent predictor whose transition is recurrent (GRU or LSTM cell stepped in closed
  loop), after the recurrent latent-transition predictors of Denton & Fergus (2018, SVG) and
  Hafner et al. (2019, PlaNet's RSSM). "TAP" is this project's name for that generic baseline;
  it is not Jayaraman et al.'s (2019) Time-Agnostic Prediction.
- H-TAP: the same codec, with the transition replaced by a causal temporal transformer over the
  whole latent history (`temporal_transformer.py`), rolled out with a key/value cache.
- ConvLSTM (Shi et al., 2015): the pixel-space anchor, in the OpenSTL layout: frames are folded
  into 4x4 patches (64x64x1 -> 16x16x16) and ConvLSTM2D layers run on the folded grid.

Closed loop in latent space: the latent models feed back their own predicted latent, never a
re-encoded predicted frame. Each transition step predicts a residual, z_{t+1} = z_t + f(h_t); the
decoder turns every predicted latent into a frame at the end, in one batch. Feeding latents back
keeps the rollout cheap (no encoder pass per step) and trains the transition on its own outputs
through the whole horizon, so no scheduled sampling is needed.

Skip features (`skip_features=True`, off by default; Denton & Fergus, 2018, SVG): the decoder also
takes the encoder's feature maps of the newest observed frame, content from the last ground-truth
frame and dynamics from the latent transition, so static appearance need not pass through the
latent. A one-step prediction inside the context (frame t+1, t < context) takes the maps of frame
t, the frame it is predicted from; every rollout frame after the context takes the maps of the
last observed frame, `context`. Both latent predictors get the skips through the shared codec.
"""

import math

import keras
from keras import ops

from seqattn.models.frame_codec import FrameDecoder, FrameEncoder
from seqattn.models.temporal_transformer import CausalTemporalTransformer

RNN_CELLS = ("gru", "lstm")


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
    """Shared codec and the clip -> next-frame contract; subclasses define the transition."""

    def __init__(self, context: int = 10, latent_dim: int = 128, filters=(16, 32, 64, 64),
                 frame_size: int = 64, channels: int = 1, skip_features: bool = False, **kwargs):
        super().__init__(**kwargs)
        if int(context) < 1:
            raise ValueError(f"context must be a positive integer; got {context}")
        self.context = int(context)
        self.latent_dim = int(latent_dim)
        self.filters = tuple(int(f) for f in filters)
        self.frame_size = int(frame_size)
        self.channels = int(channels)
        self.skip_features = bool(skip_features)
        self.encoder = FrameEncoder(latent_dim, filters, frame_size, skip_features, name="encoder")
        self.decoder = FrameDecoder(filters, frame_size, channels, skip_features, name="decoder")

    def build(self, input_shape=None):
        self.encoder.build((None, self.frame_size, self.frame_size, self.channels))
        self.decoder.build((None, self.latent_dim))
        self._build_transition()

    def encode(self, frames, return_skips: bool = False):
        """(B, T, H, W, C) -> (B, T, D); with return_skips (needs skip_features), also the
        encoder's feature maps, high to low resolution, each (B, T, h, w, f)."""
        t = frames.shape[1]
        flat = ops.reshape(frames, (-1, self.frame_size, self.frame_size, self.channels))  # (B*T, H, W, C)
        encoded = self.encoder(flat)
        latents, skips = encoded if self.skip_features else (encoded, None)  # (B*T, D), L x (B*T, h, w, f)
        latents = ops.reshape(latents, (-1, t, self.latent_dim))  # (B, T, D)
        if not return_skips:
            return latents
        if skips is None:
            raise ValueError("encode(return_skips=True) needs a model built with skip_features=True")
        return latents, [ops.reshape(s, (-1, t, *s.shape[1:])) for s in skips]  # L x (B, T, h, w, f)

    def decode(self, latents, skips=None):
        """(B, T, D) latents, and with skip_features their skips L x (B, T, h, w, f) -> (B, T, H, W, C)."""
        t = latents.shape[1]
        flat = ops.reshape(latents, (-1, self.latent_dim))  # (B*T, D)
        if self.skip_features:
            frames = self.decoder(flat, [ops.reshape(s, (-1, *s.shape[2:])) for s in skips])  # (B*T, H, W, C)
        else:
            frames = self.decoder(flat)  # (B*T, H, W, C)
        return ops.reshape(frames, (-1, t, self.frame_size, self.frame_size, self.channels))

    def call(self, frames, training=None):
        _check_clip(frames, self.context, self.frame_size, self.channels)
        horizon = frames.shape[1] - self.context
        observed = frames[:, : self.context]  # (B, context, H, W, C)
        latents, skips = self.encode(observed, return_skips=True) if self.skip_features else (self.encode(observed), None)
        predicted = self.rollout_latents(latents, horizon, training=training)  # (B, C + horizon - 1, D)
        if skips is not None and horizon > 1:
            # Prediction k (frame k + 2) decodes with the maps of frame min(k + 1, C): the frame it
            # is predicted from inside the context, the last observed frame for the whole rollout.
            skips = [ops.concatenate([s, ops.repeat(s[:, -1:], horizon - 1, axis=1)], axis=1) for s in skips]
        return self.decode(predicted, skips)  # (B, T - 1, H, W, C)

    def compute_output_shape(self, input_shape):
        return _next_frames_shape(input_shape)

    def get_config(self):
        return {
            "name": self.name,
            "context": self.context,
            "latent_dim": self.latent_dim,
            "filters": list(self.filters),
            "frame_size": self.frame_size,
            "channels": self.channels,
            "skip_features": self.skip_features,
        }

    @classmethod
    def from_config(cls, config):
        return cls(**config)

    def transition_params(self) -> int:
        """Parameters of the latent transition alone (everything but the shared codec)."""
        codec = self.encoder.count_params() + self.decoder.count_params()
        return self.count_params() - codec


@keras.saving.register_keras_serializable(package="seqattn")
class TAP(_LatentPredictor):
    """Latent predictor with a recurrent transition: h_t = Cell(z_t, h_{t-1}), z_{t+1} = z_t + W h_t.

    Args:
        rnn: "gru" or "lstm".
        units: state size of the cell (`matched_rnn_units` picks it to match an H-TAP).
        other args: see the codec (`context` observed frames, `latent_dim`, `filters`, ...).
    """

    def __init__(self, rnn: str = "gru", units: int = 256, **kwargs):
        super().__init__(**kwargs)
        if rnn not in RNN_CELLS:
            raise ValueError(f"rnn must be one of {RNN_CELLS}; got {rnn!r}")
        self.rnn = rnn
        self.units = int(units)
        cell = keras.layers.GRUCell if rnn == "gru" else keras.layers.LSTMCell
        self.cell = cell(self.units, name=f"{rnn}_cell")
        self.head = keras.layers.Dense(self.latent_dim, name="head")

    def _build_transition(self):
        self.cell.build((None, self.latent_dim))
        self.head.build((None, self.units))

    def rollout_latents(self, latents, horizon: int, training=None):
        """Observed latents (B, C, D) -> predictions of z_2..z_{C+horizon}, (B, C + horizon - 1, D)."""
        zeros = ops.zeros((ops.shape(latents)[0], self.units), latents.dtype)
        state = [zeros] if self.rnn == "gru" else [zeros, zeros]
        observed = ops.unstack(latents, axis=1)  # C x (B, D)
        predictions = []
        z = None
        for t in range(self.context + horizon - 1):
            z_in = observed[t] if t < self.context else z  # observed, then its own prediction
            h, state = self.cell(z_in, state, training=training)  # (B, units)
            z = z_in + self.head(h)  # (B, D)
            predictions.append(z)
        return ops.stack(predictions, axis=1)  # (B, C + horizon - 1, D)

    def get_config(self):
        return {**super().get_config(), "rnn": self.rnn, "units": self.units}


@keras.saving.register_keras_serializable(package="seqattn")
class HTAP(_LatentPredictor):
    """Latent predictor whose transition attends causally to the whole latent history.

    z_{t+1} = z_t + W_out Transformer(W_in z_1, ..., W_in z_t)_t, with ALiBi positions and a
    key/value cache during rollout.

    Args:
        d_model, num_layers, num_heads, ff_dim, dropout: see `CausalTemporalTransformer`.
        other args: see the codec.
    """

    def __init__(self, d_model: int = 128, num_layers: int = 2, num_heads: int = 4, ff_dim: int = 256,
                 dropout: float = 0.0, **kwargs):
        super().__init__(**kwargs)
        self.d_model = int(d_model)
        self.num_layers = int(num_layers)
        self.num_heads = int(num_heads)
        self.ff_dim = int(ff_dim)
        self.dropout = float(dropout)
        self.embed = keras.layers.Dense(self.d_model, name="embed")
        self.transformer = CausalTemporalTransformer(
            d_model, num_layers, num_heads, ff_dim, dropout, name="transformer"
        )
        self.head = keras.layers.Dense(self.latent_dim, name="head")

    def _build_transition(self):
        self.embed.build((None, None, self.latent_dim))
        self.transformer.build((None, None, self.d_model))
        self.head.build((None, None, self.d_model))

    def rollout_latents(self, latents, horizon: int, training=None, use_cache: bool = True,
                        return_attention_scores: bool = False):
        """Observed latents (B, C, D) -> predictions of z_2..z_{C+horizon}, (B, C + horizon - 1, D).

        use_cache=False recomputes attention over the whole history at every step (the reference
        the cache is tested against). With return_attention_scores, also returns per layer the
        weights of every prediction step over the history, (B, nh, C + horizon - 1, same),
        zero above the diagonal.
        """
        y, cache, weights = self.transformer.extend(
            self.embed(latents), return_attention_scores=return_attention_scores, training=training
        )  # y (B, C, d)
        predicted = latents + self.head(y)  # (B, C, D): z_2..z_{C+1}
        # The recompute path needs the whole history; the cached path keeps it in `cache`.
        history = None if use_cache else ops.concatenate([latents, predicted[:, -1:]], axis=1)  # (B, C + 1, D)
        steps, step_weights = [predicted], [weights]
        z = predicted[:, -1:]  # (B, 1, D)
        for _ in range(horizon - 1):
            if use_cache:
                y, cache, w = self.transformer.extend(
                    self.embed(z), cache, return_attention_scores, training=training
                )  # y (B, 1, d)
            else:
                y, _, w = self.transformer.extend(
                    self.embed(history), None, return_attention_scores, training=training
                )
                y = y[:, -1:]  # only the newest step's output is new
                w = None if w is None else [wl[:, :, -1:] for wl in w]
            z = z + self.head(y)  # (B, 1, D)
            if not use_cache:
                history = ops.concatenate([history, z], axis=1)
            steps.append(z)
            step_weights.append(w)
        predictions = ops.concatenate(steps, axis=1)  # (B, C + horizon - 1, D)
        if not return_attention_scores:
            return predictions
        total = self.context + horizon - 1
        per_layer = []
        for layer in range(self.num_layers):
            rows = [
                ops.pad(w[layer], [(0, 0), (0, 0), (0, 0), (0, total - w[layer].shape[-1])])
                for w in step_weights
            ]
            per_layer.append(ops.concatenate(rows, axis=2))  # (B, nh, total, total)
        return predictions, per_layer

    def attention_maps(self, frames):
        """Per-layer attention weights (B, nh, T - 1, T - 1) of the rollout on clip `frames`."""
        _check_clip(frames, self.context, self.frame_size, self.channels)
        latents = self.encode(frames[:, : self.context])
        _, per_layer = self.rollout_latents(
            latents, frames.shape[1] - self.context, return_attention_scores=True
        )
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


def transformer_transition_params(latent_dim: int, d_model: int, num_layers: int, ff_dim: int) -> int:
    """Parameters of H-TAP's transition: embed, blocks (LN, attention, LN, MLP), final LN, head."""
    block = 2 * 2 * d_model + 4 * (d_model * d_model + d_model) + (d_model * ff_dim + ff_dim) + (ff_dim * d_model + d_model)
    return (latent_dim * d_model + d_model) + num_layers * block + 2 * d_model + (d_model * latent_dim + latent_dim)


def rnn_transition_params(latent_dim: int, units: int, rnn: str) -> int:
    """Parameters of TAP's transition: the cell (Keras GRU has two bias rows) and the head."""
    gates, bias_rows = (3, 2) if rnn == "gru" else (4, 1)
    return gates * (latent_dim * units + units * units + bias_rows * units) + units * latent_dim + latent_dim


def matched_rnn_units(target_params: int, latent_dim: int, rnn: str) -> int:
    """The state size whose TAP transition has the parameter count nearest `target_params`."""
    gates, bias_rows = (3, 2) if rnn == "gru" else (4, 1)
    # gates*U^2 + (gates*(D + bias_rows) + D) U + D - target = 0
    a, b, c = gates, gates * (latent_dim + bias_rows) + latent_dim, latent_dim - target_params
    root = (-b + math.sqrt(b * b - 4 * a * c)) / (2 * a)
    candidates = [max(1, math.floor(root)), math.ceil(root)]
    return min(candidates, key=lambda u: abs(rnn_transition_params(latent_dim, u, rnn) - target_params))


MODELS = {"tap": TAP, "htap": HTAP, "convlstm": ConvLSTMPredictor}
