"""A training killed mid-run resumes from its last epoch, in the same MLflow run, to the same result."""

import json
import os
import signal
import subprocess
import sys

import mlflow
import pytest

EPOCHS = 4


def _command(out, db):
    return [sys.executable, "-m", "seqattn.cli", "attention", "--epochs", str(EPOCHS), "--seeds", "0",
            "--out", str(out), "--tracking-uri", f"sqlite:///{db}"]


def _env():
    return {**os.environ, "PYTHONUNBUFFERED": "1"}


@pytest.mark.slow
def test_kill_9_mid_training_then_rerun_continues_the_same_run(tmp_path):
    subprocess.run(_command(tmp_path / "ref", tmp_path / "ref.db"), env=_env(), check=True, capture_output=True)
    reference = json.loads((tmp_path / "ref" / "attention" / "results.json").read_text())

    out, db = tmp_path / "killed", tmp_path / "killed.db"
    proc = subprocess.Popen(_command(out, db), env=_env(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    for line in proc.stdout:
        if line.startswith(f"Epoch 3/{EPOCHS}"):  # epochs 1 and 2 are complete and backed up
            proc.send_signal(signal.SIGKILL)
            break
    proc.wait()
    assert proc.returncode == -signal.SIGKILL
    state = out / "attention" / "seed0"
    child_id = (state / "mlflow_run_id").read_text()
    parent_id = (out / "attention" / "mlflow_run_id").read_text()
    assert (state / "backup").is_dir()
    assert not (out / "attention" / "results.json").exists()

    rerun = subprocess.run(_command(out, db), env=_env(), capture_output=True, text=True)
    assert rerun.returncode == 0, rerun.stdout[-2000:]
    assert f"Epoch 1/{EPOCHS}" not in rerun.stdout  # resumed, not restarted
    resumed = json.loads((out / "attention" / "results.json").read_text())
    for name, value in reference["per_seed"]["0"].items():
        assert resumed["per_seed"]["0"][name] == pytest.approx(value, rel=1e-6, abs=1e-7), name

    mlflow.set_tracking_uri(f"sqlite:///{db}")
    runs = mlflow.search_runs(experiment_names=["seqattn-part1-attention"], output_format="list")
    assert sorted(r.info.run_id for r in runs) == sorted([child_id, parent_id])  # no orphan run
    assert all(r.info.status == "FINISHED" for r in runs)
    history = mlflow.MlflowClient().get_metric_history(child_id, "loss")
    assert sorted(m.step for m in history) == list(range(EPOCHS))
