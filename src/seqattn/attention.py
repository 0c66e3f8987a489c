"""Scaled dot-product attention and multi-head attention, written from scratch with keras.ops.

    Attention(Q, K, V) = softmax(Q K^T / sqrt(d_k) + mask) V        (Vaswani et al., 2017, eq. 1)

Two exact ways to compute it:
- "naive": materialise the (Tq, Tk) weight matrix. Needed to return or visualise weights.
- "memory-efficient": stream over key chunks with an online softmax, keeping per query a running
  maximum m, normaliser l and weighted sum acc, rescaled whenever m grows (Milakov & Gimelshein,
  2018; Rabe & Staats, 2021, "Self-attention does not need O(n^2) memory"; Dao et al., 2022,
  FlashAttention). Peak extra memory is one (query chunk x key chunk) block instead of (Tq x Tk).

Layout follows nanoGPT: heads first, (B, nh, T, hs). Masks (`attention_mask`) are boolean, True =
may attend (the Keras convention), broadcastable to (B, nh, Tq, Tk). A causal mask is aligned bottom-right: query
i sits at absolute position i + (Tk - Tq), so a query for the newest step of a rollout attends to
the whole cached history. A query with no allowed key gets zero weights and a zero output.

Scores, softmax and the online-softmax statistics are computed in float32 for float16/bfloat16/
float32 inputs (low-precision logits overflow or lose the small weights) and in float64 for float64
inputs; the weighted sum of values is done in the value dtype.
"""

import math

import keras
from keras import ops

# Stands in for -inf before the softmax: finite, so a fully masked row never produces inf - inf.
_MASKED_LOGIT = -1e30


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


# ----------------------------------------------------------------------------- the math


def _as_rank4(mask):
    while len(mask.shape) < 4:
        mask = ops.expand_dims(mask, 0)
    return mask


def _causal_mask(q_start: int, q_len: int, k_start: int, k_len: int, offset: int):
    """(q_len, k_len) boolean block of the bottom-right-aligned causal mask."""
    q_pos = ops.arange(q_start, q_start + q_len)[:, None] + offset  # (q_len, 1)
    k_pos = ops.arange(k_start, k_start + k_len)[None, :]  # (1, k_len)
    return k_pos <= q_pos


def _combine(mask_a, mask_b):
    if mask_a is None:
        return mask_b
    if mask_b is None:
        return mask_a
    return ops.logical_and(mask_a, mask_b)


def _softmax_dtype(x) -> str:
    """float32 unless the input is float64, which must not be rounded down."""
    return "float64" if keras.backend.standardize_dtype(x.dtype) == "float64" else "float32"


def _masked_softmax(scores, allowed, may_have_empty_rows=True):
    """Softmax over the last axis in the scores' dtype; rows with no allowed key become all zeros.

    A masked score becomes _MASKED_LOGIT, whose exp underflows to exactly 0 next to any allowed
    score, so partly masked rows need no second pass. A row with no allowed key would come out
    uniform; it is zeroed from the mask's own (small, broadcast) shape.
    """
    # Written out rather than ops.softmax, which warns on every single-key row (Tk == 1 is the
    # first step of a cached rollout).
    if allowed is not None:
        scores = ops.where(allowed, scores, _MASKED_LOGIT)
    exp = ops.exp(scores - ops.max(scores, axis=-1, keepdims=True))
    weights = exp / ops.sum(exp, axis=-1, keepdims=True)  # the row maximum contributes 1: no 0/0
    if allowed is not None and may_have_empty_rows:
        weights = weights * ops.cast(ops.any(allowed, axis=-1, keepdims=True), weights.dtype)
    return weights


def _scores(query, key):
    # Scaling q (T x d values) instead of the scores (Tq x Tk values) saves a pass over the big matrix.
    q = ops.cast(query, _softmax_dtype(query)) * (1.0 / math.sqrt(query.shape[-1]))
    k = ops.cast(key, _softmax_dtype(query))
    # einsum, not matmul: Keras's torch matmul rounds float64 results down to float32.
    return ops.einsum("bhqd,bhkd->bhqk", q, k)  # (B, nh, Tq, Tk)


def attention_weights(query, key, mask=None, causal=False):
    """softmax(Q K^T / sqrt(d_k)) under `mask` and/or causality, float32 (float64 for float64
    inputs), (B, nh, Tq, Tk)."""
    t_q, t_k = query.shape[-2], key.shape[-2]
    allowed = None if mask is None else ops.cast(mask, "bool")
    if causal:
        allowed = _combine(allowed, _causal_mask(0, t_q, 0, t_k, offset=t_k - t_q))
    # Causality alone leaves every query at least one key unless Tk < Tq.
    may_have_empty_rows = mask is not None or t_k is None or t_q is None or t_k < t_q
    return _masked_softmax(_scores(query, key), allowed, may_have_empty_rows)


def _memory_efficient_attention(query, key, value, mask, causal, q_chunk, k_chunk, dropout):
    """Exact attention by online softmax over key chunks, one query chunk at a time."""
    t_q, t_k = query.shape[-2], key.shape[-2]
    if t_q is None or t_k is None:
        raise ValueError("memory-efficient attention needs static sequence lengths")
    offset = t_k - t_q
    dtype = _softmax_dtype(query)
    mask = None if mask is None else _as_rank4(ops.cast(mask, "bool"))
    outputs = []
    for qs in range(0, t_q, q_chunk):
        q_len = min(q_chunk, t_q - qs)
        q = query[:, :, qs : qs + q_len]  # (B, nh, qc, hs)
        running_max = None  # (B, nh, qc, 1)
        normaliser = None  # (B, nh, qc, 1)
        acc = None  # (B, nh, qc, hv) in `dtype`
        for ks in range(0, t_k, k_chunk):
            if causal and ks > qs + q_len - 1 + offset:
                break  # this key chunk and all later ones lie above the diagonal
            k_len = min(k_chunk, t_k - ks)
            scores = _scores(q, key[:, :, ks : ks + k_len])  # (B, nh, qc, kc)
            allowed = None
            if mask is not None:
                rows = mask if mask.shape[-2] == 1 else mask[:, :, qs : qs + q_len]
                allowed = rows if rows.shape[-1] == 1 else rows[:, :, :, ks : ks + k_len]
            if causal and ks + k_len - 1 > qs + offset:  # block touches the diagonal
                allowed = _combine(allowed, _causal_mask(qs, q_len, ks, k_len, offset))
            if allowed is not None:
                scores = ops.where(allowed, scores, _MASKED_LOGIT)
            block_max = ops.max(scores, axis=-1, keepdims=True)
            new_max = block_max if running_max is None else ops.maximum(running_max, block_max)
            # exp(_MASKED_LOGIT - max) is exactly 0 once a row has seen an allowed key; before
            # that the row's sums are junk, wiped by rescale = 0 when an allowed key arrives, or
            # zeroed at the end if none ever does.
            probs = ops.exp(scores - new_max)  # (B, nh, qc, kc), unnormalised
            block_sum = ops.sum(probs, axis=-1, keepdims=True)
            # Dropout acts on the numerator only, as it would on normalised weights.
            probs = dropout(probs)
            values = ops.cast(value[:, :, ks : ks + k_len], dtype)
            block_acc = ops.einsum("bhqk,bhkd->bhqd", probs, values)  # (B, nh, qc, hv)
            if running_max is None:
                normaliser, acc = block_sum, block_acc
            else:
                rescale = ops.exp(running_max - new_max)  # earlier blocks were scaled by old max
                normaliser = normaliser * rescale + block_sum
                acc = acc * rescale + block_acc
            running_max = new_max
        if acc is None:  # causal with no key at all for this chunk (Tk < Tq)
            outputs.append(ops.zeros((*ops.shape(q)[:3], value.shape[-1]), dtype))
            continue
        seen_allowed_key = running_max > _MASKED_LOGIT / 2  # (B, nh, qc, 1)
        outputs.append(ops.where(seen_allowed_key, acc / normaliser, 0.0))
    out = outputs[0] if len(outputs) == 1 else ops.concatenate(outputs, axis=2)
    return ops.cast(out, value.dtype)  # (B, nh, Tq, hv)


# ----------------------------------------------------------------------------- layers


@keras.saving.register_keras_serializable(package="seqattn")
class ScaledDotProductAttention(keras.layers.Layer):
    """softmax(Q K^T / sqrt(d_k) + mask) V on (B, nh, T, hs) tensors, no learned weights.

    Args:
        causal: let query i attend only to keys at positions <= i (aligned bottom-right).
        dropout: rate of dropout on the attention weights, applied only when training.
        memory_efficient: compute by online softmax over chunks; weights cannot be returned.
        query_chunk_size, key_chunk_size: block sizes of the memory-efficient path; the
            defaults were the fastest in `benchmarks/bench_attention.py --tune` on a 2-core CPU.
        seed: seed of the dropout noise.
    """

    def __init__(
        self,
        causal: bool = False,
        dropout: float = 0.0,
        memory_efficient: bool = False,
        query_chunk_size: int = 256,
        key_chunk_size: int = 512,
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
            return _memory_efficient_attention(
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
        return out, keras.KerasTensor(weights_shape, dtype=_softmax_dtype(query))

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

    The call signature and weight layout match `keras.layers.MultiHeadAttention` (kernels
    (E, nh, hs) for query/key/value and (nh, hv, E) for the output), so weights copy across
    with `set_weights`. Extra: `key_padding_mask` (B, Tk) and the memory-efficient path.

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
        query_chunk_size: int = 256,
        key_chunk_size: int = 512,
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
            mask = _combine(mask, padding)
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
        return out, keras.KerasTensor(weights_shape, dtype=_softmax_dtype(query))

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
