"""Forecast errors, each defined once: every model and table goes through these functions.

Arrays are (N, H, C): N windows, H horizon steps, C channels, on the scale the protocol fixes
(standardised values for ETT, as in Informer and its successors).

- MSE, MAE: mean over windows, steps and channels.
- Per-step MSE/MAE: mean over windows and channels, one value per horizon step: (H,).
- NRMSE per step: sqrt(mean_{n,c} (pred - true)^2 / sigma_c^2), sigma_c the standard deviation of
  channel c (of the test series unless given), so 1.0 is the error of guessing the mean.
- Valid prediction time (Pathak et al., 2018, PRL 120, 024102): the time until the NRMSE first
  exceeds a threshold (0.4 here): (k - 1) * dt for the first 1-based step k above it, H * dt if
  it never does. Computed per window and averaged, or on any (..., H) NRMSE curve.
"""

import numpy as np

VPT_THRESHOLD = 0.4


def _pair(pred, true) -> tuple[np.ndarray, np.ndarray]:
    pred = np.asarray(pred, dtype=np.float64)
    true = np.asarray(true, dtype=np.float64)
    if pred.shape != true.shape:
        raise ValueError(f"pred and true shapes differ: {pred.shape} vs {true.shape}")
    return pred, true


def mse(pred, true) -> float:
    pred, true = _pair(pred, true)
    return float(np.mean((pred - true) ** 2))


def mae(pred, true) -> float:
    pred, true = _pair(pred, true)
    return float(np.mean(np.abs(pred - true)))


def per_step_errors(pred, true) -> dict[str, np.ndarray]:
    """{'mse': (H,), 'mae': (H,)} for (N, H, C) arrays."""
    pred, true = _pair(pred, true)
    err = pred - true  # (N, H, C)
    return {"mse": np.mean(err**2, axis=(0, 2)), "mae": np.mean(np.abs(err), axis=(0, 2))}


def nrmse_per_step(pred, true, scale=None, per_window: bool = False) -> np.ndarray:
    """Normalised RMSE per horizon step: (H,), or (N, H) with per_window.

    scale: per-channel standard deviation (C,); default the std of `true` over windows and steps.
    """
    pred, true = _pair(pred, true)
    if scale is None:
        scale = true.reshape(-1, true.shape[-1]).std(axis=0)
    scale = np.asarray(scale, dtype=np.float64)
    sq = ((pred - true) / scale) ** 2  # (N, H, C)
    axes = (2,) if per_window else (0, 2)
    return np.sqrt(np.mean(sq, axis=axes))


def valid_prediction_time(nrmse, threshold: float = VPT_THRESHOLD, dt: float = 1.0) -> np.ndarray | float:
    """Time before an NRMSE curve (..., H) first exceeds `threshold`: (...) in units of dt."""
    nrmse = np.asarray(nrmse, dtype=np.float64)
    above = nrmse > threshold
    steps = np.where(above.any(axis=-1), np.argmax(above, axis=-1), nrmse.shape[-1])  # valid steps
    out = steps * dt
    return float(out) if np.ndim(out) == 0 else out
