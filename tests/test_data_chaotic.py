"""Mackey-Glass and Lorenz-63: deterministic per seed, and the known properties of each attractor."""

import numpy as np
import pytest

from seqattn.data.chaotic import lorenz63, mackey_glass


@pytest.fixture(scope="module")
def mg():
    return mackey_glass(2000, seed=0)


@pytest.fixture(scope="module")
def lorenz():
    return lorenz63(4000, seed=0)


def test_same_seed_same_series_other_seed_other_series(mg):
    assert np.array_equal(mackey_glass(300, seed=0), mg[:300])
    assert not np.allclose(mackey_glass(300, seed=1), mg[:300])
    assert np.array_equal(lorenz63(50, seed=3), lorenz63(50, seed=3))
    assert not np.allclose(lorenz63(50, seed=3), lorenz63(50, seed=4))


def test_mackey_glass_stays_on_its_attractor(mg):
    # tau=17 attractor: values within about [0.4, 1.35], mean ~0.9, std ~0.23 (e.g. Jaeger 2001).
    assert mg.shape == (2000,)
    assert 0.35 < mg.min() < 0.5 and 1.25 < mg.max() < 1.4
    assert 0.85 < mg.mean() < 0.95
    assert 0.2 < mg.std() < 0.26


def test_mackey_glass_quasi_period_near_50(mg):
    centred = mg - mg.mean()
    autocorr = np.array([np.dot(centred[:-k], centred[k:]) for k in range(1, 100)])
    assert 45 <= np.argmax(autocorr[30:80]) + 31 <= 55  # the well-known ~50-unit pseudo-period


def test_mackey_glass_sampling_is_one_per_time_unit():
    # Sampling every 0.5 units gives the same trajectory, with the 1-unit samples at even indices.
    half = mackey_glass(200, seed=2, sample_every=0.5)
    assert np.allclose(half[::2], mackey_glass(100, seed=2))


def test_mackey_glass_integrator_converges():
    # From the classical constant history x = 1.2, halving the RK4 step changes little.
    coarse = mackey_glass(300, initial=1.2, transient=0.0)
    fine = mackey_glass(300, initial=1.2, transient=0.0, dt=0.05)
    assert np.ptp(coarse) > 0.5  # it leaves the constant history and oscillates (about 0.4 to 1.3)
    assert np.max(np.abs(coarse - fine)) < 1e-3


def test_lorenz_attractor_bounds_and_mean(lorenz):
    x, y, z = lorenz.T
    assert lorenz.shape == (4000, 3)
    assert np.abs(x).max() < 21 and np.abs(y).max() < 29 and 0 < z.min() and z.max() < 50
    assert 22.0 < z.mean() < 25.0  # mean z ~23.5 on the attractor
    assert (x > 0).mean() > 0.2 and (x < 0).mean() > 0.2  # visits both wings


def test_lorenz_rk4_matches_a_finer_step():
    coarse = lorenz63(20, seed=0, dt=0.01, sample_dt=0.05, transient=0.0)
    fine = lorenz63(20, seed=0, dt=0.001, sample_dt=0.05, transient=0.0)
    assert np.max(np.abs(coarse - fine)) < 1e-3


def test_lorenz_nearby_states_separate_at_the_lyapunov_rate():
    # Pairs of states 1e-8 apart: the mean log distance grows by ~0.906 per time unit.
    starts = lorenz63(10, seed=0, sample_dt=1.0)
    t = np.arange(1, 240) * 0.05  # up to 12 time units, before the distance saturates
    log_distance = []
    for state in starts:
        a = lorenz63(240, initial=state, transient=0.0)
        b = lorenz63(240, initial=state + np.array([1e-8, 0.0, 0.0]), transient=0.0)
        log_distance.append(np.log(np.linalg.norm(a - b, axis=1)[1:]))
    slope = np.polyfit(t, np.mean(log_distance, axis=0), 1)[0]
    assert 0.7 < slope < 1.1
