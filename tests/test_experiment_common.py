"""The steps every part shares: positive-integer options, config tags, outputs."""

import argparse
import json

import mlflow
import pytest

from seqattn.errors import ConfigError
from seqattn.experiments.common import PositiveInt, config_tag, write_outputs


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(exit_on_error=False)
    parser.add_argument("--epochs", action=PositiveInt)
    parser.add_argument("--lookback", action=PositiveInt, nargs="+")
    return parser


def test_positive_int_options_are_checked_when_parsed():
    args = _parser().parse_args(["--epochs", "3", "--lookback", "96", "192"])
    assert args.epochs == 3 and args.lookback == [96, 192]
    assert _parser().parse_args([]).epochs is None  # absent: the profile decides
    with pytest.raises(ConfigError, match=r"^--epochs must be a positive integer; got 0$"):
        _parser().parse_args(["--epochs", "0"])
    with pytest.raises(ConfigError, match=r"^--lookback must be a positive integer; got -2$"):
        _parser().parse_args(["--lookback", "96", "--lookback=-2"])
    with pytest.raises(argparse.ArgumentError, match="invalid int value: '1.5'"):
        _parser().parse_args(["--epochs", "1.5"])


def test_config_tag_depends_on_the_options_not_on_their_order():
    assert config_tag({"a": 1, "b": (2, 3)}) == config_tag({"b": [2, 3], "a": 1})
    assert config_tag({"a": 1}) != config_tag({"a": 2})
    assert len(config_tag(["codec", {"a": 1}])) == 8


def test_write_outputs_writes_both_files_and_logs_them_with_the_figures(tmp_path, mlflow_restored):
    figure = tmp_path / "figure.png"
    figure.write_bytes(b"png")
    mlflow.set_tracking_uri(f"sqlite:///{tmp_path}/mlflow.db")
    mlflow.set_experiment("write-outputs")  # not an experiment id another test left active
    with mlflow.start_run() as run:
        write_outputs(tmp_path, {"mse": 0.5}, "# table\n", [figure])
    assert json.loads((tmp_path / "results.json").read_text()) == {"mse": 0.5}
    assert (tmp_path / "results.md").read_text() == "# table\n"
    logged = {a.path for a in mlflow.MlflowClient().list_artifacts(run.info.run_id)}
    assert logged == {"figure.png", "results.json", "results.md"}
