"""Progress bars: drawn on a terminal, silent in logs and with --quiet, around the steps a user
waits on (Part 2's test predictions here; sweeps and benchmarks use the same helper)."""

import argparse
import io
import os
import subprocess
import sys

import keras
import numpy as np
import pytest

from seqattn import cli, progress, study
from seqattn.experiments import forecast


class Terminal(io.StringIO):
    """A stream that says it is a terminal, as stderr does in an interactive shell."""

    def isatty(self):
        return True


@pytest.fixture(autouse=True)
def _not_quiet(monkeypatch):
    """Bars on, and $SEQATTN_QUIET put back as it was after the test (set_quiet writes it)."""
    monkeypatch.setenv(progress.QUIET_ENV, "")


def test_a_bar_is_drawn_on_a_terminal_and_nothing_in_a_log(monkeypatch):
    terminal = Terminal()
    monkeypatch.setattr(sys, "stderr", terminal)
    assert list(progress.progress(range(3), "test windows")) == [0, 1, 2]
    assert "test windows:" in terminal.getvalue() and "/3 [" in terminal.getvalue()  # desc, n/total

    log = io.StringIO()  # a CI log, a file, a pipe
    monkeypatch.setattr(sys, "stderr", log)
    assert list(progress.progress(range(3), "test windows")) == [0, 1, 2]
    with progress.progress(total=5, desc="rollouts") as bar:
        bar.update(5)
    assert log.getvalue() == ""


def test_quiet_silences_the_terminal_too_and_is_inherited_by_child_processes(monkeypatch):
    terminal = Terminal()
    monkeypatch.setattr(sys, "stderr", terminal)
    progress.set_quiet(False)
    assert not progress.is_quiet()
    progress.set_quiet(True)
    assert list(progress.progress(range(3), "test windows")) == [0, 1, 2]
    assert terminal.getvalue() == ""
    child = subprocess.run([sys.executable, "-c", "from seqattn import progress; print(progress.is_quiet())"],
                           capture_output=True, text=True, env=dict(os.environ), check=True)
    assert child.stdout.strip() == "True"


def test_quiet_is_a_common_option_of_every_part_and_reaches_the_parts_of_the_study():
    parser = argparse.ArgumentParser()
    cli.add_common_arguments(parser)  # what every `seqattn <part>` parser starts from
    assert parser.parse_args(["--quiet"]).quiet is True and parser.parse_args([]).quiet is False
    assert cli.parse_arguments(["forecast", "--quiet"], cli.build_parser).quiet is True
    args = cli.parse_arguments(["--quiet", "--parts", "attention"], study.build_parser)
    assert study.part_arguments("attention", args).quiet is True


def test_forecast_predictions_show_progress_and_equal_keras_predict(monkeypatch):
    keras.utils.set_random_seed(0)
    model = forecast.build_model("dlinear", forecast.PROFILES["quick"], lookback=24, horizon=6)
    x = np.random.default_rng(0).normal(size=(70, 24, 3)).astype("float32")
    terminal = Terminal()
    monkeypatch.setattr(sys, "stderr", terminal)
    got = forecast.predict(model, x, "hybrid: test windows", batch_size=32)
    np.testing.assert_allclose(got, model.predict(x, batch_size=32, verbose=0), rtol=1e-6, atol=1e-6)
    assert "hybrid: test windows:" in terminal.getvalue() and "/3 [" in terminal.getvalue()  # 32 + 32 + 6
