"""Bad input tried systematically: every option of every part, and of `python sequence_attention.py`,
with invalid values.

Each case must end in one error line that names the option, file or row, a non-zero exit (2 from
argparse, 1 from a ConfigError/DataError/TrackingError), no traceback, and no results.json. The
options are read from the parsers themselves: an option without a case here fails
`test_every_option_has_a_bad_input_case`. Cases run in-process (`cli.main`), since each would
otherwise pay a Python start with keras; a few run as real commands to see the real stderr.

Faults of several processes are a table too, `PROCESS_FAULTS`, run as real commands:
processes started at once on a new store, the same command twice, the owner of a run killed.
"""

import argparse
import os
import signal
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import keras
import mlflow
import numpy as np
import pytest

from seqattn import cli, study, training
from seqattn.data.windows import Series, fraction_borders, make_windows
from seqattn.errors import DataError
from seqattn.experiments import video

UNREACHABLE = "http://127.0.0.1:9"  # the discard port: nothing listens there
ROOT = Path(__file__).resolve().parents[1]
# The checkpoint fixture is saved before it is ever trained; loading it says so.
pytestmark = pytest.mark.filterwarnings("ignore:Skipping variable loading for optimizer")


@dataclass(frozen=True)
class Case:
    """`seqattn <part> [mode] <args>` must exit with `code` and one error line containing `expected`.

    part: attention, forecast, video, or study (python sequence_attention.py). `{name}` in args and
    expected is replaced by the path of the fixture file `name` (see `bad_files`).
    """

    part: str
    option: str  # the option this case gives a bad value, as the parser spells it
    args: tuple
    expected: str
    code: int = 2
    mode: tuple = ()  # video's positional mode, before the options

    @property
    def id(self) -> str:
        return f"{self.part}{''.join(' ' + m for m in self.mode)} {' '.join(self.args)}"


def _value(option: str, value: str) -> tuple:
    """`--opt=-inf`: argparse reads a separate '-inf' as an option, not a value."""
    return (f"{option}={value}",) if value.startswith("-") else (option, value)


def _common(part: str) -> list[Case]:
    """The options `cli.add_common_arguments` gives every part."""
    bad_seed = "must be an integer in [0, 4294967295]"
    return [
        Case(part, "--backend", ("--backend", "theano"), "argument --backend: invalid choice: 'theano'"),
        Case(part, "--profile", ("--profile", "huge"), "argument --profile: invalid choice: 'huge'"),
        *(Case(part, "--seeds", _value("--seeds", value), f"argument --seeds: {bad_seed}; got '{value}'")
          for value in ("-1", "nan", "inf", "-inf", "1.5", "x", "4294967296")),
        Case(part, "--distribute", ("--distribute", "everywhere"), "argument --distribute: invalid choice"),
        Case(part, "--out", ("--out", "{text_file}/out"), "output folder '{text_file}/out", code=1),
        Case(part, "--tracking-uri", ("--tracking-uri", UNREACHABLE),
             f"MLflow tracking server {UNREACHABLE} is unreachable", code=1),
    ]


def _ints(part: str, option: str, values=("nan", "inf", "-inf", "x", "2.5")) -> list[Case]:
    """Non-integers, which argparse's int type rejects when parsing."""
    return [Case(part, option, _value(option, value), f"argument {option}: ") for value in values]


def _attention() -> list[Case]:
    cases = []
    for option in ("--epochs", "--n-pairs", "--num-heads"):
        cases += _ints("attention", option)
        cases += [Case("attention", option, _value(option, value),
                       f"{option} must be a positive integer; got {value}", 1) for value in ("0", "-3")]
    return cases + [
        Case("attention", "--num-heads", ("--num-heads", "3"), "--num-heads 3 must divide d_model=32", 1),
        Case("attention", "--n-pairs", ("--n-pairs", "99"), "--n-pairs 99 exceeds the 16 distinct keys", 1),
        # Stores MLflow cannot open: it says why, in its own words, after the URI.
        Case("attention", "--tracking-uri", ("--tracking-uri", "ftp://example.org/runs"),
             "MLflow, tracking URI 'ftp://example.org/runs': ", 1),
        Case("attention", "--tracking-uri", ("--tracking-uri", "{folder}"),
             "MLflow, tracking URI '{folder}': The filesystem tracking backend", 1),
        # SQLite's own error, under MLflow's SQL store, is one line too.
        Case("attention", "--tracking-uri", ("--tracking-uri", "sqlite:///{text_file}"),
             "MLflow, tracking URI 'sqlite:///{text_file}': (sqlite3.DatabaseError) file is not a database", 1),
    ]


def _forecast() -> list[Case]:
    cases = [
        Case("forecast", "--dataset", ("--dataset", "weather"), "argument --dataset: must be one of"),
        Case("forecast", "--dataset", ("--dataset", "csv:"), "argument --dataset: must be one of"),
        Case("forecast", "--dataset", ("--dataset", "csv:{missing}"), "{missing}: cannot be read", 1),
        Case("forecast", "--dataset", ("--dataset", "csv:{folder}"), "{folder}: cannot be read", 1),
        Case("forecast", "--dataset", ("--dataset", "csv:{csv_nan}"),
             "{csv_nan}: line 3, column 'load': 'nan' is not a finite number", 1),
        Case("forecast", "--dataset", ("--dataset", "csv:{csv_inf}"),
             "{csv_inf}: line 4, column 'OT': '-inf' is not a finite number", 1),
        Case("forecast", "--dataset", ("--dataset", "csv:{csv_no_date}"), "{csv_no_date}: line 1: missing column(s) "
             "['date']", 1),
        Case("forecast", "--dataset", ("--dataset", "csv:{csv_text}"),
             "{csv_text}: line 5, column 'load': non-numeric value 'high'", 1),
        # Valid options, but the file is too short for them: reported before any model is built.
        Case("forecast", "--horizon", ("--dataset", "csv:{csv_good}", "--horizon", "500"),
             "csv_good.csv: too few rows for L + H = 96 + 500", 1),
        Case("forecast", "--features", ("--features", "X"), "argument --features: invalid choice: 'X'"),
        Case("forecast", "--rnn", ("--rnn", "transformer"), "argument --rnn: invalid choice: 'transformer'"),
        Case("forecast", "--decoding", ("--decoding", "beam"), "argument --decoding: invalid choice: 'beam'"),
        Case("forecast", "--normalisation", ("--normalisation", "batch"),
             "argument --normalisation: invalid choice: 'batch'"),
        Case("forecast", "--models", ("--models", "hybrid", "arima"), "argument --models: invalid choice: 'arima'"),
    ]
    for option in ("--lookback", "--horizon", "--epochs", "--segment", "--key-segment"):
        cases += _ints("forecast", option, values=("nan", "inf", "-inf", "x", "2.5"))
        cases += [Case("forecast", option, _value(option, value),
                       f"{option} must be a positive integer; got {value}", 1) for value in ("0", "-1")]
    return cases


def _video() -> list[Case]:
    cases = [
        Case("video", "mode", (), "argument mode: invalid choice: 'fly'", mode=("fly",)),
        Case("video", "--models", ("--models", "tap", "prednet"), "argument --models: invalid choice: 'prednet'"),
        Case("video", "--rnn", ("--rnn", "tcn"), "argument --rnn: invalid choice: 'tcn'"),
        Case("video", "--stages", ("--stages", "1"), "--stages must be at least 2 (teacher forcing, then closed loop)", 1),
        Case("video", "--test-sequences", ("--test-sequences", "1"),
             "--test-sequences must be at least 2 for the paired H-TAP vs TAP comparison; got 1", 1),
        Case("video", "--layout", ("--layout", "hwnt"), "argument --layout: invalid choice: 'hwnt'"),
        Case("video", "--eval-length", ("--context", "10", "--eval-length", "10"),
             "--eval-length 10 must exceed --context 10: nothing to predict", 1),
        Case("video", "--mnist", ("--mnist", "{missing}"), "MNIST path '{missing}' does not exist", 1),
        Case("video", "--mnist", ("--mnist", "{folder}"), "MNIST folder '{folder}' holds neither", 1),
        Case("video", "--mnist", ("--mnist", "{text_file}"), "MNIST path '{text_file}' is neither", 1),
        Case("video", "--mnist", ("--mnist", "{idx_truncated}"),
             "MNIST file '{idx_truncated}' has 1000 bytes, expected 7840016", 1),
        Case("video", "--checkpoint", ("--checkpoint", "{missing}", "--test-set", "{npy_nan}"),
             "--checkpoint '{missing}' does not exist", 1, ("evaluate",)),
        Case("video", "--checkpoint", ("--checkpoint", "{folder}", "--test-set", "{npy_nan}"),
             "--checkpoint '{folder}' is not a file", 1, ("evaluate",)),
        Case("video", "--checkpoint", ("--checkpoint", "{corrupt_keras}", "--test-set", "{npy_nan}"),
             "--checkpoint '{corrupt_keras}' is not a readable .keras model", 1, ("evaluate",)),
        Case("video", "--checkpoint", ("--checkpoint", "{dense_keras}", "--test-set", "{npy_nan}"),
             "--checkpoint '{dense_keras}' holds a Sequential, not a TAP, H-TAP or ConvLSTM video model", 1,
             ("evaluate",)),
        Case("video", "--test-set", ("--checkpoint", "{checkpoint}", "--test-set", "{missing}"),
             "sequence file '{missing}' does not exist", 1, ("evaluate",)),
        Case("video", "--test-set", ("--checkpoint", "{checkpoint}", "--test-set", "{folder}"),
             "sequence file '{folder}' does not exist", 1, ("evaluate",)),
        Case("video", "--test-set", ("--checkpoint", "{checkpoint}", "--test-set", "{text_file}"),
             "sequence file '{text_file}' cannot be read without pickle", 1, ("evaluate",)),
        Case("video", "--test-set", ("--checkpoint", "{checkpoint}", "--test-set", "{npy_3d}"),
             "sequence file '{npy_3d}' has shape (3, 9, 64), expected 4 axes", 1, ("evaluate",)),
        Case("video", "--test-set", ("--checkpoint", "{checkpoint}", "--test-set", "{npy_small_frames}",
                                     "--layout", "nthw"),
             "sequence file '{npy_small_frames}' has 32x32 frames, the model expects 64x64", 1, ("evaluate",)),
        Case("video", "--test-set", ("--checkpoint", "{checkpoint}", "--test-set", "{npy_nan}", "--layout", "nthw"),
             "sequence file '{npy_nan}' holds float values in [nan, nan] (or NaN)", 1, ("evaluate",)),
        Case("video", "--test-set", ("--checkpoint", "{checkpoint}", "--test-set", "{npy_inf}", "--layout", "nthw"),
             "sequence file '{npy_inf}' holds float values in [0.0, inf]", 1, ("evaluate",)),
        Case("video", "--context", ("--checkpoint", "{checkpoint}", "--test-set", "{npy_nan}", "--context", "0"),
             "--context must be a positive integer; got 0", 1, ("evaluate",)),
    ]
    for option in ("--epochs", "--stages", "--train-sequences", "--batch-size", "--test-sequences", "--context",
                   "--horizon", "--eval-length"):
        cases += _ints("video", option)
        cases += [Case("video", option, _value(option, value),
                       f"{option} must be a positive integer; got {value}", 1) for value in ("0", "-2")]
    return cases


def _study() -> list[Case]:
    return [Case("study", "--parts", ("--parts", "attention", "audio"), "argument --parts: invalid choice: 'audio'")]


def _parsers() -> dict[str, argparse.ArgumentParser]:
    parsers = {"study": study.build_parser()}
    for part in cli.PARTS:
        parser = argparse.ArgumentParser()
        cli.add_common_arguments(parser)
        cli.load_part(part).add_arguments(parser)
        parsers[part] = parser
    return parsers


def _option_names(parser: argparse.ArgumentParser) -> set[str]:
    return {action.option_strings[0] if action.option_strings else action.dest
            for action in parser._actions if not isinstance(action, argparse._HelpAction)}


def _flags() -> list[Case]:
    """On/off flags take no value: `--flag=yes` is an error. Read from the parsers, as flags come and go."""
    return [Case(part, action.option_strings[0], (f"{action.option_strings[0]}=yes",),
                 "ignored explicit argument 'yes'")
            for part, parser in _parsers().items() for action in parser._actions
            if action.nargs == 0 and not isinstance(action, argparse._HelpAction)]


CASES = [case for part in ("attention", "forecast", "video", "study") for case in _common(part)]
CASES += _attention() + _forecast() + _video() + _study() + _flags()


def test_every_option_has_a_bad_input_case():
    for part, parser in _parsers().items():
        covered = {case.option for case in CASES if case.part == part}
        assert _option_names(parser) - covered == set(), f"{part}: options without a bad-input case"


# ----------------------------------------------------------------------------- fixture files


@pytest.fixture(scope="module")
def bad_files(tmp_path_factory) -> dict[str, Path]:
    """name -> path of every file the cases use, good (a checkpoint, a CSV) and bad."""
    root = tmp_path_factory.mktemp("bad_input")
    files = {"missing": root / "missing.csv", "folder": root / "folder", "text_file": root / "notes.txt"}
    files["folder"].mkdir()
    files["text_file"].write_text("not data\n")

    header = "date,load,OT\n"
    rows = [f"2024-01-01 {h:02d}:00,{h}.5,{h}.25\n" for h in range(24)]
    csvs = {
        "csv_good": header + "".join(rows),
        "csv_nan": header + rows[0] + rows[1].replace(",1.5,", ",nan,") + "".join(rows[2:]),
        "csv_inf": header + "".join(rows[:2]) + rows[2].replace(",2.25", ",-inf") + "".join(rows[3:]),
        "csv_no_date": header.replace("date", "time") + "".join(rows),
        "csv_text": header + "".join(rows[:3]) + rows[3].replace(",3.5,", ",high,") + "".join(rows[4:]),
    }
    for name, text in csvs.items():
        files[name] = root / f"{name}.csv"
        files[name].write_text(text)

    # A valid IDX header for 10,000 images of 28x28 (magic 2051), then the file stops after 984 bytes.
    idx = root / "mnist" / "t10k-images-idx3-ubyte"
    idx.parent.mkdir()
    idx.write_bytes(np.array([2051, 10_000, 28, 28], dtype=">u4").tobytes() + bytes(984))
    files["idx_truncated"] = idx

    files["corrupt_keras"] = root / "corrupt.keras"
    files["corrupt_keras"].write_bytes(b"PK\x03\x04 but not a zip archive")
    config = video.VideoConfig(models=("convlstm",), context=4, convlstm_horizon=2, convlstm_filters=(2,))
    files["dense_keras"] = root / "dense.keras"
    keras.Sequential([keras.Input((2,)), keras.layers.Dense(1)]).save(files["dense_keras"])
    files["checkpoint"] = root / "convlstm.keras"
    video.build_model("convlstm", config).save(files["checkpoint"])

    frames = np.zeros((3, 9, 64, 64), np.float32)  # (N, T, H, W)
    arrays = {"npy_3d": frames[..., 0], "npy_small_frames": frames[:, :, :32, :32],
              "npy_nan": frames.copy(), "npy_inf": frames.copy()}
    arrays["npy_nan"][1, 5, 10, 20] = np.nan
    arrays["npy_inf"][2, 7, 0, 0] = np.inf
    for name, array in arrays.items():
        files[name] = root / f"{name}.npy"
        np.save(files[name], array)
    return files


def _no_training(*args, **kwargs):
    raise AssertionError("training started before the bad input was reported")


@pytest.fixture
def isolated(tmp_path, monkeypatch, mlflow_restored):
    """A fresh output folder and store, no training allowed; MLflow's state restored (conftest)."""
    monkeypatch.setattr(training, "fit", _no_training)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("SEQATTN_CACHE_DIR", str(tmp_path / "cache"))
    return tmp_path


def _fill(text: str, files: dict[str, Path]) -> str:
    return text.format(**{name: str(path) for name, path in files.items()})


def _argv(case: Case, files: dict[str, Path], tmp_path: Path) -> list[str]:
    common = ["--out", str(tmp_path / "out"), "--tracking-uri", f"sqlite:///{tmp_path}/mlflow.db"]
    head = [] if case.part == "study" else [case.part, *case.mode]
    return head + common + [_fill(arg, files) for arg in case.args]


def _exit_code(main, argv) -> int:
    try:
        return main(argv)
    except SystemExit as stop:  # argparse's usage errors
        return stop.code


def _check_one_error_line(stderr: str, expected: str, tmp_path: Path) -> None:
    """One error line holding `expected`, and nothing written under `tmp_path`: no results, and no
    output folder."""
    assert "Traceback" not in stderr
    errors = [line for line in stderr.splitlines() if "error:" in line]
    assert len(errors) == 1, stderr
    assert expected in errors[0], stderr
    lines = stderr.strip().splitlines()
    # Our own errors are the only line; argparse's come after its usage lines.
    assert lines[-1] == errors[0], stderr
    assert not list(tmp_path.rglob("results.json"))
    assert not (tmp_path / "out").exists(), "a folder was made before the input was checked"


@pytest.mark.parametrize("case", CASES, ids=lambda case: case.id)
def test_bad_input_is_one_error_line_and_no_results(case, bad_files, isolated, capsys):
    main = study.main if case.part == "study" else cli.main
    code = _exit_code(main, _argv(case, bad_files, isolated))
    captured = capsys.readouterr()
    assert code == case.code, captured.err
    _check_one_error_line(captured.err, _fill(case.expected, bad_files), isolated)
    if case.code == 1:
        assert captured.err.strip().count("\n") == 0, captured.err


# ----------------------------------------------------------------------------- as real commands


@pytest.mark.parametrize("command, expected, code, alone", [
    (["-m", "seqattn.cli", "attention", "--tracking-uri", UNREACHABLE],
     f"seqattn: error: MLflow tracking server {UNREACHABLE} is unreachable (", 1, True),
    # After seeding, which imports TensorFlow (silenced by seqattn.backend.select_backend).
    (["-m", "seqattn.cli", "forecast", "--dataset", "csv:{csv_nan}"],
     "seqattn: error: {csv_nan}: line 3, column 'load': 'nan' is not a finite number", 1, True),
    (["sequence_attention.py", "--seeds", "nan"],
     "python sequence_attention.py: error: argument --seeds: must be an integer in [0, 4294967295]; got 'nan'",
     2, False),
], ids=["unreachable-tracking-server", "csv-with-nan", "study-seed-nan"])
def test_bad_input_from_a_real_command(command, expected, code, alone, bad_files, tmp_path):
    """The real stderr of the real entry points. The dead server's message is our check's (5 s timeout),
    not MLflow's, which comes after minutes of retries."""
    command = [_fill(arg, bad_files) for arg in command]
    result = subprocess.run(
        [sys.executable, *command, "--out", str(tmp_path / "out")],
        cwd=ROOT if command[0].endswith(".py") else tmp_path,
        capture_output=True, text=True, timeout=600,  # a hang guard: these cores are shared with long runs
        env={**os.environ, "MLFLOW_TRACKING_URI": f"sqlite:///{tmp_path}/mlflow.db"},
    )
    assert result.returncode == code, result.stderr
    _check_one_error_line(result.stderr, _fill(expected, bad_files), tmp_path)
    assert result.stderr.strip().splitlines()[-1].startswith(_fill(expected, bad_files))
    if alone:
        assert len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert not (tmp_path / "mlflow.db").exists()  # nothing was logged


# ----------------------------------------------------------------------------- several processes


FAULT_EPOCHS = 3


def _forecast(seed: int, data: Path) -> list[str]:
    """A forecast of a few seconds' training, logged to the default store, mlflow.db in the cwd."""
    return [sys.executable, "-m", "seqattn.cli", "forecast", "--dataset", f"csv:{data}", "--lookback", "24",
            "--horizon", "12", "--models", "hybrid", "--epochs", str(FAULT_EPOCHS), "--seeds", str(seed),
            "--out", f"out{seed}"]


def _start(command: list[str], folder: Path, name: str) -> subprocess.Popen:
    """`command` in `folder`, stdout piped (to follow the epochs), stderr to folder/name.err."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("MLFLOW_")}
    env.update(PYTHONUNBUFFERED="1", SEQATTN_CACHE_DIR=str(folder / "cache"))
    with open(folder / f"{name}.err", "w") as err:
        return subprocess.Popen(command, cwd=folder, env=env, stdout=subprocess.PIPE, stderr=err, text=True)


def _finish(process: subprocess.Popen, folder: Path, name: str) -> tuple[int, str, str]:
    """(exit code, stdout, stderr) once `process` ends."""
    out = process.stdout.read()
    code = process.wait(timeout=600)  # a hang guard: these cores are shared with long runs
    return code, out, (folder / f"{name}.err").read_text()


def _wait_for(process: subprocess.Popen, line_start: str) -> None:
    for line in process.stdout:
        if line.startswith(line_start):
            return
    pytest.fail(f"the command ended (exit {process.wait()}) before printing {line_start!r}")


def _check_store(folder: Path, commands: int) -> None:
    """`commands` forecasts recorded once each: a FINISHED parent run with one FINISHED model run,
    whose every metric holds each step once and whose loss holds every epoch."""
    client = mlflow.MlflowClient(f"sqlite:///{folder / 'mlflow.db'}")
    experiment = client.get_experiment_by_name("seqattn-part2-forecast")
    runs = client.search_runs([experiment.experiment_id])
    assert [r.info.status for r in runs] == ["FINISHED"] * 2 * commands
    parents = {r.info.run_id for r in runs if "mlflow.parentRunId" not in r.data.tags}
    children = [r for r in runs if r.info.run_id not in parents]
    assert len(parents) == commands and sorted(r.data.tags["mlflow.parentRunId"] for r in children) == sorted(parents)
    for run in runs:
        for name in run.data.metrics:
            steps = [m.step for m in client.get_metric_history(run.info.run_id, name)]
            assert len(steps) == len(set(steps)), (run.info.run_name, name, steps)
    for run in children:
        assert sorted(m.step for m in client.get_metric_history(run.info.run_id, "loss")) == list(range(FAULT_EPOCHS))
    assert not list(folder.rglob("*.lock"))  # every lock released


def _new_store_four_at_once(data: Path, folder: Path) -> None:
    """Four commands started together where no store exists yet: one creates and migrates it
    (MLflow would in each, and all but one failed with `duplicate column name: step`)."""
    processes = [_start(_forecast(seed, data), folder, f"p{seed}") for seed in range(4)]
    for seed, process in enumerate(processes):
        code, _, err = _finish(process, folder, f"p{seed}")
        assert code == 0 and "Traceback" not in err, err
    _check_store(folder, commands=4)


def _same_command_twice(data: Path, folder: Path) -> None:
    """The second of two identical commands stops at once, naming the first one's pid; the first
    trains alone, and its MLflow run holds every epoch once."""
    first = _start(_forecast(0, data), folder, "first")
    try:
        _wait_for(first, f"Epoch 2/{FAULT_EPOCHS}")
        first.send_signal(signal.SIGSTOP)  # holds its run, mid-training, until the second one is done
        code, out, err = _finish(_start(_forecast(0, data), folder, "second"), folder, "second")
    finally:
        first.send_signal(signal.SIGCONT)
    assert code == 1, err
    assert "Epoch" not in out  # trained nothing
    assert err.strip().splitlines() == [f"seqattn: error: out0/forecast is in use by seqattn process {first.pid}: "
                                        "wait for it to end, or stop it, then rerun"], err
    code, out, err = _finish(first, folder, "first")
    assert code == 0, err
    _check_store(folder, commands=1)


def _owner_killed_then_rerun(data: Path, folder: Path) -> None:
    """kill -9 leaves the lock file behind, naming a dead process: the rerun takes the run over
    and resumes it, in the same MLflow run."""
    first = _start(_forecast(0, data), folder, "first")
    _wait_for(first, f"Epoch 2/{FAULT_EPOCHS}")
    first.send_signal(signal.SIGKILL)
    assert _finish(first, folder, "first")[0] == -signal.SIGKILL
    assert (folder / "out0" / "forecast" / "owner.lock").read_text() == f"{first.pid}\n"
    code, out, err = _finish(_start(_forecast(0, data), folder, "rerun"), folder, "rerun")
    assert code == 0, err
    assert "Epoch 1/" not in out and f"Epoch {FAULT_EPOCHS}/{FAULT_EPOCHS}" in out, out  # resumed, to the end
    _check_store(folder, commands=1)


PROCESS_FAULTS = {
    "new-store-four-at-once": _new_store_four_at_once,
    "same-command-twice": _same_command_twice,
    "owner-killed-then-rerun": _owner_killed_then_rerun,
}


@pytest.mark.slow
@pytest.mark.parametrize("fault", PROCESS_FAULTS)
def test_several_processes_each_run_trains_once(fault, series_csv, tmp_path):
    PROCESS_FAULTS[fault](series_csv, tmp_path)


# ----------------------------------------------------------------------------- non-finite series


@pytest.mark.parametrize("row, column, value, shown", [(3, 0, np.nan, "nan"), (13, 1, np.inf, "inf"),
                                                        (19, 1, -np.inf, "-inf")])
def test_windows_of_a_series_with_nan_or_inf_name_its_row_and_column(row, column, value, shown):
    """Series that do not come from a checked CSV (chaotic generators, a caller's array) are checked too."""
    values = np.arange(40, dtype=np.float64).reshape(20, 2)
    values[row, column] = value
    series = Series("lorenz", values, ("x", "y"), fraction_borders(20))
    name = series.columns[column]
    with pytest.raises(DataError, match=rf"^lorenz: row {row} \(0-based\), column '{name}': {shown} is not a finite "):
        make_windows(series, 2, 1)
