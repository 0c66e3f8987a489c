"""TAP, H-TAP and ConvLSTM: shapes, matched sizes, causality, the key/value cache, ALiBi beyond
the training length, and saving."""

import math

import keras
import numpy as np
import pytest
from keras import ops

from seqattn.models.frame_codec import FrameDecoder, FrameEncoder
from seqattn.models.temporal_transformer import CausalTemporalTransformer, TemporalBlock, alibi_slopes
from seqattn.models.video import (
    HTAP, TAP, ConvLSTMPredictor, _fold, _unfold, matched_rnn_units, rnn_transition_params,
    transformer_transition_params,
)

pytestmark = pytest.mark.backend

SMALL = dict(context=3, latent_dim=16, filters=(4, 4, 4, 4))


def _clip(batch=2, length=6, seed=0):
    return np.random.default_rng(seed).random((batch, length, 64, 64, 1)).astype("float32")


def _np(x):
    return ops.convert_to_numpy(ops.stop_gradient(x))


def _small_models():
    htap = HTAP(d_model=16, num_layers=2, num_heads=2, ff_dim=32, name="htap", **SMALL)
    units = matched_rnn_units(transformer_transition_params(16, 16, 2, 32), 16, "gru")
    tap = TAP(rnn="gru", units=units, name="tap", **SMALL)
    convlstm = ConvLSTMPredictor(context=3, filters=(4,), name="convlstm")
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


@pytest.mark.parametrize("rnn", ["gru", "lstm"])
def test_tap_transition_matches_htap_within_ten_percent(rnn):
    latent, d, layers, ff = 128, 128, 2, 256
    htap = HTAP(latent_dim=latent, d_model=d, num_layers=layers, num_heads=4, ff_dim=ff)
    htap.build((None, 20, 64, 64, 1))
    assert htap.transition_params() == transformer_transition_params(latent, d, layers, ff) == 298_240
    units = matched_rnn_units(htap.transition_params(), latent, rnn)
    tap = TAP(rnn=rnn, units=units, latent_dim=latent)
    tap.build((None, 20, 64, 64, 1))
    assert tap.transition_params() == rnn_transition_params(latent, units, rnn)
    assert abs(tap.transition_params() / htap.transition_params() - 1) < 0.01
    # The codec is shared, so the totals differ only by the transitions.
    assert tap.count_params() - tap.transition_params() == htap.count_params() - htap.transition_params()
    assert abs(tap.count_params() / htap.count_params() - 1) < 0.10


def test_matched_units_by_hand():
    # GRU, D=2, U=3: 3 * (2*3 + 3*3 + 2*3) + 3*2 + 2 = 71; LSTM: 4 * (6 + 9 + 3) + 8 = 80.
    assert rnn_transition_params(2, 3, "gru") == 71
    assert rnn_transition_params(2, 3, "lstm") == 80
    assert matched_rnn_units(71, 2, "gru") == 3
    assert matched_rnn_units(80, 2, "lstm") == 3


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
    htap = HTAP(d_model=16, num_layers=2, num_heads=2, ff_dim=32, **SMALL)
    htap.build((None, 6, 64, 64, 1))
    latents = ops.convert_to_tensor(np.random.default_rng(3).normal(size=(2, 3, 16)).astype("float32"))
    cached, cached_weights = htap.rollout_latents(latents, 47, return_attention_scores=True)
    full, full_weights = htap.rollout_latents(latents, 47, use_cache=False, return_attention_scores=True)
    assert cached.shape == (2, 49, 16)
    # Step by step the two agree to 1e-5 (test above); fed back through 47 closed-loop steps of
    # an untrained model, float32 rounding grows a little.
    np.testing.assert_allclose(_np(cached), _np(full), rtol=1e-4, atol=1e-4)
    for a, b in zip(cached_weights, full_weights):
        np.testing.assert_allclose(_np(a), _np(b), atol=1e-5)
        rows = _np(a).sum(-1)
        np.testing.assert_allclose(rows, 1.0, atol=1e-5)
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


def test_bad_clips_are_refused_with_the_sizes():
    tap = _small_models()[0]
    with pytest.raises(ValueError, match="32x32x1.*64x64x1"):
        tap(np.zeros((1, 6, 32, 32, 1), "float32"))
    with pytest.raises(ValueError, match="context=3"):
        tap(np.zeros((1, 3, 64, 64, 1), "float32"))
    with pytest.raises(ValueError, match="rnn"):
        TAP(rnn="transformer")


def test_models_save_and_load_with_equal_outputs(tmp_path):
    x = _clip()
    for model in _small_models():
        # One eager training step, so the optimizer state is saved too (graph tracing of the
        # unrolled rollout would dominate the test's time on tensorflow).
        model.compile(optimizer="adam", loss="mse", run_eagerly=True)
        model.fit(x, x[:, 1:], epochs=1, batch_size=2, verbose=0)
        path = tmp_path / f"{model.name}.keras"
        model.save(path)
        loaded = keras.models.load_model(path, safe_mode=True)
        assert type(loaded) is type(model) and loaded.get_config() == model.get_config()
        np.testing.assert_allclose(_np(loaded(x)), _np(model(x)), atol=1e-6, err_msg=model.name)


# ----------------------------------------------------------------------------- skip features (SVG)


def _skip_models(skip_features: bool):
    units = matched_rnn_units(transformer_transition_params(16, 16, 2, 32), 16, "gru")
    tap = TAP(rnn="gru", units=units, name="tap", skip_features=skip_features, **SMALL)
    htap = HTAP(d_model=16, num_layers=2, num_heads=2, ff_dim=32, name="htap", skip_features=skip_features, **SMALL)
    return tap, htap


def test_encoder_returns_one_skip_map_per_level():
    encoder = FrameEncoder(latent_dim=16, filters=(4, 6, 8, 8), skip_features=True)
    latents, skips = encoder(np.zeros((3, 64, 64, 1), "float32"))
    assert latents.shape == (3, 16)
    expected = [(3, 32, 32, 4), (3, 16, 16, 6), (3, 8, 8, 8), (3, 4, 4, 8)]
    assert [tuple(s.shape) for s in skips] == expected
    assert encoder.compute_output_shape((3, 64, 64, 1)) == ((3, 16), expected)
    decoder = FrameDecoder(filters=(4, 6, 8, 8), skip_features=True)
    assert tuple(decoder(latents, skips).shape) == (3, 64, 64, 1)
    with pytest.raises(ValueError, match="skip_features=True"):
        decoder(latents)


@pytest.mark.parametrize("length", [4, 6])  # horizon 1 (nothing repeated) and 3
def test_skip_features_keep_the_output_shapes(length):
    x = _clip(length=length)
    for plain, skipped in zip(_skip_models(False), _skip_models(True)):
        y = _np(skipped(x))
        assert y.shape == _np(plain(x)).shape == (2, length - 1, 64, 64, 1), skipped.name
        assert y.min() >= 0.0 and y.max() <= 1.0, skipped.name


@pytest.mark.parametrize("skip_features", [False, True])
def test_skips_bring_the_last_observed_frame_past_a_fixed_latent(skip_features):
    """With the transition's output held fixed, only the skip path can carry frame 3 (the last of
    context=3) to the decoder: it must change predictions 3..5 (frames 4-6) and nothing before."""
    x = _clip()
    changed = x.copy()
    changed[:, 2] = 1.0 - changed[:, 2]
    fixed = ops.convert_to_tensor(np.random.default_rng(5).normal(size=(2, 5, 16)).astype("float32"))
    for model in _skip_models(skip_features):
        model.build(x.shape)
        model.rollout_latents = lambda latents, horizon, training=None: fixed  # (B, C + horizon - 1, D)
        y, y_changed = _np(model(x)), _np(model(changed))
        if not skip_features:
            np.testing.assert_array_equal(y, y_changed, err_msg=model.name)
            continue
        # frames 2 and 3 are predicted from frames 1 and 2, and decode with their maps
        np.testing.assert_array_equal(y[:, :2], y_changed[:, :2], err_msg=model.name)
        assert np.abs(y[:, 2:] - y_changed[:, 2:]).max(axis=(2, 3, 4)).min() > 1e-4, model.name


def test_skip_gradient_reaches_the_decoder_through_the_skip_channels():
    """The loss depends on the kernel rows that read the skip channels of every transposed conv."""
    x = _clip()
    for model in _skip_models(True):
        model.compile(optimizer=keras.optimizers.SGD(1.0), loss="mse", run_eagerly=True)
        model.build(x.shape)
        before = [_np(d.kernel) for d in model.decoder.deconvs]
        model.train_on_batch(x, x[:, 1:])
        for i, (deconv, old) in enumerate(zip(model.decoder.deconvs, before)):
            # Conv2DTranspose kernel: (k, k, out, in); the last input channels are the skip's
            skip_rows = slice(old.shape[-1] - model.filters[-1 - i], None)
            assert np.abs(_np(deconv.kernel)[..., skip_rows] - old[..., skip_rows]).max() > 0, (model.name, i)


def test_skips_off_keep_the_parameter_counts_and_on_stay_matched():
    # Counted at the default sizes before skip features existed (commit afa3964).
    before = {"tap": (682_890, 191_424, 192_257), "htap": (681_921, 191_424, 192_257)}
    # Skips widen the input of every transposed conv by the encoder's channels at its resolution.
    extra = 3 * 3 * (64 * 64 + 64 * 32 + 32 * 16 + 16 * 1)
    for skip_features in (False, True):
        htap = HTAP(latent_dim=128, d_model=128, num_layers=2, num_heads=4, ff_dim=256, skip_features=skip_features)
        units = matched_rnn_units(transformer_transition_params(128, 128, 2, 256), 128, "gru")
        tap = TAP(rnn="gru", units=units, latent_dim=128, skip_features=skip_features)
        for model, name in ((tap, "tap"), (htap, "htap")):
            model.build((None, 20, 64, 64, 1))
            total, encoder, decoder = before[name]
            added = extra if skip_features else 0
            assert (model.count_params(), model.encoder.count_params(), model.decoder.count_params()) == (
                total + added, encoder, decoder + added), (name, skip_features)
        assert abs(tap.count_params() / htap.count_params() - 1) < 0.10


def test_skip_models_save_and_load_with_identical_predictions(tmp_path):
    x = _clip()
    for model in _skip_models(True):
        model.compile(optimizer="adam", loss="mse", run_eagerly=True)
        model.fit(x, x[:, 1:], epochs=1, batch_size=2, verbose=0)
        path = tmp_path / f"{model.name}.keras"
        model.save(path)
        loaded = keras.models.load_model(path, safe_mode=True)
        assert loaded.skip_features and loaded.encoder.skip_features and loaded.decoder.skip_features
        assert type(loaded) is type(model) and loaded.get_config() == model.get_config()
        np.testing.assert_array_equal(_np(loaded(x)), _np(model(x)), err_msg=model.name)


def test_htap_with_skips_rolls_out_the_same_with_and_without_the_cache():
    htap = _skip_models(True)[1]
    x = _clip(length=3 + 20)
    htap.build(x.shape)
    cached = _np(htap(x))
    full_rollout = htap.rollout_latents
    htap.rollout_latents = lambda latents, horizon, training=None: full_rollout(
        latents, horizon, training=training, use_cache=False)
    recomputed = _np(htap(x))
    assert cached.shape == (2, 22, 64, 64, 1)
    np.testing.assert_allclose(cached, recomputed, atol=1e-5)
