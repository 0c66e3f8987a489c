"""TAP, H-TAP and ConvLSTM, and their parts: the grid codec, the convolutional recurrent cell,
the space-time block: shapes, matched sizes, causality, the key/value cache, ALiBi beyond the
training length, the residual step, and saving."""

import math

import keras
import numpy as np
import pytest
from keras import ops

from seqattn.models.frame_codec import FrameDecoder, FrameEncoder, grid_size
from seqattn.models.temporal_transformer import CausalTemporalTransformer, TemporalBlock, alibi_slopes
from seqattn.models.transitions import ConvRNNCell, SpaceTimeBlock, conv_rnn_params, space_time_block_params
from seqattn.models.video import (
    HTAP, TAP, ConvLSTMPredictor, _fold, _unfold, htap_transition_params, matched_units, residual_step,
    tap_transition_params,
)

pytestmark = pytest.mark.backend

SMALL = dict(context=3, latent_channels=4, codec_widths=(4, 4), token_patch=2)  # 16x16x4 latents, 8x8x16 tokens
TOKENS = 16  # token channels of SMALL: 2 * 2 * 4


def _clip(batch=2, length=6, seed=0):
    return np.random.default_rng(seed).random((batch, length, 64, 64, 1)).astype("float32")


def _np(x):
    return ops.convert_to_numpy(ops.stop_gradient(x))


def _small_models():
    htap = HTAP(d_model=8, num_layers=2, num_heads=2, ff_dim=16, name="htap", **SMALL)
    units = matched_units(htap_transition_params(TOKENS, 8, 2, 16), TOKENS, "gru")
    tap = TAP(rnn="gru", units=units, name="tap", **SMALL)
    convlstm = ConvLSTMPredictor(context=3, filters=(4,), name="convlstm")
    for model in (htap, tap, convlstm):
        model.build((None, 6, 64, 64, 1))
    return tap, htap, convlstm


def test_every_model_predicts_frames_2_to_T_in_unit_range():
    x = _clip()
    for model in _small_models():
        y = _np(model(x))
        assert y.shape == (2, 5, 64, 64, 1), model.name
        assert y.min() >= 0.0 and y.max() <= 1.0, model.name


def test_rollout_ignores_the_frames_after_the_context():
    x = _clip()
    changed = x.copy()
    changed[:, 3:] = 1.0 - changed[:, 3:]  # frames the model must not see
    for model in _small_models():
        np.testing.assert_array_equal(_np(model(x)), _np(model(changed)), err_msg=model.name)


def test_codec_maps_frames_to_a_bounded_grid_and_back():
    encoder, decoder = FrameEncoder(latent_channels=5, widths=(4, 6)), FrameDecoder(widths=(4, 6))
    z = _np(encoder(_clip(batch=3, length=1)[:, 0]))
    assert z.shape == (3, 16, 16, 5) and np.all(np.abs(z) < 1.0)
    frames = _np(decoder(z))
    assert frames.shape == (3, 64, 64, 1) and frames.min() >= 0.0 and frames.max() <= 1.0
    assert grid_size(64, (8, 8, 8)) == 8
    with pytest.raises(ValueError, match="divisible"):
        grid_size(60, (8, 8, 8))


@pytest.mark.parametrize("rnn", ["gru", "lstm"])
def test_tap_transition_matches_htap_within_five_percent(rnn):
    htap = HTAP(d_model=48, num_layers=2, num_heads=4, ff_dim=96, **{**SMALL, "latent_channels": 16})
    htap.build((None, 6, 64, 64, 1))
    tokens = 4 * 16
    assert htap.transition_params() == htap_transition_params(tokens, 48, 2, 96)
    units = matched_units(htap.transition_params(), tokens, rnn)
    tap = TAP(rnn=rnn, units=units, **{**SMALL, "latent_channels": 16})
    tap.build((None, 6, 64, 64, 1))
    assert tap.transition_params() == tap_transition_params(tokens, units, rnn)
    assert abs(tap.transition_params() / htap.transition_params() - 1) < 0.05
    # The codec is shared, so the totals differ only by the transitions.
    assert tap.codec_params() == htap.codec_params()


def test_parameter_formulas_by_hand():
    # ConvGRU, 2 input and 3 state channels, 3x3: gates 9 * (2 + 3) * 6 + 6, candidate 9 * 5 * 3 + 3.
    assert conv_rnn_params(2, 3, "gru") == (9 * 5 * 6 + 6) + (9 * 5 * 3 + 3) == 414
    assert conv_rnn_params(2, 3, "lstm") == 9 * 5 * 12 + 12 == 552
    assert tap_transition_params(2, 3, "gru") == 414 + 3 * 2 + 2
    assert matched_units(422, 2, "gru") == 3
    # Space-time block, d_model 4, ff_dim 8: two LayerNorms (scale, offset), q/k/v/out projections
    # with biases, the MLP; then a LayerNorm and the 3x3 spatial convolution with its bias.
    block_params = 2 * 2 * 4 + 4 * (4 * 4 + 4) + (4 * 8 + 8) + (8 * 4 + 4) + 2 * 4 + 9 * 4 * 4 + 4
    assert space_time_block_params(4, 8) == block_params
    # H-TAP on 2-channel tokens, one block: embedding 2 -> 4, the block, final LayerNorm, head 4 -> 2.
    assert htap_transition_params(2, 4, 1, 8) == (2 * 4 + 4) + block_params + 2 * 4 + (4 * 2 + 2)
    block = SpaceTimeBlock(d_model=4, num_heads=2, ff_dim=8)
    block.build((None, None, 3, 3, 4))
    assert block.count_params() == space_time_block_params(4, 8)
    cell = ConvRNNCell("lstm", 3)
    cell.build((None, 5, 5, 2))
    assert cell.count_params() == conv_rnn_params(2, 3, "lstm")


def test_residual_step_holds_still_at_zero_and_stays_in_range():
    z = np.array([-0.9, -0.2, 0.0, 0.5, 0.99], "float32")
    np.testing.assert_allclose(_np(residual_step(z, np.zeros_like(z))), z, atol=1e-6)
    big = _np(residual_step(z, np.full_like(z, 50.0)))
    assert np.all(big <= 1.0) and np.all(np.isfinite(big))
    # tanh(atanh(0.5) + 1) by hand
    np.testing.assert_allclose(_np(residual_step(np.float32([0.5]), np.float32([1.0]))),
                               [math.tanh(math.atanh(0.5) + 1.0)], rtol=1e-6)


def test_space_time_block_is_causal_in_time_and_mixes_space():
    block = SpaceTimeBlock(d_model=8, num_heads=2, ff_dim=16)
    x = np.random.default_rng(1).normal(size=(1, 6, 4, 4, 8)).astype("float32")
    y = _np(block(x))
    changed = x.copy()
    changed[:, 4:] += np.random.default_rng(2).normal(size=changed[:, 4:].shape)  # the future
    np.testing.assert_array_equal(_np(block(changed))[:, :4], y[:, :4])
    one_cell = x.copy()
    one_cell[:, 2, 0, 0] += np.random.default_rng(3).normal(size=8)  # one cell of frame 3 (LayerNorm
    # would cancel a constant shift)
    moved = _np(block(one_cell))
    assert not np.allclose(moved[:, 2, 1, 1], y[:, 2, 1, 1])  # its neighbour in space sees it
    np.testing.assert_array_equal(moved[:, 2, 3, 3], y[:, 2, 3, 3])  # two cells away: not in one block


def test_transformer_is_causal():
    transformer = CausalTemporalTransformer(d_model=16, num_layers=2, num_heads=2, ff_dim=32)
    x = np.random.default_rng(1).normal(size=(2, 12, 16)).astype("float32")
    y = _np(transformer(x))
    for t in (0, 5, 10):
        changed = x.copy()
        changed[:, t + 1 :] = np.random.default_rng(t).normal(size=changed[:, t + 1 :].shape)
        y_changed = _np(transformer(changed))
        np.testing.assert_array_equal(y[:, : t + 1], y_changed[:, : t + 1])
        assert not np.allclose(y[:, t + 1 :], y_changed[:, t + 1 :])


def test_key_value_cache_equals_full_recompute():
    transformer = CausalTemporalTransformer(d_model=16, num_layers=2, num_heads=2, ff_dim=32)
    x = np.random.default_rng(2).normal(size=(2, 50, 16)).astype("float32")
    full = _np(transformer(x))
    out, cache, _ = transformer.extend(x[:, :10])
    steps = [_np(out)]
    for t in range(10, 50):
        out, cache, _ = transformer.extend(x[:, t : t + 1], cache)
        steps.append(_np(out))
    np.testing.assert_allclose(np.concatenate(steps, axis=1), full, atol=1e-5)


def test_htap_rollout_with_cache_equals_recompute_past_training_length():
    _, htap, _ = _small_models()
    latents = ops.convert_to_tensor(np.random.default_rng(3).uniform(-0.9, 0.9, (2, 3, 16, 16, 4)).astype("float32"))
    cached, cached_weights = htap.rollout_latents(latents, 27, return_attention_scores=True)
    full, full_weights = htap.rollout_latents(latents, 27, use_cache=False, return_attention_scores=True)
    assert cached.shape == (2, 29, 16, 16, 4)
    # Step by step the two agree to 1e-5 (test above); fed back through 27 closed-loop steps, and
    # through atanh, which stretches codes near +-1, float32 rounding grows to ~3e-4.
    np.testing.assert_allclose(_np(cached), _np(full), rtol=1e-3, atol=1e-3)
    for a, b in zip(cached_weights, full_weights):
        assert a.shape == (2 * 8 * 8, 2, 29, 29)
        np.testing.assert_allclose(_np(a), _np(b), atol=1e-5)
        np.testing.assert_allclose(_np(a).sum(-1), 1.0, atol=1e-5)
        assert np.all(np.triu(_np(a)[0, 0], k=1) == 0.0)  # nothing from the future


def test_alibi_weights_match_the_reference_far_beyond_training_length():
    """The extra key dimension reproduces softmax(q.k / sqrt(hs) - m_h |i - j|) at any length."""
    block = TemporalBlock(d_model=8, num_heads=2, ff_dim=16)
    length = 150  # H-TAP trains on 20 frames and rolls out to 100
    x = np.random.default_rng(4).normal(size=(1, length, 8)).astype("float32")
    block.build(x.shape)
    _, _, weights = block.extend(x, return_attention_scores=True)
    h = _np(block.norm_attn(x))
    q = _np(block.attn.project_query(h))[0]  # (nh, T, hs)
    k = _np(block.attn.project_key_value(h, h)[0])[0]
    logits = np.einsum("hid,hjd->hij", q, k) / math.sqrt(q.shape[-1])
    distance = np.arange(length)[:, None] - np.arange(length)[None, :]
    logits = logits - np.asarray(alibi_slopes(2))[:, None, None] * distance
    logits = np.where(distance >= 0, logits, -np.inf)
    reference = np.exp(logits - logits.max(-1, keepdims=True))
    reference /= reference.sum(-1, keepdims=True)
    np.testing.assert_allclose(_np(weights)[0], reference, atol=1e-5)


def test_alibi_slopes_follow_press_et_al():
    assert alibi_slopes(4) == [0.25, 0.0625, 0.015625, 0.00390625]


def test_models_roll_out_past_their_training_length():
    x = _clip(batch=1, length=40)
    for model in _small_models():
        y = _np(model(x))
        assert y.shape == (1, 39, 64, 64, 1) and np.all(np.isfinite(y)), model.name


def test_fold_unfold_round_trip():
    x = _clip(batch=1, length=2)
    folded = _fold(ops.convert_to_tensor(x), 4)
    assert folded.shape == (1, 2, 16, 16, 16)
    np.testing.assert_array_equal(_np(folded)[0, 0, 1, 2], x[0, 0, 4:8, 8:12, 0].reshape(-1))
    np.testing.assert_array_equal(_np(_unfold(folded, 4, 1)), x)


def test_bad_clips_and_options_are_refused_with_the_sizes():
    tap = _small_models()[0]
    with pytest.raises(ValueError, match="32x32x1.*64x64x1"):
        tap(np.zeros((1, 6, 32, 32, 1), "float32"))
    with pytest.raises(ValueError, match="context=3"):
        tap(np.zeros((1, 3, 64, 64, 1), "float32"))
    with pytest.raises(ValueError, match="rnn"):
        TAP(rnn="transformer")
    with pytest.raises(ValueError, match="token_patch=3"):
        HTAP(token_patch=3)


def test_models_save_and_load_with_equal_outputs(tmp_path):
    x = _clip()
    for model in _small_models():
        path = tmp_path / f"{model.name}.keras"
        model.save(path)
        loaded = keras.models.load_model(path, safe_mode=True)
        assert type(loaded) is type(model) and loaded.get_config() == model.get_config()
        np.testing.assert_allclose(_np(loaded(x)), _np(model(x)), atol=1e-6, err_msg=model.name)
