"""Chaotic benchmark series generated locally: Mackey-Glass and Lorenz-63.

Mackey-Glass delay differential equation (Mackey & Glass, 1977), in the form used by the
reservoir-computing and forecasting literature (e.g. Jaeger & Haas, 2004):

    dx/dt = alpha x(t - tau) / (1 + x(t - tau)^beta) - gamma x(t),
    tau = 17, alpha = 0.2, beta = 10, gamma = 0.1   (chaotic; largest Lyapunov exponent ~0.006)

integrated by RK4 at dt = 0.1 with a history buffer (the delayed value at a half step is the mean
of its two neighbours on the grid), sampled once per time unit.

Lorenz-63 (Lorenz, 1963): dx/dt = sigma (y - x), dy/dt = x (rho - z) - y, dz/dt = x y - beta z,
sigma = 10, rho = 28, beta = 8/3 (largest Lyapunov exponent ~0.906, Sprott 2003), RK4 at
dt = 0.01, sampled every `sample_dt` time units.

Both start from a seed-dependent perturbation of a standard initial state and drop a transient,
so a seed gives the same series on every machine and different seeds give different series.
"""

import numpy as np

MACKEY_GLASS = {"tau": 17.0, "alpha": 0.2, "beta": 10.0, "gamma": 0.1}
LORENZ = {"sigma": 10.0, "rho": 28.0, "beta": 8.0 / 3.0}
LORENZ_LYAPUNOV = 0.906  # largest Lyapunov exponent of Lorenz-63 at the standard parameters


def mackey_glass(
    n_samples: int,
    *,
    seed: int = 0,
    tau: float = MACKEY_GLASS["tau"],
    alpha: float = MACKEY_GLASS["alpha"],
    beta: float = MACKEY_GLASS["beta"],
    gamma: float = MACKEY_GLASS["gamma"],
    dt: float = 0.1,
    sample_every: float = 1.0,
    transient: float = 1000.0,
    initial: float | None = None,
) -> np.ndarray:
    """`n_samples` values of x, one every `sample_every` time units after `transient`: (n_samples,).

    The history on [-tau, 0] is 1.2 plus seeded noise of std 0.1, or the constant `initial`.
    """
    if n_samples < 1:
        raise ValueError(f"n_samples must be positive; got {n_samples}")
    delay = int(round(tau / dt))  # steps of history the equation looks back
    stride = int(round(sample_every / dt))
    if abs(delay * dt - tau) > 1e-9 or abs(stride * dt - sample_every) > 1e-9:
        raise ValueError(f"dt={dt} must divide tau={tau} and sample_every={sample_every}")
    skip = int(round(transient / dt))
    n_steps = skip + (n_samples - 1) * stride
    rng = np.random.default_rng(seed)
    x = np.empty(delay + 1 + n_steps)
    x[: delay + 1] = 1.2 + 0.1 * rng.standard_normal(delay + 1) if initial is None else initial

    def f(x_now, x_delayed):
        return alpha * x_delayed / (1.0 + x_delayed**beta) - gamma * x_now

    for i in range(delay, delay + n_steps):
        lag_now, lag_next = x[i - delay], x[i - delay + 1]
        lag_half = 0.5 * (lag_now + lag_next)
        k1 = f(x[i], lag_now)
        k2 = f(x[i] + 0.5 * dt * k1, lag_half)
        k3 = f(x[i] + 0.5 * dt * k2, lag_half)
        k4 = f(x[i] + dt * k3, lag_next)
        x[i + 1] = x[i] + dt / 6.0 * (k1 + 2 * k2 + 2 * k3 + k4)
    return x[delay + skip :: stride][:n_samples].copy()


def lorenz63(
    n_samples: int,
    *,
    seed: int = 0,
    sigma: float = LORENZ["sigma"],
    rho: float = LORENZ["rho"],
    beta: float = LORENZ["beta"],
    dt: float = 0.01,
    sample_dt: float = 0.05,
    transient: float = 50.0,
    initial=None,
) -> np.ndarray:
    """`n_samples` states (x, y, z), one every `sample_dt` time units after `transient`: (n_samples, 3).

    Starts from (1, 1, 1) plus seeded standard normal noise, or from the state `initial`.
    """
    if n_samples < 1:
        raise ValueError(f"n_samples must be positive; got {n_samples}")
    stride = int(round(sample_dt / dt))
    if stride < 1 or abs(stride * dt - sample_dt) > 1e-9:
        raise ValueError(f"dt={dt} must divide sample_dt={sample_dt}")
    rng = np.random.default_rng(seed)
    state = np.array([1.0, 1.0, 1.0]) + rng.standard_normal(3) if initial is None else np.array(initial, float)

    def f(s):
        x, y, z = s
        return np.array([sigma * (y - x), x * (rho - z) - y, x * y - beta * z])

    def rk4(s):
        k1 = f(s)
        k2 = f(s + 0.5 * dt * k1)
        k3 = f(s + 0.5 * dt * k2)
        k4 = f(s + dt * k3)
        return s + dt / 6.0 * (k1 + 2 * k2 + 2 * k3 + k4)

    for _ in range(int(round(transient / dt))):
        state = rk4(state)
    out = np.empty((n_samples, 3))
    for n in range(n_samples):
        out[n] = state
        for _ in range(stride):
            state = rk4(state)
    return out
