"""Paired two-level bootstrap: known changes are recovered, A == B gives exactly zero, and keeping
the sequence pairing is what makes a 5-10% change resolvable."""

import dataclasses

import numpy as np
import pytest

from seqattn.errors import ConfigError
from seqattn.metrics.paired import paired_bootstrap


def _per_sequence_mse(rng: np.random.Generator, seeds: int, sequences: int) -> np.ndarray:
    """(seeds, sequences) window MSEs: sequence difficulty spread far wider than seed effects."""
    difficulty = rng.lognormal(mean=np.log(100), sigma=0.5, size=sequences)  # (N,)
    seed_effect = 1 + 0.01 * rng.standard_normal((seeds, 1))  # (S, 1)
    return difficulty * seed_effect


def test_a_known_ten_percent_change_is_recovered():
    rng = np.random.default_rng(0)
    b = _per_sequence_mse(rng, 3, 500)
    a = 1.10 * b * (1 + 0.01 * rng.standard_normal(b.shape))
    result = paired_bootstrap(a, b)
    assert result.relative == pytest.approx(0.10, abs=0.005)
    assert 0 < result.relative_low < 0.10 < result.relative_high
    assert result.difference_low < result.difference < result.difference_high
    assert result.difference == pytest.approx(a.mean() - b.mean())
    assert (result.seeds, result.sequences, result.resamples, result.confidence) == (3, 500, 2000, 0.95)


def test_a_five_percent_change_with_noisy_sequences_is_resolved():
    rng = np.random.default_rng(1)
    expected = _per_sequence_mse(rng, 3, 1000)
    b = expected * (1 + 0.2 * rng.standard_normal(expected.shape))  # each model errs on its own
    a = 0.95 * expected * (1 + 0.2 * rng.standard_normal(expected.shape))
    result = paired_bootstrap(a, b)
    assert result.relative_low < -0.05 < result.relative_high < 0


def test_identical_models_give_exactly_zero():
    a = _per_sequence_mse(np.random.default_rng(2), 4, 200)
    result = paired_bootstrap(a, a.copy())
    assert (result.relative, result.relative_low, result.relative_high) == (0.0, 0.0, 0.0)
    assert (result.difference, result.difference_low, result.difference_high) == (0.0, 0.0, 0.0)


def test_pairing_narrows_the_interval():
    rng = np.random.default_rng(3)
    b = _per_sequence_mse(rng, 3, 500)
    a = 1.05 * b * (1 + 0.02 * rng.standard_normal(b.shape))
    paired = paired_bootstrap(a, b)
    # the same numbers with B's sequences shuffled: the means are unchanged, the pairing is lost
    unpaired = paired_bootstrap(a, b[:, rng.permutation(500)])
    assert unpaired.relative == pytest.approx(paired.relative)
    paired_width = paired.relative_high - paired.relative_low
    assert unpaired.relative_high - unpaired.relative_low > 10 * paired_width
    assert paired.relative_low > 0 > unpaired.relative_low


def test_the_interval_has_the_width_of_the_standard_error():
    # one seed: the bootstrap interval of a mean difference is about +-1.96 standard errors
    rng = np.random.default_rng(4)
    b = rng.normal(10, 1, 400)
    a = b + rng.normal(0.5, 2, 400)
    result = paired_bootstrap(a, b)
    half_width = (result.difference_high - result.difference_low) / 2
    assert half_width == pytest.approx(1.96 * np.std(a - b) / np.sqrt(400), rel=0.1)


def test_seed_variation_widens_the_interval():
    rng = np.random.default_rng(5)
    b = _per_sequence_mse(rng, 4, 500)
    a = 1.05 * b * (1 + 0.02 * rng.standard_normal(b.shape))
    steady = paired_bootstrap(a, b)
    unsteady = paired_bootstrap(a * np.array([[0.9], [1.0], [1.1], [1.2]]), b)  # seeds of A disagree
    assert unsteady.relative_high - unsteady.relative_low > 10 * (steady.relative_high - steady.relative_low)


def test_deterministic_for_a_seed_and_one_seed_runs_take_1d_input():
    rng = np.random.default_rng(6)
    a, b = rng.random(50) + 1, rng.random(50) + 1
    first = paired_bootstrap(a, b, resamples=300, seed=7)
    assert first == paired_bootstrap(a[None], b[None], resamples=300, seed=7)
    assert first.relative_low != paired_bootstrap(a, b, resamples=300, seed=8).relative_low
    assert set(dataclasses.asdict(first)) >= {"relative", "relative_low", "relative_high", "difference"}


def test_bad_input_is_a_config_error():
    with pytest.raises(ConfigError, match="seeds, sequences"):
        paired_bootstrap(np.ones((2, 5)), np.ones((3, 5)))
    with pytest.raises(ConfigError, match="at least 2 sequences"):
        paired_bootstrap(np.ones((2, 1)), np.ones((2, 1)))
    with pytest.raises(ConfigError, match="finite"):
        paired_bootstrap(np.array([1.0, np.nan]), np.ones(2))
    with pytest.raises(ConfigError, match="non-zero mean"):
        paired_bootstrap(np.ones(3), np.zeros(3))
    with pytest.raises(ConfigError, match="resamples"):
        paired_bootstrap(np.ones(3), np.ones(3), resamples=0)
