"""Test set-up: the backend comes from KERAS_BACKEND (torch unless set), chosen before keras loads;
plus the free ports, local servers and small series that several test modules need."""

import os

os.environ.setdefault("KERAS_BACKEND", "torch")

import signal  # noqa: E402
import socket  # noqa: E402
import subprocess  # noqa: E402
import time  # noqa: E402
import urllib.request  # noqa: E402

import keras  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import pytest  # noqa: E402


@pytest.fixture(autouse=True)
def _seeded():
    """Every test starts from the same random state, so failures reproduce."""
    keras.utils.set_random_seed(1234)
    yield


@pytest.fixture
def backend() -> str:
    return keras.backend.backend()


def _unused_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture
def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listened on a moment ago."""
    return _unused_port()


@pytest.fixture
def serve(tmp_path):
    """`serve(name, command, **popen)` starts `command(port)` on a free port, waits until
    http://127.0.0.1:port/health answers and returns the port; teardown stops every server's
    whole process group (uvicorn workers included). Output goes to tmp_path/<name>.log."""
    started = []

    def start(name: str, command, **popen) -> int:
        port = _unused_port()
        log_path = tmp_path / f"{name}.log"
        log = log_path.open("w")
        server = subprocess.Popen(command(port), stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
                                  **popen)
        started.append((server, log))
        deadline = time.monotonic() + 180  # imports and a new store's migrations are slow on a busy machine
        while True:
            if server.poll() is not None:
                pytest.fail(f"{name} exited with {server.returncode}:\n{log_path.read_text()}")
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=2).close()
                return port
            except OSError:
                if time.monotonic() > deadline:
                    pytest.fail(f"{name} did not answer /health:\n{log_path.read_text()}")
                time.sleep(0.5)

    yield start
    for server, log in started:
        try:
            os.killpg(server.pid, signal.SIGTERM)
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(server.pid, signal.SIGKILL)
            server.wait(timeout=30)
        except ProcessLookupError:
            pass
        log.close()


@pytest.fixture
def series_csv(tmp_path):
    """A CSV for `seqattn forecast --dataset csv:PATH`: 1500 hourly rows of two noisy periodic
    channels, about 20 batches an epoch, so a training command takes seconds."""
    path = tmp_path / "series.csv"
    t = np.arange(1500)
    noise = np.random.default_rng(0).normal(scale=0.1, size=(len(t), 2))
    pd.DataFrame({
        "date": pd.date_range("2021-01-01", periods=len(t), freq="h").strftime("%Y-%m-%d %H:%M:%S"),
        "load": np.sin(t / 4) + noise[:, 0],
        "OT": np.cos(t / 6) + 0.3 * np.sin(t / 3) + noise[:, 1],
    }).to_csv(path, index=False)
    return path


@pytest.fixture
def mlflow_restored(monkeypatch):
    """Leave MLflow's process-wide state as the test found it: mlflow.set_tracking_uri and
    set_experiment export MLFLOW_TRACKING_URI and MLFLOW_EXPERIMENT_ID, which would leak into
    other tests and their subprocesses; the test starts without them, with no active experiment,
    and ends with no active run."""
    import mlflow

    for name in ("MLFLOW_TRACKING_URI", "MLFLOW_EXPERIMENT_ID"):
        monkeypatch.delenv(name, raising=False)  # and monkeypatch puts back what was there
    monkeypatch.setattr(mlflow.tracking.fluent, "_active_experiment_id", None)
    yield
    while mlflow.active_run() is not None:
        mlflow.end_run()
    mlflow.set_tracking_uri(None)
