"""Tests of `seqattn.attention` and its math (`seqattn.attention_kernels`) against a float64 numpy
reference and Keras's own attention.

References: keras.ops.dot_product_attention (layout (B, T, nh, hs)) and
keras.layers.MultiHeadAttention, which our layers must match given the same inputs and weights.
"""

import math

import keras
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from keras import ops

from seqattn import attention_kernels
from seqattn.attention import MultiHeadAttention, ScaledDotProductAttention

pytestmark = pytest.mark.backend

PROPERTY_SETTINGS = settings(max_examples=25, deadline=None)


# ----------------------------------------------------------------------------- reference


def reference_attention(q, k, v, mask=None, causal=False):
    """softmax(q k^T / sqrt(d) + mask) v in float64 numpy; rows with no allowed key give zeros.

    q (B, nh, Tq, d), k (B, nh, Tk, d), v (B, nh, Tk, dv); mask broadcastable to (B, nh, Tq, Tk),
    True = may attend; causal aligned bottom-right (query i sits at position i + Tk - Tq).
    """
    q, k, v = (np.asarray(x, np.float64) for x in (q, k, v))
    t_q, t_k = q.shape[-2], k.shape[-2]
    scores = q @ np.swapaxes(k, -1, -2) / math.sqrt(q.shape[-1])  # (B, nh, Tq, Tk)
    allowed = np.ones(scores.shape, bool)
    if mask is not None:
        allowed &= np.broadcast_to(np.asarray(mask, bool), scores.shape)
    if causal:
        allowed &= np.arange(t_k)[None, :] <= np.arange(t_q)[:, None] + (t_k - t_q)
    scores = np.where(allowed, scores, -np.inf)
    row_max = scores.max(axis=-1, keepdims=True)
    row_max = np.where(np.isfinite(row_max), row_max, 0.0)
    exp = np.exp(scores - row_max) * allowed
    total = exp.sum(axis=-1, keepdims=True)
    weights = exp / np.where(total > 0, total, 1.0)
    return weights @ v, weights


def random_qkv(rng, b, nh, t_q, t_k, d, dv=None, scale=1.0):
    dv = d if dv is None else dv
    q = rng.normal(size=(b, nh, t_q, d)) * scale
    k = rng.normal(size=(b, nh, t_k, d)) * scale
    v = rng.normal(size=(b, nh, t_k, dv))
    return q.astype("float32"), k.astype("float32"), v.astype("float32")


def random_mask(rng, shape, keep_rows=True):
    """Random boolean mask; with keep_rows every (query) row keeps at least one key."""
    mask = rng.random(shape) < 0.6
    if keep_rows:
        index = rng.integers(0, shape[-1], size=shape[:-1])
        np.put_along_axis(mask, index[..., None], True, axis=-1)
    return mask


def to_numpy(x):
    return np.asarray(ops.convert_to_numpy(x))


def to_keras_layout(x):
    return np.swapaxes(x, 1, 2)  # (B, nh, T, hs) -> (B, T, nh, hs)


def _random_shapes(n: int, seed: int = 7) -> list[tuple[int, ...]]:
    """(B, nh, Tq, Tk, hs) drawn from a fixed seed, so every run checks the same cases."""
    rng = np.random.default_rng(seed)
    b, nh = rng.integers(1, 4, (2, n))
    t_q, t_k = rng.integers(1, 13, (2, n))
    hs = rng.integers(1, 9, n)
    return [tuple(int(x) for x in shape) for shape in zip(b, nh, t_q, t_k, hs)]


RANDOM_SHAPES = _random_shapes(6) + [(2, 3, 5, 9, 4), (1, 2, 9, 4, 8)]  # Tq < Tk and Tq > Tk for sure


# ----------------------------------------------------------------------------- vs keras.ops


@pytest.mark.filterwarnings("ignore:You are using a softmax over axis -1")  # Keras, when Tk == 1
@pytest.mark.parametrize("shape", RANDOM_SHAPES, ids=str)
@pytest.mark.parametrize("mask_kind", [None, "full", "keys"])
def test_matches_keras_dot_product_attention(shape, mask_kind):
    b, nh, t_q, t_k, d = shape
    rng = np.random.default_rng(sum(shape))
    q, k, v = random_qkv(rng, b, nh, t_q, t_k, d)
    mask = None
    if mask_kind == "full":
        mask = random_mask(rng, (b, nh, t_q, t_k))
    elif mask_kind == "keys":  # key padding, broadcast over heads and queries
        mask = random_mask(rng, (b, 1, 1, t_k))
    ours, weights = ScaledDotProductAttention()(q, k, v, attention_mask=mask, return_attention_scores=True)
    theirs = ops.dot_product_attention(
        to_keras_layout(q), to_keras_layout(k), to_keras_layout(v), mask=mask
    )  # (B, Tq, nh, hs)
    np.testing.assert_allclose(to_numpy(ours), to_keras_layout(to_numpy(theirs)), atol=1e-5)
    want_out, want_weights = reference_attention(q, k, v, mask)
    np.testing.assert_allclose(to_numpy(ours), want_out, atol=1e-5)
    np.testing.assert_allclose(to_numpy(weights), want_weights, atol=1e-6)


@pytest.mark.parametrize("shape", [(2, 2, 6, 6, 4), (1, 3, 11, 11, 8), (3, 1, 1, 1, 2)], ids=str)
def test_causal_matches_keras_dot_product_attention(shape):
    b, nh, t, _, d = shape
    q, k, v = random_qkv(np.random.default_rng(t), b, nh, t, t, d)
    ours = ScaledDotProductAttention(causal=True)(q, k, v)
    theirs = ops.dot_product_attention(
        to_keras_layout(q), to_keras_layout(k), to_keras_layout(v), is_causal=True
    )
    np.testing.assert_allclose(to_numpy(ours), to_keras_layout(to_numpy(theirs)), atol=1e-5)


def test_causal_argument_of_call_overrides_constructor():
    q, k, v = random_qkv(np.random.default_rng(0), 1, 1, 4, 4, 3)
    causal_layer, plain_layer = ScaledDotProductAttention(causal=True), ScaledDotProductAttention()
    np.testing.assert_allclose(
        to_numpy(plain_layer(q, k, v, causal=True)), reference_attention(q, k, v, causal=True)[0], atol=1e-6
    )
    np.testing.assert_allclose(
        to_numpy(causal_layer(q, k, v, causal=False)), reference_attention(q, k, v)[0], atol=1e-6
    )


def test_causal_mask_is_aligned_bottom_right():
    """Two new queries over a history of five keys: the last query sees all keys, the first all but one."""
    q, k, v = random_qkv(np.random.default_rng(1), 1, 1, 2, 5, 3)
    _, weights = ScaledDotProductAttention(causal=True)(q, k, v, return_attention_scores=True)
    weights = to_numpy(weights)[0, 0]  # (2, 5)
    assert weights[0, 4] == 0.0 and np.all(weights[0, :4] > 0)
    assert np.all(weights[1] > 0)


# ----------------------------------------------------------------------------- vs keras MHA


_MHA_CASES = [
    # name, B, Tq, Tk, E, Ek, Ev, nh, key_dim, value_dim
    ("self", 2, 6, 6, 8, 8, 8, 2, None, None),
    ("self-wide-heads", 2, 5, 5, 6, 6, 6, 3, 4, 5),
    ("cross", 3, 4, 7, 8, 5, 3, 4, 3, None),
    ("cross-longer-queries", 1, 9, 3, 4, 6, 6, 1, 4, 2),
]


@pytest.mark.parametrize(
    "case, masking",
    [
        pytest.param(case, masking, id=f"{case[0]}-{masking}")
        for case in _MHA_CASES
        for masking in ("none", "attention_mask", "causal", "both")
        # Keras aligns its causal mask top-left, ours bottom-right: they agree only when Tq == Tk.
        if masking in ("none", "attention_mask") or case[2] == case[3]
    ],
)
def test_multi_head_attention_matches_keras(case, masking):
    name, b, t_q, t_k, e, e_k, e_v, nh, key_dim, value_dim = case
    rng = np.random.default_rng(b * 100 + t_q * 10 + t_k)
    query = rng.normal(size=(b, t_q, e)).astype("float32")
    value = rng.normal(size=(b, t_k, e_v)).astype("float32")
    key = None if name.startswith("self") else rng.normal(size=(b, t_k, e_k)).astype("float32")
    if name.startswith("self"):
        value = query
    kwargs = {}
    if masking in ("attention_mask", "both"):
        kwargs["attention_mask"] = random_mask(rng, (b, t_q, t_k))
        if masking == "both":  # no fully masked row: Keras's fused and unfused paths disagree there
            kwargs["attention_mask"][:, np.arange(t_q), np.arange(t_q)] = True
    if masking in ("causal", "both"):
        kwargs["use_causal_mask"] = True
    theirs = keras.layers.MultiHeadAttention(nh, key_dim or e // nh, value_dim=value_dim)
    ours = MultiHeadAttention(nh, key_dim, value_dim=value_dim)
    their_out, their_weights = theirs(query, value, key, return_attention_scores=True, **kwargs)
    ours(query, value, key)  # build
    ours.set_weights(theirs.get_weights())
    our_out, our_weights = ours(query, value, key, return_attention_scores=True, **kwargs)
    np.testing.assert_allclose(to_numpy(our_out), to_numpy(their_out), atol=1e-5)
    np.testing.assert_allclose(to_numpy(our_weights), to_numpy(their_weights), atol=1e-5)
    # Without return_attention_scores Keras may take its fused path; the outputs still agree.
    np.testing.assert_allclose(
        to_numpy(ours(query, value, key, **kwargs)), to_numpy(theirs(query, value, key, **kwargs)), atol=1e-5
    )


def test_key_padding_mask_equals_attention_mask():
    rng = np.random.default_rng(3)
    x = rng.normal(size=(3, 5, 8)).astype("float32")
    padding = random_mask(rng, (3, 5))  # (B, Tk), at least one key each
    layer = MultiHeadAttention(2)
    by_padding = layer(x, x, key_padding_mask=padding)
    by_mask = layer(x, x, attention_mask=np.broadcast_to(padding[:, None, :], (3, 5, 5)))
    np.testing.assert_allclose(to_numpy(by_padding), to_numpy(by_mask), atol=1e-6)


def test_query_key_value_kernels_start_different():
    """One unseeded initializer reused for every kernel would give W_q == W_k == W_v."""
    layer = MultiHeadAttention(2)
    layer(np.zeros((1, 3, 8), "float32"), np.zeros((1, 3, 8), "float32"))
    query_kernel, key_kernel, value_kernel = (
        to_numpy(w) for w in (layer.query_kernel, layer.key_kernel, layer.value_kernel)
    )
    assert not np.allclose(query_kernel, key_kernel)
    assert not np.allclose(key_kernel, value_kernel)


@pytest.mark.parametrize("memory_efficient", [False, True])
def test_cached_rollout_step_equals_last_row_of_causal_self_attention(memory_efficient):
    """The decoder's cache: one new query over all cached keys = last position of the full pass."""
    rng = np.random.default_rng(4)
    x = rng.normal(size=(2, 7, 8)).astype("float32")
    layer = MultiHeadAttention(2, memory_efficient=memory_efficient, query_chunk_size=3, key_chunk_size=3)
    full = to_numpy(layer(x, x, use_causal_mask=True))  # (B, T, E)
    k, v = layer.project_key_value(x, x)  # (B, nh, T, hs)
    q_last = layer.project_query(x[:, -1:])  # (B, nh, 1, hs)
    step = to_numpy(layer.attend(q_last, k, v, causal=True))  # (B, 1, E)
    np.testing.assert_allclose(step[:, 0], full[:, -1], atol=1e-5)


# ----------------------------------------------------------------------------- memory-efficient


@pytest.mark.parametrize(
    "t_q, t_k, q_chunk, k_chunk",
    [(7, 7, 3, 2), (5, 13, 2, 4), (1, 9, 4, 4), (11, 6, 4, 5), (6, 6, 6, 6), (8, 10, 3, 7)],
    ids=str,
)
@pytest.mark.parametrize("causal", [False, True], ids=["full", "causal"])
@pytest.mark.parametrize("mask_shape", [None, "bhqk", "b1qk", "qk", "k", "b11k"])
def test_memory_efficient_equals_naive(t_q, t_k, q_chunk, k_chunk, causal, mask_shape):
    b, nh, d = 2, 2, 4
    rng = np.random.default_rng(t_q * 31 + t_k)
    q, k, v = random_qkv(rng, b, nh, t_q, t_k, d, dv=3)
    shapes = {
        "bhqk": (b, nh, t_q, t_k), "b1qk": (b, 1, t_q, t_k), "qk": (t_q, t_k), "k": (t_k,), "b11k": (b, 1, 1, t_k)
    }
    mask = None if mask_shape is None else random_mask(rng, shapes[mask_shape], keep_rows=False)
    naive = ScaledDotProductAttention(causal=causal)(q, k, v, attention_mask=mask)
    chunked = ScaledDotProductAttention(
        causal=causal, memory_efficient=True, query_chunk_size=q_chunk, key_chunk_size=k_chunk
    )(q, k, v, attention_mask=mask)
    want, _ = reference_attention(q, k, v, mask, causal)
    np.testing.assert_allclose(to_numpy(chunked), to_numpy(naive), atol=1e-5)
    np.testing.assert_allclose(to_numpy(chunked), want, atol=1e-5)


@pytest.mark.parametrize("pairs_per_block", [1, 2, 6])
@pytest.mark.parametrize("causal", [False, True], ids=["full", "causal"])
@pytest.mark.parametrize("mask_shape", [None, "bhqk", "b1qk", "1hqk", "b11k"])
def test_memory_efficient_blocks_of_a_few_batch_head_pairs_equal_naive(monkeypatch, pairs_per_block, causal,
                                                                       mask_shape):
    """Long sequences split B x nh into blocks of a few pairs (1: every pair alone; 2: heads in twos;
    6: all heads of two batch items); every split, mask broadcast and causal block gives the same result."""
    b, nh, t_q, t_k, q_chunk, k_chunk = 3, 3, 7, 9, 3, 4
    monkeypatch.setattr(attention_kernels, "_BLOCK_SCORES", pairs_per_block * q_chunk * k_chunk)
    rng = np.random.default_rng(pairs_per_block)
    q, k, v = random_qkv(rng, b, nh, t_q, t_k, 4, dv=5)
    shapes = {"bhqk": (b, nh, t_q, t_k), "b1qk": (b, 1, t_q, t_k), "1hqk": (1, nh, t_q, t_k), "b11k": (b, 1, 1, t_k)}
    mask = None if mask_shape is None else random_mask(rng, shapes[mask_shape], keep_rows=False)
    chunked = ScaledDotProductAttention(causal=causal, memory_efficient=True, query_chunk_size=q_chunk,
                                        key_chunk_size=k_chunk)(q, k, v, attention_mask=mask)
    np.testing.assert_allclose(to_numpy(chunked), reference_attention(q, k, v, mask, causal)[0], atol=1e-5)


@pytest.mark.parametrize("t_q, t_k, q_chunk, k_chunk", [(16, 16, 4, 8), (5, 13, 2, 4), (11, 6, 4, 5), (9, 9, 9, 3)],
                         ids=str)
def test_causal_blocks_below_the_diagonal_need_no_mask_and_skip_the_upper_half(t_q, t_k, q_chunk, k_chunk):
    """The unmasked key blocks of each query chunk are exactly the keys every one of its queries may
    see, each once and at most k_chunk at a time; what is left up to the chunk's last query's keys is
    its (q_chunk x q_chunk) diagonal block, and no key above it is computed."""
    offset = t_k - t_q
    for qs in range(0, t_q, q_chunk):
        q_len = min(q_chunk, t_q - qs)
        blocks = attention_kernels._key_blocks(qs, q_len, t_k, k_chunk, offset, causal=True)
        keys = [k for ks, k_len in blocks for k in range(ks, ks + k_len)]
        assert keys == list(range(max(0, qs + offset)))  # seen by the chunk's first query, hence by all
        assert all(0 < k_len <= k_chunk for _, k_len in blocks)
    assert attention_kernels._key_blocks(0, q_chunk, t_k, k_chunk, offset, causal=False)[-1] == (
        (t_k - 1) // k_chunk * k_chunk, t_k - (t_k - 1) // k_chunk * k_chunk)


def test_memory_efficient_multi_head_attention_equals_naive():
    rng = np.random.default_rng(5)
    query, value = rng.normal(size=(2, 9, 8)).astype("float32"), rng.normal(size=(2, 12, 8)).astype("float32")
    mask = random_mask(rng, (2, 9, 12))
    naive = MultiHeadAttention(2)
    chunked = MultiHeadAttention(2, memory_efficient=True, query_chunk_size=4, key_chunk_size=5)
    naive(query, value), chunked(query, value)
    chunked.set_weights(naive.get_weights())
    for kwargs in ({}, {"attention_mask": mask}, {"use_causal_mask": True}):
        np.testing.assert_allclose(
            to_numpy(chunked(query, value, **kwargs)), to_numpy(naive(query, value, **kwargs)), atol=1e-5
        )


# ----------------------------------------------------------------------------- gradients


def autodiff_gradients(loss_fn, arrays):
    """Gradients of the scalar loss_fn(*tensors) w.r.t. each array, by the backend's autodiff."""
    name = keras.backend.backend()
    if name == "torch":
        import torch

        tensors = [torch.tensor(a, requires_grad=True) for a in arrays]
        loss_fn(*tensors).backward()
        return [t.grad.detach().numpy() for t in tensors]
    if name == "tensorflow":
        import tensorflow as tf

        tensors = [tf.constant(a) for a in arrays]
        with tf.GradientTape() as tape:
            tape.watch(tensors)
            loss = loss_fn(*tensors)
        return [g.numpy() for g in tape.gradient(loss, tensors)]
    pytest.skip(f"no autodiff helper for backend {name}")


def finite_difference_gradients(loss_fn, arrays, eps=1e-6):
    grads = []
    for i, array in enumerate(arrays):
        grad = np.zeros_like(array)
        for index in np.ndindex(array.shape):
            shifted = [a.copy() for a in arrays]
            shifted[i][index] += eps
            up = float(to_numpy(loss_fn(*shifted)))
            shifted[i][index] -= 2 * eps
            down = float(to_numpy(loss_fn(*shifted)))
            grad[index] = (up - down) / (2 * eps)
        grads.append(grad)
    return grads


@pytest.mark.parametrize("memory_efficient", [False, True], ids=["naive", "memory_efficient"])
@pytest.mark.parametrize("causal", [False, True], ids=["masked", "causal"])
def test_gradients_match_finite_differences(memory_efficient, causal):
    rng = np.random.default_rng(6)
    t_q, t_k = 3, 4
    q, k, v = (x.astype("float64") for x in random_qkv(rng, 1, 1, t_q, t_k, 2))
    mask = np.array([[True, False, True, True], [False, False, False, False], [True, True, False, True]])
    readout = rng.normal(size=(1, 1, t_q, 2))  # makes the loss depend on every output entry
    layer = ScaledDotProductAttention(
        causal=causal, memory_efficient=memory_efficient, query_chunk_size=2, key_chunk_size=3, dtype="float64"
    )

    def loss_fn(q, k, v):
        return ops.sum(ops.multiply(layer(q, k, v, attention_mask=mask), readout))

    exact = autodiff_gradients(loss_fn, [q, k, v])
    numeric = finite_difference_gradients(loss_fn, [q, k, v])
    for name, got, want in zip("qkv", exact, numeric):
        assert np.all(np.isfinite(got)), name
        np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-8, err_msg=f"d loss / d {name}")
    assert np.all(exact[0][0, 0, 1] == 0.0)  # the fully masked query does not affect the loss


# ----------------------------------------------------------------------------- properties


@st.composite
def attention_case(draw, square=False):
    b, nh = draw(st.integers(1, 3)), draw(st.integers(1, 3))
    t_q = draw(st.integers(1, 9))
    t_k = t_q if square else draw(st.integers(t_q, 12))
    d = draw(st.integers(1, 6))
    seed = draw(st.integers(0, 2**31 - 1))
    scale = draw(st.sampled_from([0.1, 1.0, 5.0]))
    return random_qkv(np.random.default_rng(seed), b, nh, t_q, t_k, d, scale=scale), seed


@PROPERTY_SETTINGS
@given(case=attention_case(), masked=st.booleans())
def test_weight_rows_sum_to_one(case, masked):
    (q, k, v), seed = case
    mask = random_mask(np.random.default_rng(seed), (q.shape[0], 1, q.shape[2], k.shape[2])) if masked else None
    _, weights = ScaledDotProductAttention()(q, k, v, attention_mask=mask, return_attention_scores=True)
    weights = to_numpy(weights)
    assert np.all(weights >= 0)
    np.testing.assert_allclose(weights.sum(axis=-1), 1.0, atol=1e-5)
    if masked:
        assert np.all(weights[~np.broadcast_to(mask, weights.shape)] == 0.0)


@PROPERTY_SETTINGS
@given(case=attention_case())
def test_causal_weights_are_exactly_zero_above_the_diagonal(case):
    (q, k, v), _ = case
    t_q, t_k = q.shape[2], k.shape[2]
    _, weights = ScaledDotProductAttention(causal=True)(q, k, v, return_attention_scores=True)
    weights = to_numpy(weights)
    future = np.arange(t_k)[None, :] > np.arange(t_q)[:, None] + (t_k - t_q)  # (Tq, Tk)
    assert np.all(weights[..., future] == 0.0)
    np.testing.assert_allclose(weights.sum(axis=-1), 1.0, atol=1e-5)


_equivariance_layer = {}


@PROPERTY_SETTINGS
@given(
    t=st.integers(1, 10),
    seed=st.integers(0, 2**31 - 1),
    memory_efficient=st.booleans(),
)
def test_unmasked_self_attention_is_permutation_equivariant(t, seed, memory_efficient):
    rng = np.random.default_rng(seed)
    if memory_efficient not in _equivariance_layer:  # build once: weights are fixed, inputs vary
        _equivariance_layer[memory_efficient] = MultiHeadAttention(
            2, memory_efficient=memory_efficient, query_chunk_size=3, key_chunk_size=4
        )
    layer = _equivariance_layer[memory_efficient]
    x = rng.normal(size=(2, t, 8)).astype("float32")
    perm = rng.permutation(t)
    out = to_numpy(layer(x, x))
    out_of_permuted = to_numpy(layer(x[:, perm], x[:, perm]))
    np.testing.assert_allclose(out_of_permuted, out[:, perm], atol=1e-5)


# ----------------------------------------------------------------------------- edge cases


@pytest.mark.parametrize("memory_efficient", [False, True], ids=["naive", "memory_efficient"])
def test_fully_masked_row_gives_zeros_not_nan(memory_efficient):
    q, k, v = random_qkv(np.random.default_rng(8), 2, 2, 4, 5, 3)
    mask = np.ones((2, 2, 4, 5), bool)
    mask[0, 1, 2] = False  # one query of one head sees nothing
    mask[1] = False  # a whole batch element sees nothing
    layer = ScaledDotProductAttention(memory_efficient=memory_efficient, query_chunk_size=3, key_chunk_size=2)
    out = to_numpy(layer(q, k, v, attention_mask=mask))
    assert np.all(np.isfinite(out))
    assert np.all(out[0, 1, 2] == 0.0) and np.all(out[1] == 0.0)
    np.testing.assert_allclose(out, reference_attention(q, k, v, mask)[0], atol=1e-5)
    if not memory_efficient:
        _, weights = layer(q, k, v, attention_mask=mask, return_attention_scores=True)
        weights = to_numpy(weights)
        assert np.all(weights[0, 1, 2] == 0.0) and np.all(weights[1] == 0.0)


@pytest.mark.parametrize("memory_efficient", [False, True], ids=["naive", "memory_efficient"])
@pytest.mark.parametrize("sign", [1.0, -1.0])
def test_stable_at_logits_of_size_1e4(memory_efficient, sign):
    rng = np.random.default_rng(9)
    d, t = 4, 9
    q = rng.normal(size=(1, 2, t, d))
    k = rng.normal(size=(1, 2, t, d))
    q *= sign * 1e4 * math.sqrt(d) / np.abs(q @ np.swapaxes(k, -1, -2)).max()  # largest logit 1e4
    # Keys sorted by logit of query 0, so the online softmax's running maximum grows chunk by chunk.
    k = k[:, :, np.argsort((q[0, 0, 0] @ k[0, 0].T))]
    v = rng.normal(size=(1, 2, t, 3))
    q, k, v = (x.astype("float32") for x in (q, k, v))
    mask = np.tril(np.ones((t, t), bool)) | np.eye(t, k=3, dtype=bool)
    layer = ScaledDotProductAttention(memory_efficient=memory_efficient, query_chunk_size=4, key_chunk_size=2)
    for kwargs in ({}, {"attention_mask": mask}):
        out = to_numpy(layer(q, k, v, **kwargs))
        assert np.all(np.isfinite(out))
        want, _ = reference_attention(q, k, v, kwargs.get("attention_mask"))
        np.testing.assert_allclose(out, want, atol=1e-4)


@pytest.mark.parametrize("dtype, atol", [("float16", 2e-2), ("bfloat16", 6e-2)])
@pytest.mark.parametrize("memory_efficient", [False, True], ids=["naive", "memory_efficient"])
def test_half_precision_inputs_stay_finite_and_close_to_float32(dtype, atol, memory_efficient):
    rng = np.random.default_rng(10)
    q, k, v = random_qkv(rng, 2, 2, 6, 8, 16)
    mask = random_mask(rng, (2, 1, 6, 8))
    kwargs = dict(memory_efficient=memory_efficient, query_chunk_size=4, key_chunk_size=3)
    want = to_numpy(ScaledDotProductAttention(**kwargs)(q, k, v, attention_mask=mask))
    layer = ScaledDotProductAttention(dtype=dtype, **kwargs)
    out = layer(q, k, v, attention_mask=mask)
    assert keras.backend.standardize_dtype(out.dtype) == dtype
    out = to_numpy(ops.cast(out, "float32"))
    assert np.all(np.isfinite(out))
    np.testing.assert_allclose(out, want, atol=atol)
    # Logits of 80 * 80 * 16 / 4 = 25600 per pair are fine in float16, but the dot product before
    # scaling (102400) is not: it must be taken in float32.
    big = 80.0 * np.ones((1, 1, 3, 16), "float32")
    out = to_numpy(ops.cast(layer(big, big, v[:1, :1, :3]), "float32"))
    assert np.all(np.isfinite(out))
    if not memory_efficient:
        _, weights = layer(q, k, v, attention_mask=mask, return_attention_scores=True)
        assert keras.backend.standardize_dtype(weights.dtype) == "float32"
        np.testing.assert_allclose(to_numpy(weights).sum(axis=-1), 1.0, atol=1e-5)


@pytest.mark.parametrize("policy", ["mixed_float16", "mixed_bfloat16"])
def test_multi_head_attention_under_mixed_precision(policy):
    rng = np.random.default_rng(11)
    x = rng.normal(size=(2, 5, 8)).astype("float32")
    reference, layer = MultiHeadAttention(2), MultiHeadAttention(2, dtype=policy)
    reference(x, x), layer(x, x)
    layer.set_weights(reference.get_weights())
    out, weights = layer(x, x, use_causal_mask=True, return_attention_scores=True)
    assert keras.backend.standardize_dtype(weights.dtype) == "float32"
    out = to_numpy(ops.cast(out, "float32"))
    np.testing.assert_allclose(out, to_numpy(reference(x, x, use_causal_mask=True)), atol=5e-2)


@pytest.mark.parametrize("memory_efficient", [False, True], ids=["naive", "memory_efficient"])
def test_dropout_only_when_training(memory_efficient):
    """With one-hot values (v = identity) the output rows are the dropped-out weights themselves."""
    rng = np.random.default_rng(12)
    t = 6
    q, k, _ = random_qkv(rng, 2, 2, t, t, 4)
    v = np.broadcast_to(np.eye(t, dtype="float32"), (2, 2, t, t)).copy()
    layer = ScaledDotProductAttention(dropout=0.5, seed=3, memory_efficient=memory_efficient, key_chunk_size=4)
    weights = reference_attention(q, k, v)[1]
    inference = [to_numpy(layer(q, k, v, training=False)) for _ in range(2)]
    np.testing.assert_array_equal(inference[0], inference[1])
    np.testing.assert_allclose(inference[0], weights, atol=1e-5)
    dropped = to_numpy(layer(q, k, v, training=True))
    zeroed = dropped == 0.0
    assert 0.2 < zeroed.mean() < 0.8  # rate 0.5 over 144 weights, all of them > 0
    np.testing.assert_allclose(dropped[~zeroed], 2.0 * weights[~zeroed], rtol=1e-4)  # kept / (1 - rate)


def test_causal_memory_efficient_dropout_drops_only_weights_below_the_diagonal():
    """Dropout in the batched diagonal blocks and the blocks below them acts on the final weights:
    kept ones scaled by 1 / (1 - rate), the upper triangle still exactly 0."""
    rng = np.random.default_rng(14)
    t = 12
    q, k, _ = random_qkv(rng, 2, 2, t, t, 4)
    v = np.broadcast_to(np.eye(t, dtype="float32"), (2, 2, t, t)).copy()  # output rows = weights
    layer = ScaledDotProductAttention(causal=True, dropout=0.5, seed=5, memory_efficient=True, query_chunk_size=3,
                                      key_chunk_size=4)
    weights = reference_attention(q, k, v, causal=True)[1]
    dropped = to_numpy(layer(q, k, v, training=True))
    below = np.tril(np.ones((t, t), bool))
    kept = (dropped != 0.0) & below
    assert np.all(dropped[..., ~below] == 0.0)
    chunk = np.arange(t) // 3
    on_diagonal_blocks = below & (chunk[:, None] == chunk[None, :])
    for region in (on_diagonal_blocks, below & ~on_diagonal_blocks):  # 96 and 216 weights, all > 0
        assert 0.2 < kept[..., region].mean() < 0.8  # rate 0.5
    np.testing.assert_allclose(dropped[kept], 2.0 * weights[kept], rtol=1e-4)


def test_returned_weights_are_not_dropped_out():
    q, k, v = random_qkv(np.random.default_rng(13), 1, 2, 5, 5, 4)
    layer = ScaledDotProductAttention(dropout=0.5, seed=1)
    _, weights = layer(q, k, v, return_attention_scores=True, training=True)
    np.testing.assert_allclose(to_numpy(weights), reference_attention(q, k, v)[1], atol=1e-6)


# ----------------------------------------------------------------------------- saving


@pytest.mark.parametrize("memory_efficient", [False, True], ids=["naive", "memory_efficient"])
def test_keras_file_round_trip(tmp_path, memory_efficient):
    query = keras.Input((7, 8), name="query")
    context = keras.Input((5, 6), name="context")
    x = MultiHeadAttention(2, memory_efficient=memory_efficient, query_chunk_size=3, key_chunk_size=2)(
        query, query, use_causal_mask=True
    )
    x = MultiHeadAttention(3, key_dim=4, value_dim=2, memory_efficient=memory_efficient, key_chunk_size=2)(x, context)
    outputs = keras.layers.Dense(1)(x)
    model = keras.Model([query, context], outputs)
    rng = np.random.default_rng(14)
    inputs = [rng.normal(size=(3, 7, 8)).astype("float32"), rng.normal(size=(3, 5, 6)).astype("float32")]
    before = model.predict(inputs, verbose=0)
    path = tmp_path / "model.keras"
    model.save(path)
    loaded = keras.saving.load_model(path, safe_mode=True)
    layers = [layer for layer in loaded.layers if isinstance(layer, MultiHeadAttention)]
    assert len(layers) == 2 and all(layer.memory_efficient == memory_efficient for layer in layers)
    np.testing.assert_array_equal(loaded.predict(inputs, verbose=0), before)


def test_functional_model_returns_attention_weights(tmp_path):
    query, context = keras.Input((5, 8)), keras.Input((7, 6))
    layer = MultiHeadAttention(2)
    out, weights = layer(query, context, return_attention_scores=True)
    assert tuple(weights.shape) == (None, 2, 5, 7)
    model = keras.Model([query, context], [out, weights])
    rng = np.random.default_rng(15)
    inputs = [rng.normal(size=(3, 5, 8)).astype("float32"), rng.normal(size=(3, 7, 6)).astype("float32")]
    got_out, got_weights = model.predict(inputs, verbose=0)
    want_out, want_weights = layer(*inputs, return_attention_scores=True)
    np.testing.assert_allclose(got_out, to_numpy(want_out), atol=1e-6)
    np.testing.assert_allclose(got_weights, to_numpy(want_weights), atol=1e-6)
    model.save(tmp_path / "weights.keras")
    loaded = keras.saving.load_model(tmp_path / "weights.keras", safe_mode=True)
    np.testing.assert_array_equal(loaded.predict(inputs, verbose=0)[1], got_weights)


def test_layer_configs_round_trip():
    layer = ScaledDotProductAttention(
        causal=True, dropout=0.1, memory_efficient=True, query_chunk_size=5, key_chunk_size=7, seed=2
    )
    assert ScaledDotProductAttention.from_config(layer.get_config()).get_config() == layer.get_config()
    mha = MultiHeadAttention(4, key_dim=3, value_dim=5, causal=True, output_dim=6, use_bias=False)
    assert MultiHeadAttention.from_config(mha.get_config()).get_config() == mha.get_config()


# ----------------------------------------------------------------------------- bad input


def test_bad_input_raises_value_error_naming_argument_and_shapes():
    sdpa = ScaledDotProductAttention()
    q = np.zeros((2, 3, 4, 5), "float32")
    kv = np.zeros((2, 3, 6, 5), "float32")
    with pytest.raises(ValueError, match=r"query must have rank 4.*\(3, 4, 5\)"):
        sdpa(q[0], kv, kv)
    with pytest.raises(ValueError, match=r"query and key depths differ: query \(2, 3, 4, 5\), key \(2, 3, 6, 7\)"):
        sdpa(q, np.zeros((2, 3, 6, 7), "float32"), kv)
    with pytest.raises(ValueError, match=r"key and value lengths differ: key \(2, 3, 6, 5\), value \(2, 3, 8, 5\)"):
        sdpa(q, kv, np.zeros((2, 3, 8, 5), "float32"))
    with pytest.raises(ValueError, match=r"mask of shape \(2, 1, 4, 5\) does not broadcast .* \(2, 3, 4, 6\)"):
        sdpa(q, kv, kv, attention_mask=np.ones((2, 1, 4, 5), bool))
    with pytest.raises(ValueError, match=r"mask must have rank <= 4; got shape \(1, 2, 3, 4, 6\)"):
        sdpa(q, kv, kv, attention_mask=np.ones((1, 2, 3, 4, 6), bool))
    with pytest.raises(ValueError, match="return_attention_scores=True needs memory_efficient=False"):
        ScaledDotProductAttention(memory_efficient=True)(q, kv, kv, return_attention_scores=True)

    x = np.zeros((2, 4, 9), "float32")
    with pytest.raises(ValueError, match=r"embedding dim 9 is not divisible by num_heads=2"):
        MultiHeadAttention(2)(x, x)
    mha = MultiHeadAttention(3)
    with pytest.raises(ValueError, match=r"query must have rank 3.*\(4, 9\)"):
        mha(x[0], x)
    with pytest.raises(ValueError, match=r"key and value lengths differ: key \(2, 5, 9\), value \(2, 4, 9\)"):
        mha(x, x, key=np.zeros((2, 5, 9), "float32"))
    with pytest.raises(ValueError, match=r"attention_mask must have shape \(batch, queries, keys\); got \(4, 4\)"):
        mha(x, x, attention_mask=np.ones((4, 4), bool))
    with pytest.raises(ValueError, match=r"mask of shape \(2, 1, 4, 3\) does not broadcast"):
        mha(x, x, attention_mask=np.ones((2, 4, 3), bool))


def test_bad_constructor_arguments_raise_value_error():
    with pytest.raises(ValueError, match=r"dropout must be in \[0, 1\); got 1.0"):
        ScaledDotProductAttention(dropout=1.0)
    with pytest.raises(ValueError, match="key_chunk_size must be a positive integer; got 0"):
        ScaledDotProductAttention(key_chunk_size=0)
    with pytest.raises(ValueError, match="num_heads must be a positive integer; got 0"):
        MultiHeadAttention(0)
    with pytest.raises(ValueError, match="key_dim must be a positive integer or None; got -1"):
        MultiHeadAttention(2, key_dim=-1)
