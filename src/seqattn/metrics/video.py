"""Per-frame video prediction metrics on [0, 1] frames, defined once for every model.

MSE and MAE follow OpenSTL (C. Tan et al., "OpenSTL: A Comprehensive Benchmark of Spatio-Temporal
Predictive Learning", NeurIPS 2023 Datasets and Benchmarks): the error summed over the pixels of a
frame, averaged over sequences (the Moving MNIST tables, e.g. ConvLSTM 29.80, are in this unit); the
per-pixel versions divide by the pixel count. PSNR (data range 1) and SSIM (Z. Wang et al., "Image
Quality Assessment: From Error Visibility to Structural Similarity", IEEE TIP 2004) are computed per
frame and averaged over sequences, as OpenSTL does; SSIM matches scikit-image's
`structural_similarity(..., gaussian_weights=True, data_range=1)`: an 11x11 Gaussian window
(sigma 1.5), K1 = 0.01, K2 = 0.03, sample covariance, the border of 5 px left out of the mean.

Inputs are (N, T, H, W) or (N, T, H, W, C); every metric returns one value per frame, shape (T,).
"""

import numpy as np


def mse(true, pred, per_pixel: bool = False) -> np.ndarray:
    """Squared error summed over a frame's pixels (mean when per_pixel), averaged over sequences: (T,)."""
    raise NotImplementedError


def mae(true, pred, per_pixel: bool = False) -> np.ndarray:
    """Absolute error summed over a frame's pixels (mean when per_pixel), averaged over sequences: (T,)."""
    raise NotImplementedError


def psnr(true, pred) -> np.ndarray:
    """PSNR in dB (data range 1) of every frame, averaged over sequences: (T,). Identical frames: inf."""
    raise NotImplementedError


def ssim(true, pred) -> np.ndarray:
    """SSIM of every frame (channels averaged), averaged over sequences: (T,)."""
    raise NotImplementedError


def frame_metrics(true, pred) -> dict[str, np.ndarray]:
    """mse, mae, mse_per_pixel, mae_per_pixel, psnr, ssim: each (T,), one value per frame."""
    raise NotImplementedError


def mean_over_frames(metrics: dict[str, np.ndarray], start: int = 0, stop: int | None = None) -> dict[str, float]:
    """Average each per-frame metric over frames [start, stop) (0-based, like a slice)."""
    raise NotImplementedError
