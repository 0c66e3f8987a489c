"""Scaled dot-product attention and multi-head attention, written from scratch with keras.ops.

    Attention(Q, K, V) = softmax(Q K^T / sqrt(d_k) + mask) V        (Vaswani et al., 2017, eq. 1)

Two exact ways to compute it:
- "naive": materialise the (Tq, Tk) weight matrix. Needed to return or visualise weights.
- "memory-efficient": compute (query chunk x key chunk) blocks of scores, a few (batch, head)
  pairs at a time, and merge each query's blocks by their log-sum-exp, keeping a running maximum,
  normaliser and weighted sum rescaled whenever the maximum grows (Milakov & Gimelshein, 2018; Rabe
  & Staats, 2021, "Self-attention does not need O(n^2) memory"; Dao et al., 2022, FlashAttention).
  Peak extra memory is a few blocks (2 MiB of scores each with the default chunk sizes) instead of
  (B, nh, Tq, Tk). Causal attention computes only the blocks at or below the diagonal, and masks
  only the diagonal ones.

Layout follows nanoGPT: heads first, (B, nh, T, hs). Masks (`attention_mask`) are boolean, True =
may attend (the Keras convention), broadcastable to (B, nh, Tq, Tk). A causal mask is aligned bottom-right: query
i sits at absolute position i + (Tk - Tq), so a query for the newest step of a rollout attends to
the whole cached history. A query with no allowed key gets zero weights and a zero output.

Scores, softmax and the online-softmax statistics are computed in float32 for float16/bfloat16/
float32 inputs (low-precision logits overflow or lose the small weights) and in float64 for float64
inputs; the naive path's weighted sum of values is done in the value dtype, the memory-efficient
path's in the softmax dtype.
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
    if allowed is not None:
        scores = ops.where(allowed, scores, _MASKED_LOGIT)
    # One fused pass; a single key has weight 1 (and ops.softmax warns on a length-1 axis: Tk == 1
    # is the first step of a cached rollout).
    weights = ops.softmax(scores, axis=-1) if scores.shape[-1] != 1 else ops.ones_like(scores)
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
    # A single query sits at the last position and sees every key (a cached rollout step): no mask.
    if causal and not (t_q == 1 and t_k is not None):
        allowed = _combine(allowed, _causal_mask(0, t_q, 0, t_k, offset=t_k - t_q))
    # Causality alone leaves every query at least one key unless Tk < Tq.
    may_have_empty_rows = mask is not None or t_k is None or t_q is None or t_k < t_q
    return _masked_softmax(_scores(query, key), allowed, may_have_empty_rows)


# Scores in one block of the memory-efficient path: 2 MiB of float32, a core's L2 cache on the CPUs
# this was tuned on. Each block takes as many (batch, head) pairs as fit, so its matrix products
# keep their (query chunk x key chunk) shapes while its score, softmax and product passes stay in
# cache: 1.3x faster than blocks of every pair at once (`benchmarks/bench_attention.py`).
_BLOCK_SCORES = 2**19


def _block_slices(batch, heads, q_chunk: int, k_chunk: int) -> tuple[list[slice], list[slice]]:
    """Batch slices and head slices whose (q_chunk x k_chunk) blocks hold about _BLOCK_SCORES
    scores, at least one (batch, head) pair each. An unknown (symbolic) batch or head count is not
    split."""
    pairs = max(1, _BLOCK_SCORES // (q_chunk * k_chunk))  # (batch, head) pairs per block
    per_head = None if heads is None else min(heads, pairs)
    per_batch = None if batch is None or heads is None else min(batch, max(1, pairs // per_head))
    batch_slices = [slice(None)] if per_batch is None else [slice(b, b + per_batch) for b in range(0, batch, per_batch)]
    head_slices = [slice(None)] if per_head is None else [slice(h, h + per_head) for h in range(0, heads, per_head)]
    return batch_slices, head_slices


def _key_blocks(q_start: int, q_len: int, t_k: int, k_chunk: int, offset: int, causal: bool) -> list[tuple]:
    """(key start, key length) of the unmasked key blocks of one query chunk.

    Causal and aligned bottom-right, query i sees keys <= i + offset: the keys before the chunk's
    first diagonal position q_start + offset are visible to every query of the chunk, so their
    blocks need no mask. The (q_len x q_len) block on the diagonal is left to the caller, and the
    keys after it are never computed.
    """
    end = min(t_k, q_start + offset) if causal else t_k
    return [(ks, min(k_chunk, end - ks)) for ks in range(0, max(end, 0), k_chunk)]


def _softmax_block(scores, allowed, values, dropout, need_lse: bool):
    """softmax(scores) @ values over the last key axis, and the rows' log-sum-exp if needed.

    scores (..., q, k), allowed broadcastable to it or None, values (..., k, hv) -> (..., q, hv)
    and (..., q, 1). The rows' lse is max(s) - log(max(p)): the largest score has weight
    exp(0) / sum(exp). A fully masked row gets lse ~ _MASKED_LOGIT.
    """
    if allowed is not None:
        scores = ops.where(allowed, scores, _MASKED_LOGIT)
    # One key has weight 1 (and ops.softmax warns on a length-1 axis).
    weights = ops.softmax(scores, axis=-1) if scores.shape[-1] > 1 else ops.ones_like(scores)
    # Dropout of a block's weights is dropout of the final ones: they differ by a factor per row.
    out = ops.einsum("...qk,...kd->...qd", dropout(weights), values)
    if not need_lse:
        return out, None
    return out, ops.max(scores, axis=-1, keepdims=True) - ops.log(ops.max(weights, axis=-1, keepdims=True))


def _merge(out_a, lse_a, out_b, lse_b):
    """Attention over the keys of two parts from each part's normalised output and lse.

    Weights are taken relative to the larger lse, so nothing overflows; a part whose row saw no
    allowed key (lse ~ _MASKED_LOGIT) gets weight exactly 0 next to one that did.
    """
    top = ops.maximum(lse_a, lse_b)
    weight_a, weight_b = ops.exp(lse_a - top), ops.exp(lse_b - top)
    total = weight_a + weight_b
    return (out_a * weight_a + out_b * weight_b) / total, top + ops.log(total)


def _attend_chunk(q, key, value, mask_rows, blocks, dropout, need_lse: bool):
    """Attention of one query chunk q (b, h, qc, hs) over key `blocks` [(start, length, causal mask
    or None)], merged block by block: (b, h, qc, hv) and the rows' lse (b, h, qc, 1) or None.

    `mask_rows` is the caller's mask for these queries, broadcastable to (b, h, qc, Tk).
    """
    out = lse = None
    for ks, k_len, causal_mask in blocks:
        scores = ops.einsum("bhqd,bhkd->bhqk", q, key[:, :, ks : ks + k_len])  # (b, h, qc, kc)
        allowed = None
        if mask_rows is not None:
            allowed = mask_rows if mask_rows.shape[-1] == 1 else mask_rows[:, :, :, ks : ks + k_len]
        allowed = _combine(allowed, causal_mask)
        block_out, block_lse = _softmax_block(scores, allowed, value[:, :, ks : ks + k_len], dropout,
                                              need_lse or len(blocks) > 1)
        out, lse = (block_out, block_lse) if out is None else _merge(out, lse, block_out, block_lse)
    return out, lse


def _diagonal_mask_rows(mask, starts, q_len, offset):
    """The caller's mask on the diagonal blocks of the query chunks at `starts`: (mb, mh, C, q|1, k|1)."""
    parts = []
    for qs in starts:
        rows = mask if mask.shape[-2] == 1 else mask[:, :, qs : qs + q_len]
        parts.append(rows if rows.shape[-1] == 1 else rows[:, :, :, qs + offset : qs + offset + q_len])
    return ops.stack(parts, axis=2)


def _attend_diagonal(q, key, value, mask, q_start, n_chunks, q_len, offset, triangle, dropout):
    """The diagonal blocks of `n_chunks` consecutive query chunks of length q_len from q_start
    (their diagonals at or after key 0), as one batch of (q_len x q_len) blocks: each chunk's
    queries against the q_len keys ending at its diagonal. (b, h, C q_len, hv) and lse (b, h, C q_len, 1).
    """
    rows = n_chunks * q_len
    keys = slice(q_start + offset, q_start + offset + rows)
    batched = lambda x: ops.reshape(x, (*ops.shape(x)[:2], n_chunks, q_len, x.shape[-1]))  # noqa: E731
    qd, kd, vd = batched(q[:, :, q_start : q_start + rows]), batched(key[:, :, keys]), batched(value[:, :, keys])
    scores = ops.einsum("bhcqd,bhckd->bhcqk", qd, kd)  # (b, h, C, q_len, q_len)
    allowed = triangle
    if mask is not None:
        starts = range(q_start, q_start + rows, q_len)
        allowed = ops.logical_and(_diagonal_mask_rows(mask, starts, q_len, offset), triangle)
    out, lse = _softmax_block(scores, allowed, vd, dropout, need_lse=True)  # (b, h, C, q_len, hv), (..., 1)
    unbatched = lambda x: ops.reshape(x, (*ops.shape(x)[:2], rows, x.shape[-1]))  # noqa: E731
    return unbatched(out), unbatched(lse)


def _concatenate(parts, axis):
    return parts[0] if len(parts) == 1 else ops.concatenate(parts, axis=axis)


def _memory_efficient_attention(query, key, value, mask, causal, q_chunk, k_chunk, dropout):
    """Exact attention over (query chunk x key chunk) blocks of a few (batch, head) pairs each.

    Each block takes one fused softmax and keeps its normalised output and its rows' log-sum-exp;
    a query's blocks are merged by their lse (Rabe & Staats' (2021) chunk summaries, kept
    normalised), which makes fewer passes over a block than exp, sum and rescaling written out,
    and none at all for a query chunk that fits one key block. Causal attention computes the
    blocks below the diagonal unmasked, and the diagonal blocks of all query chunks as one batch
    under one triangular mask.
    """
    t_q, t_k = query.shape[-2], key.shape[-2]
    if t_q is None or t_k is None:
        raise ValueError("memory-efficient attention needs static sequence lengths")
    offset = t_k - t_q
    dtype, out_dtype = _softmax_dtype(query), value.dtype
    # Scaled once, not per block: q (T x d values) is far smaller than the scores.
    query = ops.cast(query, dtype) * (1.0 / math.sqrt(query.shape[-1]))
    key, value = ops.cast(key, dtype), ops.cast(value, dtype)
    mask = None if mask is None else _as_rank4(ops.cast(mask, "bool"))
    # A row with no allowed key: masked out by the caller, or a query before every key (Tk < Tq).
    may_have_empty_rows = mask is not None or (causal and offset < 0)
    chunks = [(qs, min(q_chunk, t_q - qs)) for qs in range(0, t_q, q_chunk)]
    # Chunks whose diagonal block lies within the keys, batched by length, as many per batch as
    # one key block holds.
    diagonal_batches = []
    if causal:
        for q_len in sorted({q_len for _, q_len in chunks}):
            starts = [qs for qs, length in chunks if length == q_len and qs + offset >= 0]
            per_batch = max(1, min(k_chunk, t_k) // q_len)
            diagonal_batches += [(starts[i], len(starts[i : i + per_batch]), q_len)
                                 for i in range(0, len(starts), per_batch)]
    triangles = {q_len: _causal_mask(0, q_len, 0, q_len, offset=0) for _, _, q_len in diagonal_batches}

    def attend(batch_slice, head_slice):  # (b, h, Tq, hv) for one group of (batch, head) pairs
        q, k, v = (x[batch_slice, head_slice] for x in (query, key, value))
        group_mask = None
        if mask is not None:
            group_mask = mask[batch_slice if mask.shape[0] != 1 else slice(None),
                              head_slice if mask.shape[1] != 1 else slice(None)]
        diagonal = {}  # query start -> (out, lse) of its chunk's diagonal block
        for q_start, n_chunks, q_len in diagonal_batches:
            out, lse = _attend_diagonal(q, k, v, group_mask, q_start, n_chunks, q_len, offset, triangles[q_len],
                                        dropout)
            for i in range(n_chunks):
                diagonal[q_start + i * q_len] = (out[:, :, i * q_len : (i + 1) * q_len],
                                                 lse[:, :, i * q_len : (i + 1) * q_len])
        per_chunk = []
        for qs, q_len in chunks:
            blocks = [(ks, k_len, None) for ks, k_len in _key_blocks(qs, q_len, t_k, k_chunk, offset, causal)]
            if causal and qs not in diagonal and qs + offset + q_len > 0:
                # Tk < Tq: the diagonal starts before key 0; the keys it reaches, under the causal mask.
                blocks.append((0, qs + offset + q_len, _causal_mask(qs, q_len, 0, qs + offset + q_len, offset)))
            mask_rows = None
            if group_mask is not None:
                mask_rows = group_mask if group_mask.shape[-2] == 1 else group_mask[:, :, qs : qs + q_len]
            out, lse = (None, None)
            if blocks:
                out, lse = _attend_chunk(q[:, :, qs : qs + q_len], k, v, mask_rows, blocks, dropout,
                                         need_lse=qs in diagonal or may_have_empty_rows)
            if qs in diagonal:
                out, lse = diagonal[qs] if out is None else _merge(out, lse, *diagonal[qs])
            if out is None:  # causal, Tk < Tq: no key for this whole chunk
                out = ops.zeros((*ops.shape(q)[:2], q_len, value.shape[-1]), dtype)
            elif may_have_empty_rows:
                out = ops.where(lse > _MASKED_LOGIT / 2, out, 0.0)
            per_chunk.append(out)
        return _concatenate(per_chunk, axis=2)

    batch_slices, head_slices = _block_slices(query.shape[0], query.shape[1], min(q_chunk, t_q), min(k_chunk, t_k))
    out = _concatenate([_concatenate([attend(b, h) for h in head_slices], axis=1) for b in batch_slices], axis=0)
    return ops.cast(out, out_dtype)  # (B, nh, Tq, hv)


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
