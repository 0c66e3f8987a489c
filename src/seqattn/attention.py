"""Scaled dot-product attention and multi-head attention, written from scratch with keras.ops.

    Attention(Q, K, V) = softmax(Q K^T / sqrt(d_k) + mask) V        (Vaswani et al., 2017, eq. 1)

Two exact ways to compute it (`seqattn.attention_kernels`):
- "naive": materialise the (Tq, Tk) weight matrix. Needed to return or visualise weights.
- "memory-efficient": compute (query chunk x key chunk) blocks of scores, a few (batch, head)
  pairs at a time, and merge each query's blocks by their log-sum-exp (online softmax, as
  FlashAttention). Peak extra memory is a few blocks instead of (B, nh, Tq, Tk).

Layout follows nanoGPT: heads first, (B, nh, T, hs). Masks (`attention_mask`) are boolean, True =
may attend (the Keras convention), broadcastable to (B, nh, Tq, Tk). A causal mask is aligned bottom-right: query
i sits at absolute position i + (Tk - Tq), so a query for the newest step of a rollout attends to
the whole cached history. A query with no allowed key gets zero weights and a zero output.

Scores, softmax and the online-softmax statistics are computed in float32 for float16/bfloat16/
float32 inputs (low-precision logits overflow or lose the small weights) and in float64 for float64
inputs; the naive path's weighted sum of values is done in the value dtype, the memory-efficient
path's in the softmax dtype.
"""

import keras
from keras import ops

from seqattn.attention_kernels import attention_weights, combine_masks, memory_efficient_attention, softmax_dtype


# ----------------------------------------------------------------------------- validation


def _shape_str(x) -> str:
    return "(" + ", ".join("None" if d is None else str(d) for d in x.shape) + ")"


def _check_qkv(query, key, value) -> None:
    for name, x in (("query", query), ("key", key), ("value", value)):
        if len(x.shape) != 4:
            raise ValueError(
                f"{name} must have rank 4 (batch, heads, time, depth); got shape {_shape_str(x)}"
            )
    if query.shape[-1] != key.shape[-1]:
        raise ValueError(
            f"query and key depths differ: query {_shape_str(query)}, key {_shape_str(key)}"
        )
    if key.shape[-2] != value.shape[-2]:
        raise ValueError(
            f"key and value lengths differ: key {_shape_str(key)}, value {_shape_str(value)}"
        )


def _check_mask(mask, query, key) -> None:
    """The mask must broadcast (numpy rules, right-aligned) to (B, nh, Tq, Tk)."""
    target = (query.shape[0], query.shape[1], query.shape[2], key.shape[2])
    if len(mask.shape) > 4:
        raise ValueError(f"mask must have rank <= 4; got shape {_shape_str(mask)}")
    for dim, want in zip(reversed(mask.shape), reversed(target)):
        if dim not in (1, None) and want is not None and dim != want:
            raise ValueError(
                f"mask of shape {_shape_str(mask)} does not broadcast to (batch, heads, queries, "
                f"keys) = ({', '.join(str(t) for t in target)})"
            )


# ----------------------------------------------------------------------------- layers


@keras.saving.register_keras_serializable(package="seqattn")
class ScaledDotProductAttention(keras.layers.Layer):
    """softmax(Q K^T / sqrt(d_k) + mask) V on (B, nh, T, hs) tensors, no learned weights.

    Args:
        causal: let query i attend only to keys at positions <= i (aligned bottom-right).
        dropout: rate of dropout on the attention weights, applied only when training.
        memory_efficient: compute by online softmax over chunks; weights cannot be returned.
        query_chunk_size, key_chunk_size: block sizes of the memory-efficient path (a block holds
            as many (batch, head) pairs as fit in 2 MiB of scores). The defaults were among the
            fastest at n = 1024 and 4096 on a 2-core CPU (`benchmarks/bench_attention.py --tune`):
            sequences up to 4096 keys take one key block per query chunk.
        seed: seed of the dropout noise.
    """

    def __init__(
        self,
        causal: bool = False,
        dropout: float = 0.0,
        memory_efficient: bool = False,
        query_chunk_size: int = 128,
        key_chunk_size: int = 4096,
        seed: int | None = None,
        **kwargs,
    ):
        super().__init__(**kwargs)
        if not 0.0 <= dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1); got {dropout}")
        for name, size in (("query_chunk_size", query_chunk_size), ("key_chunk_size", key_chunk_size)):
            if int(size) < 1:
                raise ValueError(f"{name} must be a positive integer; got {size}")
        self.causal = causal
        self.dropout = dropout
        self.memory_efficient = memory_efficient
        self.query_chunk_size = int(query_chunk_size)
        self.key_chunk_size = int(key_chunk_size)
        self.seed = seed
        self.seed_generator = keras.random.SeedGenerator(seed) if dropout > 0 else None

    def _dropout(self, training):
        if self.dropout == 0.0 or not training:
            return lambda x: x
        return lambda x: keras.random.dropout(x, self.dropout, seed=self.seed_generator)

    def call(self, query, key, value, attention_mask=None, causal=None, return_attention_scores=False, training=None):
        """`causal` overrides the constructor's setting for this call when not None."""
        causal = self.causal if causal is None else causal
        _check_qkv(query, key, value)
        mask = attention_mask
        if mask is not None:
            _check_mask(mask, query, key)
        dropout = self._dropout(training)
        if self.memory_efficient:
            if return_attention_scores:
                raise ValueError("return_attention_scores=True needs memory_efficient=False")
            return memory_efficient_attention(
                query, key, value, mask, causal, self.query_chunk_size, self.key_chunk_size, dropout
            )
        weights = attention_weights(query, key, mask, causal)  # (B, nh, Tq, Tk) float32/64
        out = ops.einsum("bhqk,bhkd->bhqd", ops.cast(dropout(weights), value.dtype), value)  # (B, nh, Tq, hv)
        if return_attention_scores:
            return out, weights
        return out

    def compute_output_shape(self, query_shape, key_shape, value_shape, attention_mask_shape=None):
        return (*query_shape[:-1], value_shape[-1])

    def compute_output_spec(
        self, query, key, value, attention_mask=None, causal=None, return_attention_scores=False, training=None
    ):
        # Needed in functional models: compute_output_shape cannot say that weights come too.
        out = keras.KerasTensor(self.compute_output_shape(query.shape, key.shape, value.shape), dtype=value.dtype)
        if not return_attention_scores:
            return out
        weights_shape = (*query.shape[:-1], key.shape[-2])  # (B, nh, Tq, Tk)
        return out, keras.KerasTensor(weights_shape, dtype=softmax_dtype(query))

    def get_config(self):
        return {
            **super().get_config(),
            "causal": self.causal,
            "dropout": self.dropout,
            "memory_efficient": self.memory_efficient,
            "query_chunk_size": self.query_chunk_size,
            "key_chunk_size": self.key_chunk_size,
            "seed": self.seed,
        }


@keras.saving.register_keras_serializable(package="seqattn")
class MultiHeadAttention(keras.layers.Layer):
    """Multi-head attention on (B, T, E) inputs, built on `ScaledDotProductAttention`.

    The weight layout matches `keras.layers.MultiHeadAttention` (kernels (E, nh, hs) for
    query/key/value and (nh, hv, E) for the output), so weights copy across with `set_weights`.
    The call takes (query, value, key, attention_mask) like Keras's, then keywords only; it differs
    in that its fourth positional argument is `attention_mask` (Keras: `query_mask`), there are no
    query/value/key masks (use `key_padding_mask` (B, Tk) instead), and the causal mask is aligned
    bottom-right when Tq != Tk (the last query sees every key; Keras aligns it top-left). Extra:
    the memory-efficient path.

    Args:
        num_heads: number of heads nh.
        key_dim: size hs of each query/key head; None means E // num_heads (E must divide).
        value_dim: size hv of each value head; defaults to key_dim.
        dropout: dropout rate on the attention weights (training only).
        use_bias: add biases to the four projections.
        output_dim: output features; defaults to the query's E.
        causal: always apply a causal mask (also available per call as use_causal_mask).
        memory_efficient, query_chunk_size, key_chunk_size: see ScaledDotProductAttention.
    """

    def __init__(
        self,
        num_heads: int,
        key_dim: int | None = None,
        value_dim: int | None = None,
        dropout: float = 0.0,
        use_bias: bool = True,
        output_dim: int | None = None,
        causal: bool = False,
        memory_efficient: bool = False,
        query_chunk_size: int = 128,
        key_chunk_size: int = 4096,
        kernel_initializer="glorot_uniform",
        bias_initializer="zeros",
        seed: int | None = None,
        **kwargs,
    ):
        super().__init__(**kwargs)
        if int(num_heads) < 1:
            raise ValueError(f"num_heads must be a positive integer; got {num_heads}")
        for name, dim in (("key_dim", key_dim), ("value_dim", value_dim), ("output_dim", output_dim)):
            if dim is not None and int(dim) < 1:
                raise ValueError(f"{name} must be a positive integer or None; got {dim}")
        self.num_heads = int(num_heads)
        self.key_dim = key_dim
        self.value_dim = value_dim
        self.dropout = dropout
        self.use_bias = use_bias
        self.output_dim = output_dim
        self.causal = causal
        self.memory_efficient = memory_efficient
        self.query_chunk_size = query_chunk_size
        self.key_chunk_size = key_chunk_size
        self.kernel_initializer = keras.initializers.get(kernel_initializer)
        self.bias_initializer = keras.initializers.get(bias_initializer)
        self.seed = seed
        self.attention = ScaledDotProductAttention(
            dropout=dropout,
            memory_efficient=memory_efficient,
            query_chunk_size=query_chunk_size,
            key_chunk_size=key_chunk_size,
            seed=seed,
            dtype=self.dtype_policy,  # under mixed precision the heads stay in the compute dtype
            name="attention",
        )

    def build(self, query_shape, value_shape, key_shape=None):
        key_shape = value_shape if key_shape is None else key_shape
        embed = query_shape[-1]
        if self.key_dim is None:
            if embed % self.num_heads:
                raise ValueError(
                    f"query embedding dim {embed} is not divisible by num_heads={self.num_heads}; "
                    "pass key_dim explicitly"
                )
            self.key_dim = embed // self.num_heads
        self.value_dim = self.value_dim or self.key_dim
        self.output_dim = self.output_dim or embed
        nh, hs, hv = self.num_heads, self.key_dim, self.value_dim

        def fresh(initializer):
            # An unseeded Keras initializer draws its seed once, at construction: reusing one
            # instance would give identical query, key and value kernels. Clone it per weight,
            # as keras.layers.MultiHeadAttention does.
            return initializer.__class__.from_config(initializer.get_config())

        def projection(name, shape, bias_shape):
            kernel = self.add_weight(name=f"{name}_kernel", shape=shape, initializer=fresh(self.kernel_initializer))
            bias = None
            if self.use_bias:
                bias = self.add_weight(name=f"{name}_bias", shape=bias_shape, initializer=fresh(self.bias_initializer))
            return kernel, bias

        # Same creation order as keras.layers.MultiHeadAttention, so get/set_weights line up.
        self.query_kernel, self.query_bias = projection("query", (embed, nh, hs), (nh, hs))
        self.key_kernel, self.key_bias = projection("key", (key_shape[-1], nh, hs), (nh, hs))
        self.value_kernel, self.value_bias = projection("value", (value_shape[-1], nh, hv), (nh, hv))
        self.output_kernel, self.output_bias = projection("output", (nh, hv, self.output_dim), (self.output_dim,))

    @staticmethod
    def _project_in(x, kernel, bias):
        heads = ops.einsum("bte,ehd->bhtd", x, kernel)  # (B, T, E) -> (B, nh, T, hs)
        if bias is not None:
            heads = heads + ops.expand_dims(bias, 1)  # bias (nh, hs) -> (nh, 1, hs)
        return heads

    def project_query(self, query):
        """(B, Tq, E) -> (B, nh, Tq, hs)."""
        return self._project_in(query, self.query_kernel, self.query_bias)

    def project_key_value(self, key, value):
        """(B, Tk, Ek), (B, Tk, Ev) -> (B, nh, Tk, hs), (B, nh, Tk, hv). Cache these for rollout."""
        return (
            self._project_in(key, self.key_kernel, self.key_bias),
            self._project_in(value, self.value_kernel, self.value_bias),
        )

    def project_output(self, heads):
        """(B, nh, Tq, hv) -> (B, Tq, output_dim)."""
        out = ops.einsum("bhtd,hde->bte", heads, self.output_kernel)
        if self.output_bias is not None:
            out = out + self.output_bias
        return out

    def attend(self, q, k, v, mask=None, causal=False, return_attention_scores=False, training=None):
        """Attention on already-projected heads; the rollout cache of a decoder calls this."""
        result = self.attention(
            q, k, v, attention_mask=mask, causal=causal,
            return_attention_scores=return_attention_scores, training=training,
        )
        if return_attention_scores:
            heads, weights = result
            return self.project_output(heads), weights
        return self.project_output(result)

    def call(
        self,
        query,
        value,
        key=None,
        attention_mask=None,
        key_padding_mask=None,
        use_causal_mask=False,
        return_attention_scores=False,
        training=None,
    ):
        key = value if key is None else key
        for name, x in (("query", query), ("value", value), ("key", key)):
            if len(x.shape) != 3:
                raise ValueError(f"{name} must have rank 3 (batch, time, features); got shape {_shape_str(x)}")
        if key.shape[1] is not None and value.shape[1] is not None and key.shape[1] != value.shape[1]:
            raise ValueError(f"key and value lengths differ: key {_shape_str(key)}, value {_shape_str(value)}")
        mask = None
        if attention_mask is not None:
            if len(attention_mask.shape) != 3:
                raise ValueError(
                    f"attention_mask must have shape (batch, queries, keys); got {_shape_str(attention_mask)}"
                )
            mask = ops.expand_dims(ops.cast(attention_mask, "bool"), 1)  # (B, 1, Tq, Tk)
        if key_padding_mask is not None:
            if len(key_padding_mask.shape) != 2:
                raise ValueError(
                    f"key_padding_mask must have shape (batch, keys); got {_shape_str(key_padding_mask)}"
                )
            padding = ops.cast(key_padding_mask, "bool")[:, None, None, :]  # (B, 1, 1, Tk)
            mask = combine_masks(mask, padding)
        q = self.project_query(query)  # (B, nh, Tq, hs)
        k, v = self.project_key_value(key, value)  # (B, nh, Tk, hs), (B, nh, Tk, hv)
        return self.attend(
            q, k, v, mask=mask, causal=self.causal or use_causal_mask,
            return_attention_scores=return_attention_scores, training=training,
        )

    def compute_output_shape(self, query_shape, value_shape, key_shape=None):
        return (*query_shape[:-1], self.output_dim or query_shape[-1])

    def compute_output_spec(
        self,
        query,
        value,
        key=None,
        attention_mask=None,
        key_padding_mask=None,
        use_causal_mask=False,
        return_attention_scores=False,
        training=None,
    ):
        # Needed in functional models: compute_output_shape cannot say that weights come too.
        key = value if key is None else key
        out = keras.KerasTensor(self.compute_output_shape(query.shape, value.shape), dtype=self.compute_dtype)
        if not return_attention_scores:
            return out
        weights_shape = (query.shape[0], self.num_heads, query.shape[1], key.shape[1])  # (B, nh, Tq, Tk)
        return out, keras.KerasTensor(weights_shape, dtype=softmax_dtype(query))

    def get_config(self):
        return {
            **super().get_config(),
            "num_heads": self.num_heads,
            "key_dim": self.key_dim,
            "value_dim": self.value_dim,
            "dropout": self.dropout,
            "use_bias": self.use_bias,
            "output_dim": self.output_dim,
            "causal": self.causal,
            "memory_efficient": self.memory_efficient,
            "query_chunk_size": self.query_chunk_size,
            "key_chunk_size": self.key_chunk_size,
            "kernel_initializer": keras.initializers.serialize(self.kernel_initializer),
            "bias_initializer": keras.initializers.serialize(self.bias_initializer),
            "seed": self.seed,
        }
