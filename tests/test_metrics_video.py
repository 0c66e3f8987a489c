"""Per-frame video metrics on hand-made frames: OpenSTL's summed MSE/MAE, PSNR, and SSIM as skimage."""

import numpy as np
import pytest
from scipy.ndimage import gaussian_filter

from seqattn.errors import ConfigError
from seqattn.metrics.video import FrameMetrics, frame_metrics, mae, mean_over_frames, mse, psnr, ssim


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
    # no variance: SSIM = (2ab + C1) / (a^2 + b^2 + C1) with C1 = 0.01^2
    a, b = 0.2, 0.6
    true, pred = np.full((1, 1, 16, 16), a), np.full((1, 1, 16, 16), b)
    c1 = 1e-4
    np.testing.assert_allclose(ssim(true, pred), [(2 * a * b + c1) / (a * a + b * b + c1)], rtol=1e-10)


def _ssim_by_loops(x: np.ndarray, y: np.ndarray) -> float:
    """Wang et al.'s SSIM written out window by window, with skimage's choices (see module doc)."""
    taps = np.arange(-5, 6)
    g = np.exp(-(taps**2) / (2 * 1.5**2))
    weights = np.outer(g, g) / np.outer(g, g).sum()  # (11, 11)
    c1, c2, cov_norm = 0.01**2, 0.03**2, 121 / 120
    values = []
    for i in range(5, x.shape[0] - 5):
        for j in range(5, x.shape[1] - 5):
            px, py = x[i - 5 : i + 6, j - 5 : j + 6], y[i - 5 : i + 6, j - 5 : j + 6]
            mx, my = (weights * px).sum(), (weights * py).sum()
            vx = cov_norm * ((weights * px * px).sum() - mx * mx)
            vy = cov_norm * ((weights * py * py).sum() - my * my)
            cxy = cov_norm * ((weights * px * py).sum() - mx * my)
            values.append((2 * mx * my + c1) * (2 * cxy + c2) / ((mx * mx + my * my + c1) * (vx + vy + c2)))
    return float(np.mean(values))


def _ssim_like_skimage(x: np.ndarray, y: np.ndarray) -> float:
    """skimage.metrics.structural_similarity(gaussian_weights=True, data_range=1), its code path:
    scipy's gaussian_filter (sigma 1.5, truncate 3.5) over the whole frame, then the crop."""

    def blur(image):
        return gaussian_filter(image, 1.5, truncate=3.5)

    cov_norm = 121 / 120
    ux, uy = blur(x), blur(y)
    vx = cov_norm * (blur(x * x) - ux * ux)
    vy = cov_norm * (blur(y * y) - uy * uy)
    vxy = cov_norm * (blur(x * y) - ux * uy)
    c1, c2 = 0.01**2, 0.03**2
    s = (2 * ux * uy + c1) * (2 * vxy + c2) / ((ux**2 + uy**2 + c1) * (vx + vy + c2))
    return float(s[5:-5, 5:-5].mean())


def test_ssim_equals_a_window_by_window_loop_and_the_skimage_code_path():
    rng = np.random.default_rng(3)
    true = rng.random((2, 2, 17, 19))  # not square, to catch swapped axes
    pred = np.clip(true + 0.2 * rng.standard_normal(true.shape), 0, 1)
    pred[1, 1] = 1.0 - true[1, 1]  # a very different frame too
    by_loops = [[_ssim_by_loops(true[n, t], pred[n, t]) for t in range(2)] for n in range(2)]
    skimage_path = [[_ssim_like_skimage(true[n, t], pred[n, t]) for t in range(2)] for n in range(2)]
    np.testing.assert_allclose(by_loops, skimage_path, rtol=1e-10)
    np.testing.assert_allclose(ssim(true, pred), np.mean(by_loops, axis=0), rtol=1e-10)


def test_ssim_needs_frames_as_large_as_the_window():
    with pytest.raises(ConfigError, match="at least 11x11"):
        ssim(np.zeros((1, 1, 10, 12)), np.zeros((1, 1, 10, 12)))


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
        accumulated.update(true[lo : lo + 3], pred[lo : lo + 3])
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
