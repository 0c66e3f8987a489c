"""Per-frame video metrics on hand-made frames: OpenSTL's summed MSE/MAE, PSNR and SSIM (against
scikit-image called as OpenSTL calls it), foreground F1, skill against blank frames, per-sequence values."""

import numpy as np
import pytest
from scipy.ndimage import gaussian_filter
from skimage.metrics import structural_similarity

from seqattn.errors import ConfigError
from seqattn.metrics import video
from seqattn.metrics.video import (
    FrameMetrics,
    foreground_f1,
    frame_metrics,
    mae,
    mean_over_frames,
    mse,
    psnr,
    sequence_metrics,
    skill,
    ssim,
    window_means,
)


def _hand_made() -> tuple[np.ndarray, np.ndarray]:
    """2 sequences x 2 frames of 4x4 pixels; the errors are simple enough to add up by hand."""
    true = np.zeros((2, 2, 4, 4))
    pred = np.zeros((2, 2, 4, 4))
    pred[0, 0] = 0.5  # 16 pixels off by 0.5
    pred[1, 0, 0, 0] = 1.0  # 1 pixel off by 1
    pred[0, 1, :2] = 0.25  # 8 pixels off by 0.25
    pred[1, 1, :2] = 0.25
    return true, pred


def test_mse_and_mae_sum_over_the_frame_and_average_over_sequences():
    true, pred = _hand_made()
    # frame 0: sequence 0 has 16 * 0.25 = 4, sequence 1 has 1 -> mean 2.5; frame 1: 8 * 0.0625 = 0.5
    np.testing.assert_allclose(mse(true, pred), [2.5, 0.5])
    np.testing.assert_allclose(mse(true, pred, per_pixel=True), [2.5 / 16, 0.5 / 16])
    # frame 0: 16 * 0.5 = 8 and 1 -> 4.5; frame 1: 8 * 0.25 = 2
    np.testing.assert_allclose(mae(true, pred), [4.5, 2.0])
    np.testing.assert_allclose(mae(true, pred, per_pixel=True), [4.5 / 16, 2.0 / 16])


def test_psnr_is_per_frame_then_averaged_over_sequences():
    true, pred = _hand_made()
    # frame 0: per-pixel MSE 0.25 -> 10 log10 4 = 6.0206 dB and 1/16 -> 10 log10 16 = 12.0412 dB
    # frame 1: 1/32 in both sequences -> 10 log10 32 = 15.0515 dB
    np.testing.assert_allclose(psnr(true, pred), [(6.020600 + 12.041200) / 2, 15.051500], atol=1e-5)
    assert psnr(true, true).tolist() == [np.inf, np.inf]


def test_channel_axis_is_optional():
    true, pred = _hand_made()
    np.testing.assert_allclose(mse(true[..., None], pred[..., None]), mse(true, pred))
    rgb_true, rgb_pred = np.repeat(true[..., None], 3, -1), np.repeat(pred[..., None], 3, -1)
    np.testing.assert_allclose(mse(rgb_true, rgb_pred), 3 * mse(true, pred))  # summed over channels
    np.testing.assert_allclose(psnr(rgb_true, rgb_pred), psnr(true, pred))


def test_ssim_of_identical_frames_is_one():
    frames = np.random.default_rng(0).random((2, 3, 20, 24))
    np.testing.assert_allclose(ssim(frames, frames), np.ones(3), atol=1e-12)


def test_ssim_of_two_flat_frames_has_a_closed_form():
    # no variance: SSIM = (2ab + C1) / (a^2 + b^2 + C1) with OpenSTL's C1 = (0.01 * data range 2)^2
    a, b = 0.2, 0.6
    true, pred = np.full((1, 1, 16, 16), a), np.full((1, 1, 16, 16), b)
    c1 = 4e-4
    np.testing.assert_allclose(ssim(true, pred), [(2 * a * b + c1) / (a * a + b * b + c1)], rtol=1e-10)


def _ssim_by_loops(x: np.ndarray, y: np.ndarray) -> float:
    """Wang et al.'s SSIM written out window by window, with OpenSTL's choices (see module doc):
    7x7 uniform windows inside the frame, sample covariance, data range 2."""
    c1, c2, cov_norm = (0.01 * 2) ** 2, (0.03 * 2) ** 2, 49 / 48
    values = []
    for i in range(3, x.shape[0] - 3):
        for j in range(3, x.shape[1] - 3):
            px, py = x[i - 3 : i + 4, j - 3 : j + 4], y[i - 3 : i + 4, j - 3 : j + 4]
            mx, my = px.mean(), py.mean()
            vx = cov_norm * ((px * px).mean() - mx * mx)
            vy = cov_norm * ((py * py).mean() - my * my)
            cxy = cov_norm * ((px * py).mean() - mx * my)
            values.append((2 * mx * my + c1) * (2 * cxy + c2) / ((mx * mx + my * my + c1) * (vx + vy + c2)))
    return float(np.mean(values))


def _openstl_ssim(true: np.ndarray, pred: np.ndarray) -> np.ndarray:
    """OpenSTL's `metric` on (N, T, H, W, C) frames, per frame: pred clipped to [0, 1], each frame
    passed as (W, H, C) to scikit-image with multichannel=True (channel_axis=-1 since 0.19) and no
    data_range, which scikit-image <= 0.19 took from the float dtype as 2."""
    pred = np.clip(pred, 0, 1)
    return np.array([[structural_similarity(pred[n, t].swapaxes(0, 1), true[n, t].swapaxes(0, 1),
                                            channel_axis=-1, data_range=2.0)
                      for t in range(true.shape[1])] for n in range(len(true))])  # (N, T)


def _digit_like(rng: np.random.Generator, n: int, t: int, size: int = 64) -> np.ndarray:
    """(n, t, size, size) frames like Moving MNIST: black, with two 28x28 boxes (clipped to small
    frames) each holding four bright anti-aliased strokes."""
    frames = np.zeros((n, t, size, size))
    box = min(28, size)
    for frame in frames.reshape(-1, size, size):
        for _ in range(2):
            top, left = rng.integers(0, size - box + 1, 2)
            for _ in range(4):
                y, x = rng.integers(2, box - 4, 2)
                dy, dx = rng.integers(-2, 3, 2)
                for step in range(6):  # a stroke of 2x2 squares
                    r, c = np.clip([y + step * dy, x + step * dx], 0, box - 2)
                    frame[top + r : top + r + 2, left + c : left + c + 2] = 1.0
        frame[:] = np.clip(gaussian_filter(frame, 0.7) * 1.5, 0, 1)
    return frames


def test_ssim_equals_a_window_by_window_loop():
    rng = np.random.default_rng(3)
    true = rng.random((2, 2, 13, 11))  # not square, to catch swapped axes
    pred = np.clip(true + 0.2 * rng.standard_normal(true.shape), 0, 1)
    pred[1, 1] = 1.0 - true[1, 1]  # a very different frame too
    by_loops = [[_ssim_by_loops(true[n, t], pred[n, t]) for t in range(2)] for n in range(2)]
    np.testing.assert_allclose(ssim(true, pred), np.mean(by_loops, axis=0), rtol=1e-10)


def test_ssim_matches_scikit_image_as_openstl_calls_it_on_random_frames():
    rng = np.random.default_rng(4)
    true = rng.random((3, 2, 17, 19, 3))  # 3 channels, averaged
    pred = true + 0.3 * rng.standard_normal(true.shape)  # outside [0, 1] too: clipped as OpenSTL
    np.testing.assert_allclose(ssim(true, pred), _openstl_ssim(true, pred).mean(axis=0), atol=1e-6)
    per_sequence = sequence_metrics(true, pred, ("ssim",))["ssim"]
    np.testing.assert_allclose(per_sequence, _openstl_ssim(true, pred), atol=1e-6)


def test_ssim_matches_scikit_image_on_digit_like_float32_frames():
    rng = np.random.default_rng(5)
    true = _digit_like(rng, 3, 4)
    faded = gaussian_filter(np.roll(true, 1, axis=-1), (0, 0, 1.5, 1.5)) * 0.6
    shifted = np.roll(true, 2, axis=-2)
    for candidate in (faded, shifted, np.zeros_like(true)):
        # float32 as OpenSTL's predictions: scikit-image then computes in float32
        openstl = _openstl_ssim(true.astype(np.float32)[..., None], candidate.astype(np.float32)[..., None])
        np.testing.assert_allclose(ssim(true.astype(np.float32), candidate.astype(np.float32)),
                                   openstl.mean(axis=0), atol=1e-6)
    # why SSIM is not enough: a faded blur beats sharp digits 2 px off, which foreground F1 reverses
    assert ssim(true, faded).mean() > ssim(true, shifted).mean()
    assert foreground_f1(true, faded).mean() < 0.1 < 0.4 < foreground_f1(true, shifted).mean()


def test_ssim_needs_frames_as_large_as_the_window():
    with pytest.raises(ConfigError, match="at least 7x7"):
        ssim(np.zeros((1, 1, 6, 12)), np.zeros((1, 1, 6, 12)))


def test_frame_metrics_keys_and_consistency():
    rng = np.random.default_rng(0)
    true = rng.random((3, 4, 16, 16)).astype(np.float32)
    pred = np.clip(true + 0.1, 0, 1)
    metrics = frame_metrics(true, pred)
    assert sorted(metrics) == ["mae", "mae_per_pixel", "mse", "mse_per_pixel", "psnr", "ssim"]
    assert all(value.shape == (4,) for value in metrics.values())
    np.testing.assert_allclose(metrics["mse_per_pixel"] * 256, metrics["mse"])
    np.testing.assert_allclose(metrics["ssim"], ssim(true, pred))
    np.testing.assert_allclose(metrics["psnr"], psnr(true, pred))


def test_accumulating_batches_equals_one_call():
    rng = np.random.default_rng(1)
    true, pred = rng.random((7, 3, 12, 12)), rng.random((7, 3, 12, 12))
    accumulated = FrameMetrics()
    for lo in range(0, 7, 3):
        measured = accumulated.update(true[lo : lo + 3], pred[lo : lo + 3])
        # what a batch returns is each sequence's values, as sequence_metrics gives them
        for name, value in sequence_metrics(true[lo : lo + 3], pred[lo : lo + 3], measured).items():
            np.testing.assert_array_equal(measured[name], value)
    whole = frame_metrics(true, pred)
    for name, value in accumulated.result().items():
        np.testing.assert_allclose(value, whole[name], rtol=1e-12)
    with pytest.raises(ConfigError, match="batch has 2 frames"):
        accumulated.update(true[:, :2], pred[:, :2])


def test_mean_over_a_frame_range():
    metrics = {"mse": np.arange(100.0), "ssim": np.linspace(1, 0, 100)}
    late = mean_over_frames(metrics, 50, 100)
    assert late["mse"] == pytest.approx(np.mean(np.arange(50, 100)))
    assert late["ssim"] == pytest.approx(np.linspace(1, 0, 100)[50:].mean())
    assert mean_over_frames(metrics)["mse"] == pytest.approx(49.5)
    with pytest.raises(ConfigError, match="frame range"):
        mean_over_frames(metrics, 50, 101)


def test_mismatched_shapes_are_config_errors():
    with pytest.raises(ConfigError, match="same shape"):
        mse(np.zeros((1, 2, 4, 4)), np.zeros((1, 3, 4, 4)))
    with pytest.raises(ConfigError, match=r"\(N, T, H, W\)"):
        mse(np.zeros((2, 4, 4)), np.zeros((2, 4, 4)))


def _masks() -> tuple[np.ndarray, np.ndarray]:
    """2 sequences x 4 frames of 4x4 pixels with digit masks simple enough to count by hand."""
    true = np.zeros((2, 4, 4, 4))
    pred = np.zeros((2, 4, 4, 4))
    true[:, 0, 0, :] = 1.0  # frame 0: 4 digit pixels in both sequences
    pred[0, 0, 0, :2] = 0.9  # sequence 0: 2 of them found ...
    pred[0, 0, 3, :2] = 0.8  # ... and 2 false ones: F1 = 2 * 2 / (4 + 4) = 0.5
    pred[1, 0, 0, :] = 0.6  # sequence 1: all 4 found: F1 = 1
    true[:, 1, 1, 1] = 1.0  # frame 1: a digit pixel ...
    pred[:, 1, 1, 1] = 0.5  # ... predicted at exactly the threshold, which is not a digit: F1 = 0
    pred[0, 2, 2, 2] = 0.7  # frame 2: nothing there; sequence 0 predicts a pixel (F1 0), sequence 1 does not (1)
    return true, pred  # frame 3: both blank everywhere: F1 = 1


def test_foreground_f1_by_hand():
    true, pred = _masks()
    np.testing.assert_allclose(foreground_f1(true, pred), [(0.5 + 1.0) / 2, 0.0, 0.5, 1.0])
    np.testing.assert_allclose(sequence_metrics(true, pred, ("f1",))["f1"], [[0.5, 0, 0, 1], [1, 0, 1, 1]])
    # blank predictions score 0 on every frame with a digit, 1 on the blank frames
    np.testing.assert_allclose(foreground_f1(true, np.zeros_like(true)), [0.0, 0.0, 1.0, 1.0])
    np.testing.assert_allclose(foreground_f1(true, true), np.ones(4))


def test_skill_is_one_minus_the_ratio_of_mean_mses_to_blank_frames():
    true = np.zeros((2, 3, 4, 4))
    true[0, :, 0, :] = 1.0  # 4 digit pixels: blank MSE 4
    true[1, :, 0, :2] = 1.0  # 2 digit pixels: blank MSE 2
    pred = np.zeros_like(true)
    pred[0, 0] = 0.5 * true[0, 0]  # frame 0: sequence 0 faded to half, MSE 4 * 0.25 = 1
    pred[1, 0] = true[1, 0]  # sequence 1 perfect, MSE 0
    pred[:, 1] = true[:, 1]  # frame 1: perfect; frame 2: blank
    # frame 0: 1 - mean(1, 0) / mean(4, 2) = 1 - 0.5 / 3; not the mean of 0.75 and 1
    np.testing.assert_allclose(skill(true, pred), [1 - 0.5 / 3, 1.0, 0.0])
    np.testing.assert_allclose(sequence_metrics(true, pred, ("mse_blank",))["mse_blank"], [[4, 4, 4], [2, 2, 2]])
    # a fading prediction keeps some skill but loses every digit pixel
    faded = 0.5 * true
    np.testing.assert_allclose(skill(true, faded), [0.75, 0.75, 0.75])
    np.testing.assert_allclose(foreground_f1(true, faded), [0.0, 0.0, 0.0])


def test_skill_accumulates_as_a_ratio_of_totals():
    rng = np.random.default_rng(2)
    true, pred = rng.random((5, 3, 8, 8)) ** 4, rng.random((5, 3, 8, 8)) ** 4
    streamed = FrameMetrics(("skill", "f1"))
    streamed.update(true[:2], pred[:2])
    streamed.update(true[2:], pred[2:])
    whole = sequence_metrics(true, pred, ("mse", "mse_blank", "f1"))
    np.testing.assert_allclose(streamed.result()["skill"], 1 - whole["mse"].mean(0) / whole["mse_blank"].mean(0))
    np.testing.assert_allclose(streamed.result()["f1"], whole["f1"].mean(0))
    assert list(streamed.result()) == ["skill", "f1"]


def test_sequence_metrics_are_the_values_behind_the_frame_means(monkeypatch):
    rng = np.random.default_rng(6)
    true = _digit_like(rng, 5, 3, size=16)
    pred = np.clip(true + 0.2 * rng.standard_normal(true.shape), 0, 1)
    per_sequence = sequence_metrics(true, pred, video.SEQUENCE_NAMES)
    assert all(values.shape == (5, 3) for values in per_sequence.values())
    means = frame_metrics(true, pred, video.FRAME_NAMES)
    for name, values in per_sequence.items():
        np.testing.assert_allclose(values.mean(axis=0), means[name], rtol=1e-12)
    monkeypatch.setattr(video, "_CHUNK_PIXELS", 2 * 3 * 16 * 16)  # chunks of 2 sequences
    chunked = sequence_metrics(true, pred, video.SEQUENCE_NAMES)
    for name, values in per_sequence.items():
        np.testing.assert_allclose(chunked[name], values, rtol=1e-12)


def test_window_means_per_sequence():
    per_sequence = {"mse": np.arange(20.0).reshape(2, 10)}
    np.testing.assert_allclose(window_means(per_sequence, 8, 10)["mse"], [8.5, 18.5])
    np.testing.assert_allclose(window_means(per_sequence)["mse"], [4.5, 14.5])
    with pytest.raises(ConfigError, match="frame range"):
        window_means(per_sequence, 5, 11)


def test_unknown_metric_names_are_config_errors():
    frames = np.zeros((1, 1, 8, 8))
    with pytest.raises(ConfigError, match="metric names"):
        frame_metrics(frames, frames, ("mse", "lpips"))
    with pytest.raises(ConfigError, match="metric names"):
        sequence_metrics(frames, frames, ("skill",))  # a ratio of means: no per-sequence value
