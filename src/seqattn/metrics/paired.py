"""Paired comparison of two models on the same test sequences, with a two-level bootstrap interval.

Each model is trained from several seeds and evaluated on the same N test sequences, giving a
per-sequence number (e.g. the MSE averaged over frames 50..100) for every seed: a[s, n], b[s, n].
Sequences differ far more in difficulty than models do, so the comparison keeps the pairing: the
difference is taken on the same sequences, and the bootstrap resamples sequence indices once per
replicate, for both models. Seeds are the other source of variation, so each replicate first
resamples seeds, then sequences, both with replacement (the two-way, "pigeonhole" bootstrap of
A. B. Owen, "The pigeonhole bootstrap", Annals of Applied Statistics 2007, for a seed x sequence
table), and reports 95% percentile intervals (B. Efron and R. J. Tibshirani, "An Introduction to
the Bootstrap", 1993, ch. 13).

Seed s of A is paired with seed s of B (resampled together). Runs that share nothing are paired
arbitrarily by this; the expected variance of the difference is the same either way (their
covariance is zero in expectation), and pairing keeps A == B at exactly zero.
"""

from dataclasses import dataclass

import numpy as np

from seqattn.errors import ConfigError

RESAMPLES = 2000
CONFIDENCE = 0.95
_CELLS_PER_CHUNK = 1 << 22  # resample x sequence counts held at once


@dataclass(frozen=True)
class PairedComparison:
    """A vs B: mean_a, mean_b over all seeds and sequences; relative = (mean_a - mean_b) / mean_b,
    difference = mean_a - mean_b, each with its percentile-bootstrap interval [low, high]."""

    mean_a: float
    mean_b: float
    relative: float
    relative_low: float
    relative_high: float
    difference: float
    difference_low: float
    difference_high: float
    seeds: int
    sequences: int
    resamples: int
    confidence: float


def _check(a, b) -> tuple[np.ndarray, np.ndarray]:
    """Both as float64 (S, N): the same seeds count and the same sequences."""
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    if a.ndim == 1 and b.ndim == 1:  # one seed
        a, b = a[None], b[None]
    if a.shape != b.shape or a.ndim != 2:
        raise ConfigError(f"a and b must both be (seeds, sequences), got {a.shape} and {b.shape}")
    if a.shape[1] < 2:
        raise ConfigError(f"need at least 2 sequences to resample, got {a.shape[1]}")
    if not (np.all(np.isfinite(a)) and np.all(np.isfinite(b))):
        raise ConfigError("a and b must be finite")
    if b.mean() == 0:
        raise ConfigError("the relative change needs a non-zero mean for b")
    return a, b


def _counts(rng: np.random.Generator, replicates: int, size: int) -> np.ndarray:
    """How often each of `size` items is drawn when drawing `size` with replacement: (R, size)."""
    draws = rng.integers(0, size, (replicates, size)) + size * np.arange(replicates)[:, None]
    return np.bincount(draws.ravel(), minlength=replicates * size).reshape(replicates, size)


def _resampled_means(a, b, resamples: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Means of A and B over each replicate's seeds and sequences, drawn once for both: (R,), (R,)."""
    n_seeds, n_sequences = a.shape
    rng = np.random.default_rng(seed)
    means_a, means_b = [], []
    per_chunk = max(1, _CELLS_PER_CHUNK // n_sequences)
    for lo in range(0, resamples, per_chunk):
        r = min(per_chunk, resamples - lo)
        seed_counts = _counts(rng, r, n_seeds)  # (r, S)
        sequence_counts = _counts(rng, r, n_sequences)  # (r, N)
        # a replicate's mean is sum_s sum_n c_s w_n a[s, n] / (S N)
        means_a.append(np.sum((seed_counts @ a) * sequence_counts, axis=1) / a.size)  # (r,)
        means_b.append(np.sum((seed_counts @ b) * sequence_counts, axis=1) / b.size)
    return np.concatenate(means_a), np.concatenate(means_b)


def paired_bootstrap(a, b, resamples: int = RESAMPLES, confidence: float = CONFIDENCE,
                     seed: int = 0) -> PairedComparison:
    """Compare model A with model B on the same sequences: a, b are (seeds, sequences) arrays (or
    (sequences,) for one seed) of per-sequence values, e.g. window-mean MSE; seed s and sequence n
    must mean the same thing in both. Deterministic for a seed.

    relative < 0 means A is lower (for MSE: better) than B; the interval excludes 0 when the
    change is resolved at this confidence.
    """
    a, b = _check(a, b)
    if resamples < 1 or not 0 < confidence < 1:
        raise ConfigError(f"need resamples >= 1 and 0 < confidence < 1, got {resamples} and {confidence}")
    means_a, means_b = _resampled_means(a, b, int(resamples), seed)
    tails = [(1 - confidence) / 2, (1 + confidence) / 2]
    with np.errstate(divide="ignore", invalid="ignore"):  # a replicate can draw only zeros of b
        relative_low, relative_high = np.quantile((means_a - means_b) / means_b, tails)
    difference_low, difference_high = np.quantile(means_a - means_b, tails)
    mean_a, mean_b = a.mean(), b.mean()
    return PairedComparison(
        mean_a=float(mean_a), mean_b=float(mean_b),
        relative=float((mean_a - mean_b) / mean_b),
        relative_low=float(relative_low), relative_high=float(relative_high),
        difference=float(mean_a - mean_b),
        difference_low=float(difference_low), difference_high=float(difference_high),
        seeds=a.shape[0], sequences=a.shape[1], resamples=int(resamples), confidence=float(confidence),
    )
