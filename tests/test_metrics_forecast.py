"""Forecast metrics on hand-made arrays with hand-computed values."""

import numpy as np
import pytest

from seqattn.metrics import forecast as fm

# Two windows, three steps, one channel: errors e = pred - true.
TRUE = np.array([[[0.0], [1.0], [2.0]], [[1.0], [1.0], [1.0]]])  # (2, 3, 1)
PRED = np.array([[[1.0], [1.0], [0.0]], [[1.0], [3.0], [0.0]]])  # errors [1, 0, -2], [0, 2, -1]


def test_mse_and_mae_by_hand():
    assert fm.mse(PRED, TRUE) == pytest.approx((1 + 0 + 4 + 0 + 4 + 1) / 6)
    assert fm.mae(PRED, TRUE) == pytest.approx((1 + 0 + 2 + 0 + 2 + 1) / 6)


def test_per_step_errors_by_hand():
    steps = fm.per_step_errors(PRED, TRUE)
    assert np.allclose(steps["mse"], [0.5, 2.0, 2.5])
    assert np.allclose(steps["mae"], [0.5, 1.0, 1.5])


def test_nrmse_per_step_by_hand():
    # With scale 2: squared normalised errors per step: [1/4, 0], [0, 1], [1, 1/4].
    assert np.allclose(fm.nrmse_per_step(PRED, TRUE, scale=[2.0]), np.sqrt([1 / 8, 1 / 2, 5 / 8]))
    assert np.allclose(fm.nrmse_per_step(PRED, TRUE, scale=[2.0], per_window=True), [[0.5, 0, 1], [0, 1, 0.5]])
    # Default scale: std of all true values [0, 1, 2, 1, 1, 1] = sqrt(1/3).
    assert np.allclose(fm.nrmse_per_step(PRED, TRUE), np.sqrt(np.array([0.5, 2.0, 2.5]) * 3))


def test_nrmse_of_guessing_the_mean_is_one():
    true = np.random.default_rng(0).normal(size=(500, 4, 2))
    pred = np.broadcast_to(true.mean(axis=(0, 1)), true.shape)
    assert np.allclose(fm.nrmse_per_step(pred, true, scale=true.reshape(-1, 2).std(axis=0)).mean(), 1.0, atol=0.05)


def test_valid_prediction_time_is_time_before_first_exceedance():
    assert fm.valid_prediction_time([0.1, 0.3, 0.5, 0.2], threshold=0.4) == 2.0  # steps 1, 2 valid
    assert fm.valid_prediction_time([0.5, 0.1], threshold=0.4, dt=0.05) == 0.0
    assert fm.valid_prediction_time([0.1, 0.4, 0.39], threshold=0.4, dt=0.5) == 1.5  # never strictly above
    assert np.allclose(fm.valid_prediction_time([[0.1, 0.9], [0.9, 0.9]], dt=2.0), [2.0, 0.0])


def test_shape_mismatch_is_refused():
    with pytest.raises(ValueError, match="shapes differ"):
        fm.mse(PRED, TRUE[:, :2])
