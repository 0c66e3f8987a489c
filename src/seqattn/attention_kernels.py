"""The attention math of `seqattn.attention`, in keras.ops: masks, softmax and its two exact ways
to compute softmax(Q K^T / sqrt(d_k) + mask) V on (B, nh, T, hs) tensors.

- "naive" (`attention_weights`): materialise the (Tq, Tk) weight matrix. Needed to return or
  visualise weights.
- "memory-efficient" (`memory_efficient_attention`): compute (query chunk x key chunk) blocks of
  scores, a few (batch, head) pairs at a time, and merge each query's blocks by their
  log-sum-exp, keeping a running maximum, normaliser and weighted sum rescaled whenever the
  maximum grows (Milakov & Gimelshein, 2018; Rabe & Staats, 2021, "Self-attention does not need
  O(n^2) memory"; Dao et al., 2022, FlashAttention). Peak extra memory is a few blocks (2 MiB of
  scores each with the default chunk sizes) instead of (B, nh, Tq, Tk). Causal attention computes
  only the blocks at or below the diagonal, and masks only the diagonal ones.

Masks are boolean, True = may attend. A causal mask is aligned bottom-right: query i sits at
absolute position i + (Tk - Tq). Scores, softmax and the online-softmax statistics are computed in
float32 for float16/bfloat16/float32 inputs and in float64 for float64 inputs.
"""

import math

import keras
from keras import ops

# Stands in for -inf before the softmax: finite, so a fully masked row never produces inf - inf.
_MASKED_LOGIT = -1e30


def _as_rank4(mask):
    while len(mask.shape) < 4:
        mask = ops.expand_dims(mask, 0)
    return mask


def _causal_mask(q_start: int, q_len: int, k_start: int, k_len: int, offset: int):
    """(q_len, k_len) boolean block of the bottom-right-aligned causal mask."""
    q_pos = ops.arange(q_start, q_start + q_len)[:, None] + offset  # (q_len, 1)
    k_pos = ops.arange(k_start, k_start + k_len)[None, :]  # (1, k_len)
    return k_pos <= q_pos


def combine_masks(mask_a, mask_b):
    if mask_a is None:
        return mask_b
    if mask_b is None:
        return mask_a
    return ops.logical_and(mask_a, mask_b)


def softmax_dtype(x) -> str:
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
    q = ops.cast(query, softmax_dtype(query)) * (1.0 / math.sqrt(query.shape[-1]))
    k = ops.cast(key, softmax_dtype(query))
    # einsum, not matmul: Keras's torch matmul rounds float64 results down to float32.
    return ops.einsum("bhqd,bhkd->bhqk", q, k)  # (B, nh, Tq, Tk)


def attention_weights(query, key, mask=None, causal=False):
    """softmax(Q K^T / sqrt(d_k)) under `mask` and/or causality, float32 (float64 for float64
    inputs), (B, nh, Tq, Tk)."""
    t_q, t_k = query.shape[-2], key.shape[-2]
    allowed = None if mask is None else ops.cast(mask, "bool")
    # A single query sits at the last position and sees every key (a cached rollout step): no mask.
    if causal and not (t_q == 1 and t_k is not None):
        allowed = combine_masks(allowed, _causal_mask(0, t_q, 0, t_k, offset=t_k - t_q))
    # Causality alone leaves every query at least one key unless Tk < Tq.
    may_have_empty_rows = mask is not None or t_k is None or t_q is None or t_k < t_q
    return _masked_softmax(_scores(query, key), allowed, may_have_empty_rows)


# Scores in one block of the memory-efficient path: 2 MiB of float32, a core's L2 cache on the CPUs
# this was tuned on. Each block takes as many (batch, head) pairs as fit, so its matrix products
# keep their (query chunk x key chunk) shapes while its score, softmax and product passes stay in
# cache, which `benchmarks/bench_attention.py` found faster than blocks of every pair at once.
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
        allowed = combine_masks(allowed, causal_mask)
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


def memory_efficient_attention(query, key, value, mask, causal, q_chunk, k_chunk, dropout):
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
    dtype, out_dtype = softmax_dtype(query), value.dtype
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
