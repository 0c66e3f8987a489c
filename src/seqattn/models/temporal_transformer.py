"""A causal temporal transformer over a history of latent vectors, with a key/value cache.

This is the latent transition of H-TAP: the prediction for step t+1 reads every latent z_1..z_t
through causal self-attention instead of a recurrent state.

- Pre-norm blocks (x + Attn(LN(x)), x + MLP(LN(x))), as in GPT-2 / nanoGPT (Radford et al., 2019;
  Xiong et al., 2020, "On Layer Normalization in the Transformer Architecture").
- Position by ALiBi (Press et al., 2022, "Train Short, Test Long"): head h adds -m_h (i - j) to
  the logit of query i on key j, with fixed slopes m_h = 2^(-8h/nh). It is relative (a rollout
  at step 90 looks like one at step 10), has no parameters, and is the encoding shown to
  extrapolate beyond the training length, which the 10 -> 90 protocol needs: the model is
  trained on 20 frames and rolled out to 100. Sinusoidal absolute encodings would show the
  network positions it never saw in training; learned ones do not exist there at all.
- Our `MultiHeadAttention.attend` takes a boolean mask, not an additive bias, so the bias enters
  through one extra query/key dimension: the term -m_h i is constant along a softmax row and
  cancels, leaving +m_h j, which is the dot product of a query feature sqrt(d') with a key
  feature m_h j (d' = hs + 1 is the depth `attend` scales by). The weights are exactly ALiBi's.
- Key/value cache: the keys (with their position feature) and values of past steps are kept per
  layer, so a rollout step projects only the newest latent (Pope et al., 2022, "Efficiently
  Scaling Transformer Inference"). The causal mask of `attend` is aligned bottom-right, so the
  newest query attends to the whole cached history.
"""

import math

import keras
from keras import ops

from seqattn.attention import MultiHeadAttention


def alibi_slopes(num_heads: int) -> list[float]:
    """m_h = 2^(-8h/nh), h = 1..nh (Press et al., 2022)."""
    return [2.0 ** (-8.0 * h / num_heads) for h in range(1, num_heads + 1)]


def _alibi_query(q):
    """(B, nh, T, hs) -> (B, nh, T, hs + 1): rescale so the dot product keeps its 1/sqrt(hs)."""
    hs = q.shape[-1]
    depth = math.sqrt(hs + 1)
    scaled = q * (depth / math.sqrt(hs))  # attend divides by sqrt(hs + 1), we want sqrt(hs)
    return ops.concatenate([scaled, ops.ones_like(q[..., :1]) * depth], axis=-1)


def _alibi_key(k, start: int, slopes):
    """(B, nh, T, hs) keys at positions start..start+T-1 -> (B, nh, T, hs + 1) with m_h * j."""
    positions = ops.arange(start, start + k.shape[2], dtype="float32")  # (T,)
    bias = slopes[:, None] * positions[None, :]  # (nh, T)
    return ops.concatenate([k, ops.zeros_like(k[..., :1]) + bias[None, :, :, None]], axis=-1)


@keras.saving.register_keras_serializable(package="seqattn")
class TemporalBlock(keras.layers.Layer):
    """Pre-norm transformer block with causal ALiBi self-attention and a GELU MLP."""

    def __init__(self, d_model: int, num_heads: int, ff_dim: int, dropout: float = 0.0, **kwargs):
        super().__init__(**kwargs)
        if d_model % num_heads:
            raise ValueError(f"d_model={d_model} must be divisible by num_heads={num_heads}")
        self.d_model = int(d_model)
        self.num_heads = int(num_heads)
        self.ff_dim = int(ff_dim)
        self.dropout = float(dropout)
        self.norm_attn = keras.layers.LayerNormalization(epsilon=1e-5, name="norm_attn")
        self.attn = MultiHeadAttention(num_heads, key_dim=d_model // num_heads, name="attn")
        self.norm_mlp = keras.layers.LayerNormalization(epsilon=1e-5, name="norm_mlp")
        self.fc = keras.layers.Dense(ff_dim, activation="gelu", name="fc")
        self.proj = keras.layers.Dense(d_model, name="proj")
        self.drop = keras.layers.Dropout(dropout)

    def build(self, input_shape):
        shape = tuple(input_shape)
        self.norm_attn.build(shape)
        self.attn.build(shape, shape)
        self.norm_mlp.build(shape)
        self.fc.build(shape)
        self.proj.build((*shape[:-1], self.ff_dim))

    def extend(self, x, past=None, return_attention_scores=False, training=None):
        """x (B, Tn, d) at positions after the cached `past` = (k, v) or None.

        Returns (y (B, Tn, d), (k, v) including x's steps, weights (B, nh, Tn, Tpast + Tn) or None).
        """
        x = ops.convert_to_tensor(x)
        start = 0 if past is None else past[0].shape[2]
        slopes = ops.convert_to_tensor(alibi_slopes(self.num_heads), "float32")  # (nh,)
        h = self.norm_attn(x)
        q = _alibi_query(self.attn.project_query(h))  # (B, nh, Tn, hs + 1)
        k, v = self.attn.project_key_value(h, h)  # (B, nh, Tn, hs) each
        k = _alibi_key(k, start, slopes)  # (B, nh, Tn, hs + 1)
        if past is not None:
            k = ops.concatenate([past[0], k], axis=2)  # (B, nh, Tpast + Tn, hs + 1)
            v = ops.concatenate([past[1], v], axis=2)  # (B, nh, Tpast + Tn, hs)
        result = self.attn.attend(
            q, k, v, causal=True, return_attention_scores=return_attention_scores, training=training
        )
        out, weights = result if return_attention_scores else (result, None)
        x = x + self.drop(out, training=training)
        x = x + self.drop(self.proj(self.fc(self.norm_mlp(x))), training=training)
        return x, (k, v), weights

    def call(self, x, training=None):
        return self.extend(x, training=training)[0]

    def compute_output_shape(self, input_shape):
        return tuple(input_shape)

    def get_config(self):
        return {
            **super().get_config(),
            "d_model": self.d_model,
            "num_heads": self.num_heads,
            "ff_dim": self.ff_dim,
            "dropout": self.dropout,
        }


@keras.saving.register_keras_serializable(package="seqattn")
class CausalTemporalTransformer(keras.layers.Layer):
    """A stack of `TemporalBlock`s and a final LayerNorm over (B, T, d_model) sequences.

    Args:
        d_model: width of the residual stream.
        num_layers: number of blocks.
        num_heads: attention heads per block (ALiBi slopes 2^(-8h/nh)).
        ff_dim: hidden width of the MLP.
        dropout: dropout on the residual branches (training only).
    """

    def __init__(self, d_model: int = 128, num_layers: int = 2, num_heads: int = 4, ff_dim: int = 256,
                 dropout: float = 0.0, **kwargs):
        super().__init__(**kwargs)
        if int(num_layers) < 1:
            raise ValueError(f"num_layers must be a positive integer; got {num_layers}")
        self.d_model = int(d_model)
        self.num_layers = int(num_layers)
        self.num_heads = int(num_heads)
        self.ff_dim = int(ff_dim)
        self.dropout = float(dropout)
        self.blocks = [
            TemporalBlock(d_model, num_heads, ff_dim, dropout, name=f"block{i}") for i in range(num_layers)
        ]
        self.norm_out = keras.layers.LayerNormalization(epsilon=1e-5, name="norm_out")

    def build(self, input_shape):
        for block in self.blocks:
            block.build(input_shape)
        self.norm_out.build(input_shape)

    def extend(self, x, cache=None, return_attention_scores=False, training=None):
        """x (B, Tn, d) continuing the history in `cache` (a list of per-layer (k, v), or None).

        Returns (y (B, Tn, d), the new cache, per-layer weights (B, nh, Tn, Tk) or None).
        """
        new_cache, weights = [], []
        for i, block in enumerate(self.blocks):
            x, kv, w = block.extend(
                x, None if cache is None else cache[i], return_attention_scores, training=training
            )
            new_cache.append(kv)
            weights.append(w)
        return self.norm_out(x), new_cache, (weights if return_attention_scores else None)

    def call(self, x, training=None):
        return self.extend(x, training=training)[0]

    def compute_output_shape(self, input_shape):
        return tuple(input_shape)

    def get_config(self):
        return {
            **super().get_config(),
            "d_model": self.d_model,
            "num_layers": self.num_layers,
            "num_heads": self.num_heads,
            "ff_dim": self.ff_dim,
            "dropout": self.dropout,
        }
