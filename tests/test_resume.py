"""A training interrupted mid-run (kill -9, Ctrl-C) resumes from its last epoch, in the same MLflow
runs, to the result an uninterrupted run gives, for the commands of Parts 1 and 2 (`training.fit`'s
own resume, early stopping included, is tested in test_tracking.py). Part 3 trains a codec, then
the transition in stages, each a resumable `training.fit` with its own checkpoint: its case kills
the command once the first stage is done and checks that the rerun keeps the codec and the first stage.

The interrupted command runs in a subprocess (a signal must hit a real process); the uninterrupted
reference and the rerun run in-process through `cli.main`, the same entry point, to save the
start-up of two more interpreters.
"""

import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import mlflow
import pytest

from seqattn import cli, training

EPOCHS = 4
KILL_AT = f"Epoch 3/{EPOCHS}"  # printed when epochs 1 and 2 are complete and backed up


# ----------------------------------------------------------------------------- the commands


@dataclass(frozen=True)
class Part:
    name: str
    experiment: str
    options: tuple[str, ...]

    def argv(self, out: Path, db: Path, data: Path) -> list[str]:
        options = [o.format(data=data) for o in self.options]
        return [self.name, *options, "--epochs", str(EPOCHS), "--seeds", "0", "--out", str(out),
                "--tracking-uri", f"sqlite:///{db}"]

    def metrics(self, results: dict) -> dict:
        """The numbers that must not move with an interruption (timings and the reference's own
        MLflow run id excluded)."""
        if self.name == "attention":
            return results["per_seed"]["0"]
        return {k: v for k, v in results["runs"][0].items() if k not in ("train_time_s", "dataset", "mlflow_run_id")}


PARTS = {
    "attention": Part("attention", "seqattn-part1-attention", ()),
    "forecast": Part("forecast", "seqattn-part2-forecast",
                     ("--dataset", "csv:{data}", "--lookback", "24", "--horizon", "12", "--models", "hybrid")),
}


@pytest.fixture
def environment(tmp_path, monkeypatch):
    monkeypatch.setenv("SEQATTN_CACHE_DIR", str(tmp_path / "cache"))
    return {**os.environ, "PYTHONUNBUFFERED": "1"}


@pytest.fixture(scope="module")
def references(tmp_path_factory):
    """Results of the uninterrupted command per part, computed once for all signals."""
    cache = {}

    def reference(part: Part, data: Path) -> dict:
        if part.name not in cache:
            folder = tmp_path_factory.mktemp(f"reference-{part.name}")
            assert cli.main(part.argv(folder / "out", folder / "mlflow.db", data)) == 0
            cache[part.name] = json.loads((folder / "out" / part.name / "results.json").read_text())
        return cache[part.name]

    return reference


def _flat(value, name="") -> dict:
    """{'a': {'b': [1, 2]}} -> {'.a.b.0': 1, '.a.b.1': 2}: one entry per number, to compare each."""
    if isinstance(value, dict):
        return {k: v for key, item in value.items() for k, v in _flat(item, f"{name}.{key}").items()}
    if isinstance(value, list):
        return {k: v for i, item in enumerate(value) for k, v in _flat(item, f"{name}.{i}").items()}
    return {name: value}


def _run_ids(out: Path) -> dict[Path, str]:
    """The unfinished MLflow runs recorded in the state folders under `out`, by folder."""
    return {path.parent: path.read_text() for path in out.rglob("mlflow_run_id")}


def _assert_interrupted_run_resumes(part: Part, how: signal.Signals, data: Path, tmp_path, environment, references,
                                    capsys):
    out, db = tmp_path / "out", tmp_path / "mlflow.db"
    argv = part.argv(out, db, data)
    # A job started in the background (`cmd &`) inherits SIGINT ignored, and Python then installs
    # no KeyboardInterrupt handler: give the child the default disposition, as a terminal would.
    proc = subprocess.Popen([sys.executable, "-m", "seqattn.cli", *argv], env=environment,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    printed = []
    for line in proc.stdout:
        printed.append(line)
        if line.startswith(KILL_AT):
            proc.send_signal(how)
            break
    printed += proc.stdout.readlines()
    proc.wait()
    printed = "".join(printed)
    if how == signal.SIGINT:
        assert proc.returncode == 130, printed[-2000:]
        assert "seqattn: interrupted; rerun the same command to resume" in printed
    else:
        assert proc.returncode == -how, printed[-2000:]
    assert not (out / part.name / "results.json").exists()
    run_ids = _run_ids(out)
    assert len(run_ids) == 2, run_ids  # the part's parent run and the model's run
    [child_state] = [folder for folder in run_ids if (folder / "backup").is_dir()]  # killed mid-training

    capsys.readouterr()
    assert cli.main(argv) == 0
    rerun = capsys.readouterr().out
    assert f"Epoch 1/{EPOCHS}" not in rerun, rerun[-2000:]  # resumed, not restarted
    assert f"Epoch {EPOCHS}/{EPOCHS}" in rerun  # and trained to the end
    resumed = _flat(part.metrics(json.loads((out / part.name / "results.json").read_text())))
    expected = _flat(part.metrics(references(part, data)))
    assert resumed.keys() == expected.keys()
    for name, value in expected.items():
        assert resumed[name] == (pytest.approx(value, rel=1e-6, abs=1e-7) if isinstance(value, float) else value), name

    mlflow.set_tracking_uri(f"sqlite:///{db}")
    runs = mlflow.search_runs(experiment_names=[part.experiment], output_format="list")
    assert sorted(r.info.run_id for r in runs) == sorted(run_ids.values())  # no orphan run
    assert all(r.info.status == "FINISHED" for r in runs)
    child_id = run_ids[child_state]
    parent_id = next(r.info.run_id for r in runs if r.info.run_id != child_id)
    assert mlflow.get_run(child_id).data.tags["mlflow.parentRunId"] == parent_id
    history = mlflow.MlflowClient().get_metric_history(child_id, "loss")
    assert sorted(m.step for m in history) == list(range(EPOCHS))  # every epoch once, none twice
    assert not any(out.rglob("backup"))  # training finished: the backups are gone


@pytest.mark.slow
@pytest.mark.parametrize("part, how", [
    # on tensorflow too (the default backend): Keras's own shuffle and dropout masks did not follow a resume there
    pytest.param("attention", "SIGKILL", marks=pytest.mark.backend),
    pytest.param("forecast", "SIGKILL", marks=pytest.mark.backend),
    ("forecast", "SIGINT"),  # Ctrl-C: the command says how to resume and exits 130
])
def test_interrupted_command_reruns_to_the_same_runs_and_results(part, how, series_csv, tmp_path, environment,
                                                                   references, capsys):
    _assert_interrupted_run_resumes(PARTS[part], signal.Signals[how], series_csv, tmp_path, environment, references,
                                    capsys)


def test_training_clock_counts_the_seconds_of_the_calls_before_a_resume(tmp_path):
    path = tmp_path / "train_time.json"
    path.write_text(json.dumps({"seconds": 5.0}))  # the epochs an interrupted call ran
    clock = training.TrainingClock(path)
    clock.on_train_begin()
    clock.on_epoch_end(0)
    saved = json.loads(path.read_text())["seconds"]
    assert 5.0 < saved <= clock.seconds < 6.0
    assert training.TrainingClock(tmp_path / "first.json").seconds < 1.0  # a first call starts at zero



def test_a_fresh_fit_does_not_count_an_earlier_finished_training(tmp_path):
    """With no backup to resume from, `fit` starts over, and so does its clock."""
    import keras
    import numpy as np

    (tmp_path / "train_time.json").write_text(json.dumps({"seconds": 1000.0}))  # a training that finished
    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(1)])
    model.compile(optimizer="sgd", loss="mse")
    x = np.zeros((8, 3), np.float32)
    training.fit(model, x, np.zeros((8, 1), np.float32), epochs=1, state_dir=tmp_path, seed=0, verbose=0)
    assert 0.0 < training.train_seconds(tmp_path) < 1000.0

# ----------------------------------------------------------------------------- Part 3

VIDEO = ["video", "--models", "htap", "--seeds", "0", "--epochs", "2", "--stages", "2", "--train-sequences", "8",
         "--batch-size", "2", "--test-sequences", "3", "--context", "4", "--horizon", "3", "--eval-length", "8"]


def _video(folder: Path) -> list[str]:
    return [*VIDEO, "--out", str(folder / "out"), "--tracking-uri", f"sqlite:///{folder / 'mlflow.db'}"]


def _video_numbers(folder: Path) -> dict:
    results = json.loads((folder / "out" / "video" / "results.json").read_text())
    htap = results["models"]["htap"]
    return _flat({"metrics": htap["metrics"], "per_frame": htap["per_frame"], "codec": results["codec"]["metrics"]})


@pytest.mark.slow
@pytest.mark.backend
def test_video_killed_after_its_first_stage_reruns_to_the_same_results(tmp_path, environment, backend, capsys):
    # Part 3 runs on tensorflow by default, several times faster than on torch; resuming is
    # `training.fit`'s, which the cases above exercise on both backends.
    if backend != "tensorflow":
        pytest.skip("Part 3's resume runs in the tensorflow pass (make test-tensorflow)")
    killed = tmp_path / "killed"
    proc = subprocess.Popen([sys.executable, "-m", "seqattn.cli", *_video(killed)], env=environment,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    # Killed once the first stage is done: the second resumes with the optimizer state the first
    # left (Adam's moments carry over from stage to stage), whether from its own backup or not.
    while proc.poll() is None and not any(killed.glob("out/video/runs/htap-*/stage1.weights.h5")):
        time.sleep(0.05)
    assert proc.poll() is None, f"finished before it could be killed: {proc.stderr.read()[-2000:]}"
    proc.kill()
    proc.wait()
    [state] = killed.glob("out/video/runs/htap-*")
    [codec] = killed.glob("out/video/runs/codec-*/codec.weights.h5")
    kept = {path: path.stat().st_mtime_ns for path in (codec, state / "stage1.weights.h5")}
    assert not (state / "stage2.weights.h5").exists()
    assert not (killed / "out" / "video" / "results.json").exists()

    assert cli.main(_video(killed)) == 0
    assert {path: path.stat().st_mtime_ns for path in kept} == kept  # the codec and stage 1 were not retrained
    reference = tmp_path / "reference"
    assert cli.main(_video(reference)) == 0
    resumed, expected = _video_numbers(killed), _video_numbers(reference)
    assert resumed.keys() == expected.keys()
    for name, value in expected.items():
        assert resumed[name] == (pytest.approx(value, rel=1e-5, abs=1e-6) if isinstance(value, float) else value), name

    mlflow.set_tracking_uri(f"sqlite:///{killed / 'mlflow.db'}")
    runs = mlflow.search_runs(experiment_names=["seqattn-part3-video"], output_format="list")
    mlflow.set_tracking_uri(f"sqlite:///{reference / 'mlflow.db'}")
    reference_runs = mlflow.search_runs(experiment_names=["seqattn-part3-video"], output_format="list")
    assert len(runs) == len(reference_runs)  # the rerun continued the killed command's runs
    assert all(r.info.status == "FINISHED" for r in runs)
    assert not any(killed.rglob("backup"))
