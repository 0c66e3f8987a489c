"""Per-frame video prediction metrics on [0, 1] frames, defined once for every model.

MSE and MAE follow OpenSTL (C. Tan et al., "OpenSTL: A Comprehensive Benchmark of Spatio-Temporal
Predictive Learning", NeurIPS 2023 Datasets and Benchmarks; `openstl/core/metrics.py`): the error
summed over the pixels of a frame, averaged over sequences (the Moving MNIST tables, e.g. ConvLSTM
29.80, are in this unit); the per-pixel versions divide by the pixel count. PSNR (data range 1) and
SSIM (Z. Wang et al., "Image Quality Assessment: From Error Visibility to Structural Similarity",
IEEE TIP 2004) are computed per frame and averaged over sequences, on predictions clipped to [0, 1],
as OpenSTL's `metric` does.

SSIM is OpenSTL's, so 10 -> 10 numbers read against its Moving MNIST table. `metric` calls
scikit-image's `structural_similarity(pred, true, multichannel=True)` on each (W, H, C) frame and
nothing else, under scikit-image <= 0.19.3 (pinned in its `requirements/runtime.txt`). That gets scikit-image's
defaults: a 7x7 uniform window, K1 = 0.01, K2 = 0.03, sample covariance (49/48), the 3 px border
left out of the mean, channels averaged; and, for float frames with no `data_range`, the range of
the dtype, which scikit-image takes as (-1, 1) for every float type (`skimage.util.dtype_range`,
the note in its SSIM docstring; scikit-image 0.20 made float input without data_range an error).
So OpenSTL's SSIM on [0, 1] frames has data_range 2: C1 = (0.01 * 2)^2, C2 = (0.03 * 2)^2, four
times the constants of a range of 1, which lifts SSIM on the flat black background. The window
is symmetric, so OpenSTL's (W, H) transpose changes nothing. We compute in float64; scikit-image
0.19 computes float32 frames in float32, which differs by under 1e-7 on Moving-MNIST-like frames.

Two metrics that predictions cannot win by fading to black, as they can SSIM on a black background:
- foreground F1: the Dice overlap 2|T & P| / (|T| + |P|) of the digit masks truth > 0.5 and
  prediction > 0.5, 1 when both are empty and so 0 when exactly one is (a blank frame scores 0
  on any frame with a digit);
- skill against blank frames: 1 - MSE(model) / MSE(all-black prediction), both averaged over the
  same sequences, per frame; 0 for black frames, 1 for a perfect prediction.

Inputs are (N, T, H, W) or (N, T, H, W, C). `sequence_metrics` gives one value per sequence and
frame, (N, T), for paired comparisons (`seqattn.metrics.paired`); `FrameMetrics`,
`frame_metrics` and the one-metric functions give the mean over sequences, (T,).
"""

import numpy as np

from seqattn.errors import ConfigError

DATA_RANGE = 1.0  # frames are in [0, 1]; PSNR's peak
SSIM_WIN = 7  # scikit-image's window without gaussian_weights
SSIM_K1, SSIM_K2 = 0.01, 0.03
SSIM_DATA_RANGE = 2.0  # what OpenSTL's call gets for float frames, see the module docstring
# Digit pixels: the midpoint of [0, 1]. MNIST strokes are mostly saturated; on the MNIST test
# digits the pixels above 0.5 hold 90% of the ink, while a prediction that spreads a digit over
# its possible positions (a blurred, fading mean) falls below 0.5 and stops counting as a digit.
FOREGROUND_THRESHOLD = 0.5

DEFAULT_NAMES = ("mse", "mae", "mse_per_pixel", "mae_per_pixel", "psnr", "ssim")
# Per-sequence metrics; "mse_blank" is the MSE of an all-black prediction on the same truth.
SEQUENCE_NAMES = DEFAULT_NAMES + ("f1", "mse_blank")
# Averaged over sequences: the per-sequence metrics and the skill, a ratio of two of those means.
FRAME_NAMES = SEQUENCE_NAMES + ("skill",)

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


def _chunks(true: np.ndarray, pred: np.ndarray):
    """(true, pred) slices of whole sequences, small enough for SSIM's temporaries."""
    per_chunk = max(1, _CHUNK_PIXELS // max(1, int(np.prod(true.shape[1:]))))
    for lo in range(0, len(true), per_chunk):
        yield true[lo : lo + per_chunk], pred[lo : lo + per_chunk]


def _valid_box(size: int) -> np.ndarray:
    """(size - 6, size) matrix: row i averages the 7 pixels centred on pixel i + 3.

    scikit-image filters the whole frame (scipy's uniform_filter), then leaves the 3 px border out
    of the mean; the pixels it keeps see only pixels inside the frame, so a 'valid' filter gives
    them exactly, as two matmuls.
    """
    rows = np.zeros((size - SSIM_WIN + 1, size))
    for i in range(len(rows)):
        rows[i, i : i + SSIM_WIN] = 1.0 / SSIM_WIN
    return rows


def _ssim_per_frame(true: np.ndarray, pred: np.ndarray) -> np.ndarray:
    """OpenSTL's SSIM of each (frame, channel): (N, T, H, W, C) float64 in [0, 1] -> (N, T, C)."""
    h, w = true.shape[2:4]
    if min(h, w) < SSIM_WIN:
        raise ConfigError(f"SSIM needs frames of at least {SSIM_WIN}x{SSIM_WIN} pixels, got {h}x{w}")
    rows, cols = _valid_box(h), _valid_box(w)  # (h-6, h), (w-6, w)
    true = np.moveaxis(true, -1, 2)  # (N, T, C, H, W)
    pred = np.moveaxis(pred, -1, 2)

    def local_mean(image):  # 7x7 window means: (N, T, C, H, W) -> (N, T, C, h-6, w-6)
        return rows @ image @ cols.T

    cov_norm = SSIM_WIN**2 / (SSIM_WIN**2 - 1)  # sample covariance, as scikit-image
    mu_x, mu_y = local_mean(true), local_mean(pred)
    var_x = cov_norm * (local_mean(true * true) - mu_x * mu_x)
    var_y = cov_norm * (local_mean(pred * pred) - mu_y * mu_y)
    cov_xy = cov_norm * (local_mean(true * pred) - mu_x * mu_y)
    c1, c2 = (SSIM_K1 * SSIM_DATA_RANGE) ** 2, (SSIM_K2 * SSIM_DATA_RANGE) ** 2
    ssim_map = ((2 * mu_x * mu_y + c1) * (2 * cov_xy + c2)) / (
        (mu_x**2 + mu_y**2 + c1) * (var_x + var_y + c2)
    )  # (N, T, C, h-6, w-6)
    return ssim_map.mean(axis=(3, 4))


def _foreground_f1(true: np.ndarray, pred: np.ndarray) -> np.ndarray:
    """Dice/F1 of the digit masks of each frame: (N, T, H, W, C) -> (N, T); 1 when both are empty."""
    truth_on, pred_on = true > FOREGROUND_THRESHOLD, pred > FOREGROUND_THRESHOLD
    overlap = np.sum(truth_on & pred_on, axis=(2, 3, 4))  # (N, T) true positives
    total = np.sum(truth_on, axis=(2, 3, 4)) + np.sum(pred_on, axis=(2, 3, 4))  # 2 TP + FP + FN
    return np.where(total == 0, 1.0, 2 * overlap / np.maximum(total, 1))


def _per_sequence(true: np.ndarray, pred: np.ndarray, names) -> dict[str, np.ndarray]:
    """The requested metrics (of SEQUENCE_NAMES) for every sequence and frame: (N, T) each."""
    true, pred = true.astype(np.float64), pred.astype(np.float64)
    pixels = np.prod(true.shape[2:])
    error = pred - true  # (N, T, H, W, C)
    out = {}
    if {"mse", "mse_per_pixel"} & set(names):
        out["mse_per_pixel"] = np.mean(error**2, axis=(2, 3, 4))  # (N, T)
        out["mse"] = out["mse_per_pixel"] * pixels
    if {"mae", "mae_per_pixel"} & set(names):
        out["mae_per_pixel"] = np.mean(np.abs(error), axis=(2, 3, 4))
        out["mae"] = out["mae_per_pixel"] * pixels
    if "mse_blank" in names:
        out["mse_blank"] = np.sum(true**2, axis=(2, 3, 4))  # the error of predicting 0 everywhere
    if "f1" in names:
        out["f1"] = _foreground_f1(true, pred)
    clipped = np.clip(pred, 0.0, DATA_RANGE) if {"psnr", "ssim"} & set(names) else None
    if "psnr" in names:
        with np.errstate(divide="ignore"):
            out["psnr"] = 10 * np.log10(DATA_RANGE**2 / np.mean((clipped - true) ** 2, axis=(2, 3, 4)))
    if "ssim" in names:
        out["ssim"] = _ssim_per_frame(true, clipped).mean(axis=-1)  # channels averaged
    return {name: out[name] for name in names}


def _check_names(names, allowed) -> tuple[str, ...]:
    names = tuple(names)
    unknown = [name for name in names if name not in allowed]
    if unknown or not names:
        raise ConfigError(f"metric names must be a non-empty selection of {allowed}, got {names}")
    return names


def sequence_metrics(true, pred, names=("mse",)) -> dict[str, np.ndarray]:
    """Each named metric (of SEQUENCE_NAMES) for every sequence and frame: (N, T) arrays.

    The per-sequence numbers behind the means: a paired comparison of two models on the same
    sequences needs them, e.g. `window_means(sequence_metrics(truth, pred), 39)["mse"]`, each
    sequence's MSE over frames 50..100 when pred holds frames 11..100. The skill is a ratio of
    means over sequences, so it has no per-sequence value; ask for "mse_blank" instead.
    """
    names = _check_names(names, SEQUENCE_NAMES)
    true, pred = _pair(true, pred)
    parts = [_per_sequence(t, p, names) for t, p in _chunks(true, pred)]
    return {name: np.concatenate([part[name] for part in parts]) for name in names}


class FrameMetrics:
    """Per-frame metrics accumulated over batches of sequences, for evaluating batch by batch.

    update(true, pred) with (B, T, H, W[, C]) batches; result() gives each metric as (T,), the mean
    over all sequences seen, equal to `frame_metrics` on the concatenated batches. names: any of
    FRAME_NAMES, DEFAULT_NAMES when None; "skill" is 1 - mean MSE / mean blank MSE, not finite on a
    frame that is black in every sequence.
    """

    names = DEFAULT_NAMES

    def __init__(self, names=None):
        self.names = _check_names(names or self.names, FRAME_NAMES)
        summed = [name for name in self.names if name != "skill"]
        if "skill" in self.names:
            summed += [name for name in ("mse", "mse_blank") if name not in summed]
        self._summed = tuple(summed)
        self.sums: dict[str, np.ndarray] = {}
        self.count = 0

    def update(self, true, pred) -> dict[str, np.ndarray]:
        """Adds a batch; returns what it measured on it, each summed metric per sequence and frame
        ((B, T) each, as `sequence_metrics`), for per-sequence numbers without measuring twice."""
        true, pred = _pair(true, pred)
        if self.sums and true.shape[1] != len(next(iter(self.sums.values()))):
            raise ConfigError(f"batch has {true.shape[1]} frames, earlier batches had {len(next(iter(self.sums.values())))}")
        parts = [_per_sequence(t, p, self._summed) for t, p in _chunks(true, pred)]
        measured = {name: np.concatenate([part[name] for part in parts]) for name in self._summed}
        for name, value in measured.items():
            self.sums[name] = self.sums.get(name, 0.0) + value.sum(axis=0)  # (T,)
        self.count += len(true)
        return measured

    def result(self) -> dict[str, np.ndarray]:
        if self.count == 0:
            raise ConfigError("no sequences were given to FrameMetrics.update")
        means = {name: total / self.count for name, total in self.sums.items()}
        if "skill" in self.names:
            with np.errstate(divide="ignore", invalid="ignore"):
                means["skill"] = 1.0 - means["mse"] / means["mse_blank"]
        return {name: means[name] for name in self.names}


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
    """PSNR in dB (data range 1, pred clipped to [0, 1]) of every frame, averaged over sequences: (T,).
    Identical frames: inf."""
    return _one("psnr", true, pred)


def ssim(true, pred) -> np.ndarray:
    """OpenSTL's SSIM (see the module docstring) of every frame, averaged over sequences: (T,)."""
    return _one("ssim", true, pred)


def foreground_f1(true, pred) -> np.ndarray:
    """F1 of the digit pixels (> FOREGROUND_THRESHOLD) of every frame, averaged over sequences: (T,)."""
    return _one("f1", true, pred)


def skill(true, pred) -> np.ndarray:
    """1 - MSE / MSE of all-black frames, per frame, both averaged over the sequences: (T,)."""
    return _one("skill", true, pred)


def frame_metrics(true, pred, names=None) -> dict[str, np.ndarray]:
    """Each named metric (FRAME_NAMES; DEFAULT_NAMES when None) as (T,), one value per frame."""
    metrics = FrameMetrics(names)
    metrics.update(true, pred)
    return metrics.result()


def _frame_range(length: int, start: int, stop: int | None) -> tuple[int, int]:
    stop = length if stop is None else stop
    if not 0 <= start < stop <= length:
        raise ConfigError(f"frame range [{start}, {stop}) must be non-empty and within 0..{length}")
    return start, stop


def mean_over_frames(metrics: dict[str, np.ndarray], start: int = 0, stop: int | None = None) -> dict[str, float]:
    """Average each per-frame metric over frames [start, stop) (0-based, like a slice)."""
    start, stop = _frame_range(len(next(iter(metrics.values()))), start, stop)
    return {name: float(np.mean(values[start:stop])) for name, values in metrics.items()}


def window_means(per_sequence: dict[str, np.ndarray], start: int = 0, stop: int | None = None) -> dict[str, np.ndarray]:
    """Each sequence's mean of each (N, T) metric over frames [start, stop) (0-based): (N,) each."""
    start, stop = _frame_range(next(iter(per_sequence.values())).shape[-1], start, stop)
    return {name: values[:, start:stop].mean(axis=1) for name, values in per_sequence.items()}
