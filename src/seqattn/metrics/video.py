"""Per-frame video prediction metrics on [0, 1] frames, defined once for every model.

MSE and MAE follow OpenSTL (C. Tan et al., "OpenSTL: A Comprehensive Benchmark of Spatio-Temporal
Predictive Learning", NeurIPS 2023 Datasets and Benchmarks): the error summed over the pixels of a
frame, averaged over sequences (the Moving MNIST tables, e.g. ConvLSTM 29.80, are in this unit); the
per-pixel versions divide by the pixel count. PSNR (data range 1) and SSIM (Z. Wang et al., "Image
Quality Assessment: From Error Visibility to Structural Similarity", IEEE TIP 2004) are computed per
frame and averaged over sequences, as OpenSTL does; SSIM matches scikit-image's
`structural_similarity(..., gaussian_weights=True, data_range=1)`: an 11x11 Gaussian window
(sigma 1.5), K1 = 0.01, K2 = 0.03, sample covariance (121/120), the border of 5 px left out of the
mean, channels averaged.

Inputs are (N, T, H, W) or (N, T, H, W, C); every metric returns one value per frame, shape (T,).
"""

import numpy as np

from seqattn.errors import ConfigError

SSIM_SIGMA = 1.5
SSIM_WIN = 11  # scikit-image: truncate 3.5 -> radius int(3.5 * 1.5 + 0.5) = 5
SSIM_K1, SSIM_K2 = 0.01, 0.03
DATA_RANGE = 1.0


_CHUNK_PIXELS = 1 << 22  # float64 elements per chunk: SSIM keeps ~10 such arrays alive


def _pair(true, pred) -> tuple[np.ndarray, np.ndarray]:
    """Arrays (N, T, H, W, C) of equal shape: a channel axis is added to 4-D input."""
    true, pred = np.asarray(true), np.asarray(pred)
    if true.shape != pred.shape:
        raise ConfigError(f"true and pred must have the same shape, got {true.shape} and {pred.shape}")
    if true.ndim == 4:
        return true[..., None], pred[..., None]
    if true.ndim != 5:
        raise ConfigError(f"frames must be (N, T, H, W) or (N, T, H, W, C), got shape {true.shape}")
    return true, pred


def _valid_gaussian(size: int) -> np.ndarray:
    """(size - 10, size) matrix: row i is the 11-tap Gaussian centred on pixel i + 5.

    scikit-image blurs the whole frame, then leaves the 5 px border out of the mean; the pixels it
    keeps see only pixels inside the frame, so a 'valid' blur gives them exactly, as two matmuls.
    """
    taps = np.arange(SSIM_WIN) - SSIM_WIN // 2
    kernel = np.exp(-0.5 * (taps / SSIM_SIGMA) ** 2)
    kernel /= kernel.sum()  # as scipy.ndimage.gaussian_filter, truncate 3.5 -> radius 5
    rows = np.zeros((size - SSIM_WIN + 1, size))
    for i in range(len(rows)):
        rows[i, i : i + SSIM_WIN] = kernel
    return rows


def _ssim_per_frame(true: np.ndarray, pred: np.ndarray) -> np.ndarray:
    """SSIM of each (frame, channel): (N, T, H, W, C) float64 -> (N, T, C)."""
    h, w = true.shape[2:4]
    if min(h, w) < SSIM_WIN:
        raise ConfigError(f"SSIM needs frames of at least {SSIM_WIN}x{SSIM_WIN} pixels, got {h}x{w}")
    rows, cols = _valid_gaussian(h), _valid_gaussian(w)  # (h-10, h), (w-10, w)
    true = np.moveaxis(true, -1, 2)  # (N, T, C, H, W)
    pred = np.moveaxis(pred, -1, 2)

    def blur(image):  # Gaussian-weighted local means: (N, T, C, H, W) -> (N, T, C, h-10, w-10)
        return rows @ image @ cols.T

    cov_norm = SSIM_WIN**2 / (SSIM_WIN**2 - 1)  # sample covariance, as scikit-image
    mu_x, mu_y = blur(true), blur(pred)
    var_x = cov_norm * (blur(true * true) - mu_x * mu_x)
    var_y = cov_norm * (blur(pred * pred) - mu_y * mu_y)
    cov_xy = cov_norm * (blur(true * pred) - mu_x * mu_y)
    c1, c2 = (SSIM_K1 * DATA_RANGE) ** 2, (SSIM_K2 * DATA_RANGE) ** 2
    ssim_map = ((2 * mu_x * mu_y + c1) * (2 * cov_xy + c2)) / (
        (mu_x**2 + mu_y**2 + c1) * (var_x + var_y + c2)
    )  # (N, T, C, h-10, w-10)
    return ssim_map.mean(axis=(3, 4))


def _per_sequence(true: np.ndarray, pred: np.ndarray, names) -> dict[str, np.ndarray]:
    """The requested metrics for every sequence and frame: (N, T) each."""
    true, pred = true.astype(np.float64), pred.astype(np.float64)
    error = pred - true  # (N, T, H, W, C)
    out = {}
    if {"mse", "mse_per_pixel", "psnr"} & set(names):
        squared = np.mean(error**2, axis=(2, 3, 4))  # (N, T) per pixel
        out["mse_per_pixel"] = squared
        out["mse"] = squared * np.prod(true.shape[2:])
        with np.errstate(divide="ignore"):
            out["psnr"] = 10 * np.log10(DATA_RANGE**2 / squared)
    if {"mae", "mae_per_pixel"} & set(names):
        absolute = np.mean(np.abs(error), axis=(2, 3, 4))
        out["mae_per_pixel"] = absolute
        out["mae"] = absolute * np.prod(true.shape[2:])
    if "ssim" in names:
        out["ssim"] = _ssim_per_frame(true, pred).mean(axis=-1)  # channels averaged
    return {name: out[name] for name in names}


class FrameMetrics:
    """Per-frame metrics accumulated over batches of sequences, for evaluating batch by batch.

    update(true, pred) with (B, T, H, W[, C]) batches; result() gives each metric as (T,), the mean
    over all sequences seen, equal to `frame_metrics` on the concatenated batches.
    """

    names = ("mse", "mae", "mse_per_pixel", "mae_per_pixel", "psnr", "ssim")

    def __init__(self, names=None):
        self.names = tuple(names or self.names)
        self.sums: dict[str, np.ndarray] = {}
        self.count = 0

    def update(self, true, pred) -> None:
        true, pred = _pair(true, pred)
        if self.sums and true.shape[1] != len(next(iter(self.sums.values()))):
            raise ConfigError(f"batch has {true.shape[1]} frames, earlier batches had {len(next(iter(self.sums.values())))}")
        per_frame = max(1, _CHUNK_PIXELS // max(1, int(np.prod(true.shape[1:]))))
        for lo in range(0, len(true), per_frame):
            values = _per_sequence(true[lo : lo + per_frame], pred[lo : lo + per_frame], self.names)
            for name, value in values.items():
                self.sums[name] = self.sums.get(name, 0.0) + value.sum(axis=0)  # (T,)
        self.count += len(true)

    def result(self) -> dict[str, np.ndarray]:
        if self.count == 0:
            raise ConfigError("no sequences were given to FrameMetrics.update")
        return {name: self.sums[name] / self.count for name in self.names}


def _one(name: str, true, pred) -> np.ndarray:
    metrics = FrameMetrics((name,))
    metrics.update(true, pred)
    return metrics.result()[name]


def mse(true, pred, per_pixel: bool = False) -> np.ndarray:
    """Squared error summed over a frame's pixels (mean when per_pixel), averaged over sequences: (T,)."""
    return _one("mse_per_pixel" if per_pixel else "mse", true, pred)


def mae(true, pred, per_pixel: bool = False) -> np.ndarray:
    """Absolute error summed over a frame's pixels (mean when per_pixel), averaged over sequences: (T,)."""
    return _one("mae_per_pixel" if per_pixel else "mae", true, pred)


def psnr(true, pred) -> np.ndarray:
    """PSNR in dB (data range 1) of every frame, averaged over sequences: (T,). Identical frames: inf."""
    return _one("psnr", true, pred)


def ssim(true, pred) -> np.ndarray:
    """SSIM of every frame (channels averaged), averaged over sequences: (T,)."""
    return _one("ssim", true, pred)


def frame_metrics(true, pred) -> dict[str, np.ndarray]:
    """mse, mae, mse_per_pixel, mae_per_pixel, psnr, ssim: each (T,), one value per frame."""
    metrics = FrameMetrics()
    metrics.update(true, pred)
    return metrics.result()


def mean_over_frames(metrics: dict[str, np.ndarray], start: int = 0, stop: int | None = None) -> dict[str, float]:
    """Average each per-frame metric over frames [start, stop) (0-based, like a slice)."""
    length = len(next(iter(metrics.values())))
    stop = length if stop is None else stop
    if not 0 <= start < stop <= length:
        raise ConfigError(f"frame range [{start}, {stop}) must be non-empty and within 0..{length}")
    return {name: float(np.mean(values[start:stop])) for name, values in metrics.items()}
