"""Sweeps: child processes run in parallel under one MLflow parent run and are read back from MLflow.

The SQLite store is created once per module (MLflow's schema migration takes seconds) and
shared with the child processes through their environment.
"""

import json
import os
import sys
import textwrap

import mlflow
import pytest

from seqattn import sweep, tracking
from seqattn.errors import ConfigError, TrackingError

# A child as the launcher sees one: it attaches its run through the environment the launcher
# gives it (seqattn's own children do so in tracking.start_run, tested below in-process), then
# waits until `siblings` runs exist under the parent: had the children run one after the other,
# the first would wait in vain and fail. Plain mlflow, no keras import: the test stays fast.
CHILD = textwrap.dedent("""
    import os, sys, time
    import mlflow

    seed, siblings = sys.argv[1], int(sys.argv[2])
    if seed == "fail":
        sys.exit(3)
    parent = os.environ["SEQATTN_PARENT_RUN_ID"]
    mlflow.set_experiment("seqattn-part1-attention")
    with mlflow.start_run(run_name=f"child-{seed}", parent_run_id=parent,
                          tags={"seqattn.sweep_label": os.environ["SEQATTN_SWEEP_LABEL"], "seqattn.seed": seed}):
        mlflow.log_params({"lr": 0.1, "seed": seed})
        deadline = time.time() + 120
        while len(mlflow.search_runs(output_format="list",
                                     filter_string=f"tags.mlflow.parentRunId = '{parent}'")) < siblings:
            if time.time() > deadline:
                sys.exit("the sibling never started: the children did not run in parallel")
            time.sleep(0.2)
        mlflow.log_metrics({"score": 10.0 + int(seed), "loss": 1.0 / (int(seed) + 1)})
""")


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    folder = tmp_path_factory.mktemp("sweep_store")
    return f"sqlite:///{folder}/mlflow.db", folder


@pytest.fixture(autouse=True)
def _isolated_mlflow(monkeypatch, store, mlflow_restored):
    """MLflow's process-wide state restored (conftest), and the sweep's own variables."""
    for name in (tracking.PARENT_RUN_ENV, tracking.SWEEP_LABEL_ENV):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.chdir(store[1])


@pytest.mark.slow
def test_two_child_processes_run_in_parallel_under_one_parent_and_are_gathered_from_mlflow(store, tmp_path):
    uri, _ = store
    with tracking.start_run("attention", "seed-sweep", tracking_uri=uri) as parent:
        commands = {f"seed{s}": [sys.executable, "-c", CHILD, str(s), "2"] for s in (0, 1)}
        codes = sweep.run_children(commands, parent.info.run_id, uri, tmp_path / "logs", parallel=2)
    assert codes == {"seed0": 0, "seed1": 0}, [p.read_text()[-2000:] for p in (tmp_path / "logs").glob("*.log")]

    children = sweep.gather("attention", "seed-sweep", uri)
    assert [c["label"] for c in children] == ["seed0", "seed1"]
    assert [c["metrics"] for c in children] == [{"score": 10.0, "loss": 1.0}, {"score": 11.0, "loss": 0.5}]
    assert [c["params"] for c in children] == [{"lr": "0.1", "seed": "0"}, {"lr": "0.1", "seed": "1"}]
    assert [c["tags"]["seqattn.seed"] for c in children] == ["0", "1"]
    assert {c["status"] for c in children} == {"FINISHED"}
    assert {c["run_name"] for c in children} == {"child-0", "child-1"}
    assert sweep.gather("attention", parent.info.run_id, uri) == children  # by id as by name
    # sample std (ddof=1) of two values a, b is |a - b| / sqrt(2)
    summary = sweep.summarise(children)
    assert summary["loss"] == pytest.approx({"mean": 0.75, "std": 0.5 / 2**0.5, "n": 2})
    assert summary["score"] == pytest.approx({"mean": 10.5, "std": 1 / 2**0.5, "n": 2})
    assert set(summary) == {"loss", "score"}


def test_start_run_attaches_only_new_top_level_runs_to_the_parent(store, monkeypatch):
    uri, _ = store
    with tracking.start_run("attention", "parent", tracking_uri=uri) as parent:
        pass
    monkeypatch.setenv(tracking.PARENT_RUN_ENV, parent.info.run_id)
    monkeypatch.setenv(tracking.SWEEP_LABEL_ENV, "seed7")
    with tracking.start_run("attention", "child", tracking_uri=uri) as child:
        with tracking.start_run("attention", "grandchild", nested=True) as grandchild:
            pass
    with tracking.start_run("attention", "child", tracking_uri=uri, run_id=child.info.run_id):
        pass  # reopening keeps the run where it is
    tags = {run: mlflow.get_run(run.info.run_id).data.tags for run in (child, grandchild)}
    assert tags[child]["mlflow.parentRunId"] == parent.info.run_id
    assert tags[child]["seqattn.sweep_label"] == "seed7"
    assert tags[grandchild]["mlflow.parentRunId"] == child.info.run_id
    assert "seqattn.sweep_label" not in tags[grandchild]
    assert [c["run_id"] for c in sweep.gather("attention", parent.info.run_id, uri)] == [child.info.run_id]


def test_gather_names_an_unknown_parent_and_part(store):
    uri, _ = store
    with pytest.raises(TrackingError, match="no run named or with id 'no-such-sweep' in experiment 'seqattn-part1"):
        sweep.gather("attention", "no-such-sweep", uri)
    with pytest.raises(ConfigError, match="part must be one of attention, forecast, video; got 'vision'"):
        sweep.gather("vision", "x", uri)


def test_sweep_command_marks_the_parent_failed_when_a_child_fails_and_logs_what_it_gathered(store, tmp_path,
                                                                                             monkeypatch):
    uri, folder = store
    plain = {f"seed{s}": [sys.executable, "-c", CHILD, arg, "1"] for s, arg in enumerate(["0", "fail", "2"])}
    monkeypatch.setattr(sweep, "child_commands", lambda *args: plain)
    code = sweep.main(["attention", "--seeds", "0", "1", "2", "--parallel", "3", "--name", "failing",
                       "--out", str(tmp_path), "--tracking-uri", uri])
    assert code == 1
    parent = mlflow.search_runs(experiment_names=["seqattn-part1-attention"], output_format="list",
                                filter_string="attributes.run_name = 'failing'")[0]
    assert parent.info.status == "FAILED"
    assert parent.data.metrics == pytest.approx({"score_mean": 11.0, "score_std": 2 / 2**0.5,
                                                 "loss_mean": 2 / 3, "loss_std": (2 / 3) / 2**0.5})
    gathered = json.loads((tmp_path / "sweeps" / "failing" / "sweep.json").read_text())
    assert gathered["exit_codes"] == {"seed0": 0, "seed1": 3, "seed2": 0}
    assert [c["label"] for c in gathered["children"]] == ["seed0", "seed2"]
    assert "| score | 11 | 1.414 | 2 |" in (tmp_path / "sweeps" / "failing" / "sweep.md").read_text()


def test_run_children_keeps_each_childs_log_and_exit_code(tmp_path, monkeypatch):
    commands = {"ok": [sys.executable, "-c", "import os; print('parent', os.environ['SEQATTN_PARENT_RUN_ID'], "
                                              "os.environ['SEQATTN_SWEEP_LABEL'], os.environ['OMP_NUM_THREADS'])"],
                "bad": [sys.executable, "-c", "import sys; sys.exit(3)"]}
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    codes = sweep.run_children(commands, "abc", "sqlite:///x.db", tmp_path, parallel=2)
    assert codes == {"ok": 0, "bad": 3}
    threads = max(1, (os.cpu_count() or 1) // 2)
    assert (tmp_path / "ok.log").read_text() == f"parent abc ok {threads}\n"
    with pytest.raises(ConfigError, match="--parallel must be a positive integer; got 0"):
        sweep.run_children(commands, "abc", "sqlite:///x.db", tmp_path, parallel=0)


def test_child_commands_cover_every_variant_and_seed(tmp_path):
    variants = sweep.parse_variants(['heads1=--num-heads 1', 'big=--n-pairs 12 --epochs "3"'])
    commands = sweep.child_commands("attention", [0, 1], variants, tmp_path, ["--profile", "quick"])
    assert list(commands) == ["heads1-seed0", "heads1-seed1", "big-seed0", "big-seed1"]
    assert commands["big-seed1"][1:] == ["-m", "seqattn.cli", "attention", "--profile", "quick", "--seeds", "1",
                                         "--out", str(tmp_path / "big-seed1"), "--n-pairs", "12", "--epochs", "3"]
    assert list(sweep.child_commands("video", [3], {}, tmp_path, [])) == ["seed3"]
    with pytest.raises(ConfigError, match="--variant must look like NAME="):
        sweep.parse_variants(["--num-heads 1"])
    with pytest.raises(ConfigError, match="--variant 'a' is given twice"):
        sweep.parse_variants(["a=--x 1", "a=--x 2"])
