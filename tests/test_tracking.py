"""MLflow tracking: what a run records, a real `mlflow server` read back over HTTP, resumable runs.

The SQLite store is created once per module: MLflow's schema migration takes seconds.
"""

import json
import os
import sys
import urllib.parse
import urllib.request
from pathlib import Path

import keras
import numpy as np
import pytest
from mlflow.tracking import MlflowClient

from seqattn import mlflow_experiments, tracking, training
from seqattn.errors import TrackingError

# MLflow's own SQLAlchemy use warns; nothing for us to act on.
pytestmark = pytest.mark.filterwarnings("ignore:The ``noload`` loader strategy is deprecated")


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    """(tracking URI, folder) of a SQLite store shared by this module's tests."""
    folder = tmp_path_factory.mktemp("mlflow_store")
    return f"sqlite:///{folder}/mlflow.db", folder


@pytest.fixture(autouse=True)
def _isolated_mlflow(monkeypatch, store, mlflow_restored):
    """MLflow's process-wide state restored (conftest); artifacts inside the store's folder."""
    monkeypatch.chdir(store[1])  # artifacts of a SQLite store go to ./mlruns


def _metric_steps(client, run_id, key):
    return sorted((m.step, m.value) for m in client.get_metric_history(run_id, key))


# ----------------------------------------------------------------------------- local SQLite store


def test_run_records_params_tags_metrics_and_artifacts(store, tmp_path):
    uri, _ = store
    config = {"model": {"units": 32, "heads": [1, 2]}, "lr": 0.001, "long": "x" * 7000}
    figure = tmp_path / "curve.txt"
    figure.write_text("a figure stands here")
    with tracking.start_run("attention", "records", config=config, seed=7, tracking_uri=uri) as run:
        for step, loss in enumerate([1.0, 0.5, 0.25]):
            tracking.log_metrics({"loss": loss, "acc@1": 0.5 + step / 10}, step=step)
        tracking.log_metrics({"val loss": 0.3, "diverged": float("nan"), "huge": float("inf")})
        tracking.log_artifact(figure)
        tracking.log_artifact(tmp_path / "missing.png")  # a figure that was not made is skipped

    client = MlflowClient(uri)
    logged = client.get_run(run.info.run_id)
    assert client.get_experiment(logged.info.experiment_id).name == "seqattn-part1-attention"
    assert logged.info.status == "FINISHED"
    assert logged.info.run_name == "records"
    params = logged.data.params
    assert params["model.units"] == "32" and params["model.heads"] == "[1, 2]" and params["lr"] == "0.001"
    assert params["long"] == "x" * 6000  # cut to MLflow's limit on one param
    tags = logged.data.tags
    assert tags["seqattn.backend"] == keras.backend.backend()
    assert tags["seqattn.seed"] == "7"
    assert tags["seqattn.part"] == "attention"
    assert "seqattn.git_commit" in tags and tags["seqattn.keras"] == keras.__version__
    assert _metric_steps(client, run.info.run_id, "loss") == [(0, 1.0), (1, 0.5), (2, 0.25)]
    assert [s for s, _ in _metric_steps(client, run.info.run_id, "acc_at_1")] == [0, 1, 2]
    assert set(logged.data.metrics) == {"loss", "acc_at_1", "val_loss"}  # NaN and inf are dropped
    assert [a.path for a in client.list_artifacts(run.info.run_id)] == ["curve.txt"]
    local = client.download_artifacts(run.info.run_id, "curve.txt", str(tmp_path / "download"))
    assert Path(local).read_text() == "a figure stands here"


def test_log_curve_logs_one_metric_stepped_by_position_in_one_batch(store, monkeypatch):
    uri, _ = store
    batches = []
    log_batch = MlflowClient.log_batch

    def counted(client, run_id, **kwargs):
        if kwargs.get("metrics"):  # MLflow itself logs tags this way
            batches.append(len(kwargs["metrics"]))
        return log_batch(client, run_id, **kwargs)

    monkeypatch.setattr(MlflowClient, "log_batch", counted)
    curve = np.linspace(1.0, 2.0, 300)
    with tracking.start_run("forecast", "curves", tracking_uri=uri) as run:
        tracking.log_curve("test mse@step", curve, first_step=1)
        tracking.log_curve("gaps", [0.5, float("nan"), 0.25, float("inf")])
    assert batches == [300, 2]  # one call per curve; NaN and inf left out
    client = MlflowClient(uri)
    steps = _metric_steps(client, run.info.run_id, "test_mse_at_step")
    assert [s for s, _ in steps] == list(range(1, 301))
    np.testing.assert_allclose([v for _, v in steps], curve)
    assert _metric_steps(client, run.info.run_id, "gaps") == [(0, 0.5), (2, 0.25)]
    assert client.get_run(run.info.run_id).data.metrics["test_mse_at_step"] == 2.0  # the table shows the last


def test_log_artifact_to_a_finished_run_by_id(store, tmp_path):
    uri, _ = store
    figure = tmp_path / "figure.png"
    figure.write_bytes(b"png")
    with tracking.start_run("attention", "parent", tracking_uri=uri):
        with tracking.start_run("attention", "model-seed0", seed=0, nested=True) as model_run:
            pass
        tracking.log_artifact(figure, run_id=model_run.info.run_id)  # drawn after the model run ended
    client = MlflowClient(uri)
    assert [a.path for a in client.list_artifacts(model_run.info.run_id)] == ["figure.png"]


def test_experiments_are_described_model_training_experiments_with_a_headline_view(store):
    """What makes MLflow's UI open a part's experiment on its runs table, read back through the API."""
    uri, _ = store
    client = MlflowClient(uri)
    with tracking.start_run("video", "made-before", tracking_uri=uri):
        pass
    older = client.get_experiment_by_name("seqattn-part3-video")
    for key in (mlflow_experiments.NOTE_TAG, mlflow_experiments.KIND_TAG, mlflow_experiments.VIEW_TAG):
        client.delete_experiment_tag(older.experiment_id, key)  # as a store from before this release

    for part in ("attention", "forecast", "video"):
        with tracking.start_run(part, "etth1-M-L96-H96-hybrid-s3", seed=3, tracking_uri=uri) as run:
            pass
        experiment = client.get_experiment(run.info.experiment_id)
        assert experiment.name == tracking.EXPERIMENTS[part]
        tags = experiment.tags
        assert tags["mlflow.note.content"] == mlflow_experiments.DESCRIPTIONS[part]
        assert tags["mlflow.note.content"].startswith(f"Part {list(tracking.EXPERIMENTS).index(part) + 1}: ")
        assert tags["mlflow.experimentKind"] == "custom_model_development"
        view = json.loads(tags["mlflow.sharedViewState.seqattn-headline"])
        assert view["name"] == "seqattn: headline metrics" and isinstance(view["createdAt"], int)
        state = json.loads(view["state"])
        assert state["groupBy"] == {"aggregateFunction": "average",
                                    "groupByKeys": [{"mode": "tag", "groupByData": "seqattn.case"}]}
        headline = {"attention": ["alignment_accuracy", "attention_span"], "forecast": ["test_mse", "test_mae"],
                    "video": ["mse_far", "attention_span"]}[part]
        assert {f"metrics.`{name}`" for name in headline} <= set(state["selectedColumns"])
        # The run is in the group of its case, the same model and settings over seeds.
        assert client.get_run(run.info.run_id).data.tags["seqattn.case"] == "etth1-M-L96-H96-hybrid"
    assert experiment.experiment_id == older.experiment_id  # the existing experiment, now described

    with tracking.start_run("video", "again", tracking_uri=uri):
        pass
    assert client.get_experiment(older.experiment_id).tags == experiment.tags  # kept, not rewritten
    page = mlflow_experiments.runs_page("http://127.0.0.1:5000/", older.experiment_id)
    assert page == (f"http://127.0.0.1:5000/#/experiments/{older.experiment_id}/runs"
                    "?workflowType=machine_learning&viewStateShareKey=seqattn-headline")


def test_case_name_drops_the_seed_suffix_only():
    assert tracking.case_name("retrieval-seed2", 2) == "retrieval"
    assert tracking.case_name("etth1-M-L96-H96-hybrid-s0", 0) == "etth1-M-L96-H96-hybrid"
    assert tracking.case_name("htap-seed1", 1) == "htap"
    assert tracking.case_name("ablation-etth1-L96-H96-1a2b3c4d", 0) == "ablation-etth1-L96-H96-1a2b3c4d"
    assert tracking.case_name("model-s10", 1) == "model-s10"


def test_nested_runs_carry_the_parent_id(store):
    uri, _ = store
    with tracking.start_run("forecast", "study", tracking_uri=uri) as parent:
        with tracking.start_run("forecast", "model-a", seed=0, nested=True) as child_a:
            pass
        with tracking.start_run("forecast", "model-b", seed=1, nested=True) as child_b:
            pass
    client = MlflowClient(uri)
    for child, seed in ((child_a, "0"), (child_b, "1")):
        tags = client.get_run(child.info.run_id).data.tags
        assert tags["mlflow.parentRunId"] == parent.info.run_id
        assert tags["seqattn.seed"] == seed
    assert "mlflow.parentRunId" not in client.get_run(parent.info.run_id).data.tags


def test_reopened_run_is_continued_without_relogging_params(store):
    uri, _ = store
    with tracking.start_run("video", "first", config={"epochs": 3}, tracking_uri=uri) as run:
        tracking.log_metrics({"loss": 1.0}, step=0)
    # A different config would make MLflow refuse to overwrite the param: it must not be logged.
    reopen = dict(config={"epochs": 5}, tracking_uri=uri, run_id=run.info.run_id)
    with tracking.start_run("video", "ignored", **reopen) as again:
        tracking.log_metrics({"loss": 0.5}, step=1)
    assert again.info.run_id == run.info.run_id
    client = MlflowClient(uri)
    logged = client.get_run(run.info.run_id)
    assert logged.data.params == {"epochs": "3"} and logged.info.run_name == "first"
    assert _metric_steps(client, run.info.run_id, "loss") == [(0, 1.0), (1, 0.5)]


def test_unknown_part_is_rejected(store):
    with pytest.raises(ValueError, match=r"part must be one of \['attention', 'forecast', 'video'\]; got 'audio'"):
        with tracking.start_run("audio", "x", tracking_uri=store[0]):
            pass


def test_unreachable_server_raises_tracking_error_before_mlflow_retries(free_port, monkeypatch):
    """One probe of /health with a timeout, and MLflow's client, which retries for minutes, never
    asked to reach the server."""
    uri = f"http://127.0.0.1:{free_port}"
    probes = []
    real_urlopen = urllib.request.urlopen

    def urlopen(url, *args, **kwargs):
        probes.append((url, kwargs.get("timeout")))
        return real_urlopen(url, *args, **kwargs)

    def mlflow_client(*args, **kwargs):
        raise AssertionError("MLflow's client was asked to reach the server")

    monkeypatch.setattr(urllib.request, "urlopen", urlopen)
    monkeypatch.setattr(tracking.mlflow, "MlflowClient", mlflow_client)
    with pytest.raises(TrackingError, match=f"MLflow tracking server {uri} is unreachable"):
        with tracking.start_run("attention", "nowhere", tracking_uri=uri):
            pass
    assert probes == [(f"{uri}/health", 5)]


# ----------------------------------------------------------------------------- a real server


def _http_json(url: str) -> dict:
    with urllib.request.urlopen(url, timeout=30) as response:
        return json.loads(response.read())


@pytest.mark.slow
def test_real_mlflow_server_round_trip(tmp_path, serve):
    port = serve("mlflow-server", lambda port: [
        sys.executable, "-m", "mlflow", "server",
        "--host", "127.0.0.1", "--port", str(port), "--workers", "1",
        "--backend-store-uri", f"sqlite:///{tmp_path}/mlflow.db",
        "--artifacts-destination", str(tmp_path / "artifacts"),
    ], env={**os.environ, "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"})  # no job runner's seven workers
    base = f"http://127.0.0.1:{port}"

    results = tmp_path / "results.json"
    results.write_text('{"accuracy": 0.97}\n')
    config = {"model": {"heads": 4}}
    with tracking.start_run("attention", "over-http", config=config, seed=3, tracking_uri=base) as run:
        tracking.log_metrics({"loss": 0.8}, step=0)
        tracking.log_metrics({"loss": 0.4}, step=1)
        tracking.log_artifact(results)
    run_id = run.info.run_id

    got = _http_json(f"{base}/api/2.0/mlflow/runs/get?run_id={run_id}")["run"]
    assert got["info"]["status"] == "FINISHED"
    assert {p["key"]: p["value"] for p in got["data"]["params"]} == {"model.heads": "4"}
    tags = {t["key"]: t["value"] for t in got["data"]["tags"]}
    assert tags["seqattn.seed"] == "3" and tags["seqattn.backend"] == keras.backend.backend()
    query = urllib.parse.urlencode({"run_id": run_id, "metric_key": "loss"})
    history = _http_json(f"{base}/api/2.0/mlflow/metrics/get-history?{query}")["metrics"]
    assert sorted((m["step"], m["value"]) for m in history) == [(0, 0.8), (1, 0.4)]

    listing = _http_json(f"{base}/api/2.0/mlflow/artifacts/list?run_id={run_id}")
    assert [f["path"] for f in listing["files"]] == ["results.json"]
    artifact_uri = got["info"]["artifact_uri"]  # mlflow-artifacts:/<experiment>/<run>/artifacts
    assert artifact_uri.startswith("mlflow-artifacts:/")
    relative = artifact_uri.removeprefix("mlflow-artifacts:/").lstrip("/")
    download = f"{base}/api/2.0/mlflow-artifacts/artifacts/{relative}/results.json"
    assert _http_json(download) == {"accuracy": 0.97}
    # The server, not this process, holds the file.
    assert list((tmp_path / "artifacts").rglob("results.json"))


# ----------------------------------------------------------------------------- resumable runs


def test_resumable_run_reopens_an_interrupted_run_and_starts_fresh_after_completion(store, tmp_path):
    uri, _ = store
    state = tmp_path / "state"
    client = MlflowClient(uri)

    with pytest.raises(RuntimeError, match="power cut"):
        with training.resumable_run("attention", "resumable", state, tracking_uri=uri, config={"epochs": 2}) as run:
            tracking.log_metrics({"loss": 1.0}, step=0)
            raise RuntimeError("power cut")
    interrupted = run.info.run_id
    assert (state / "mlflow_run_id").read_text() == interrupted
    assert client.get_run(interrupted).info.status == "FAILED"

    with training.resumable_run("attention", "resumable", state, tracking_uri=uri, config={"epochs": 2}) as run:
        assert run.info.run_id == interrupted
        tracking.log_metrics({"loss": 0.5}, step=1)
    assert not (state / "mlflow_run_id").exists()
    assert client.get_run(interrupted).info.status == "FINISHED"
    assert _metric_steps(client, interrupted, "loss") == [(0, 1.0), (1, 0.5)]

    with training.resumable_run("attention", "resumable", state, tracking_uri=uri) as run:
        assert run.info.run_id != interrupted


def test_resumable_run_ignores_a_run_id_unknown_to_the_store(store, tmp_path):
    uri, _ = store
    state = tmp_path / "state"
    state.mkdir()
    (state / "mlflow_run_id").write_text("0123456789abcdef0123456789abcdef")
    with training.resumable_run("attention", "fresh", state, tracking_uri=uri) as run:
        assert run.info.run_id != "0123456789abcdef0123456789abcdef"
    assert MlflowClient(uri).get_run(run.info.run_id).info.status == "FINISHED"


class _Crash(keras.callbacks.Callback):
    def __init__(self, at_epoch):
        super().__init__()
        self.at_epoch = at_epoch

    def on_epoch_begin(self, epoch, logs=None):
        if epoch == self.at_epoch:
            raise RuntimeError(f"crash at epoch {epoch}")


@pytest.mark.backend
def test_fit_resumes_after_a_crash_logs_each_epoch_once_and_ends_where_an_uninterrupted_fit_does(store, tmp_path):
    uri, _ = store
    rng = np.random.default_rng(0)
    x = rng.normal(size=(32, 3)).astype("float32")
    y = x @ np.array([[1.0], [-2.0], [0.5]], "float32")

    def model():
        keras.utils.set_random_seed(0)
        net = keras.Sequential([keras.Input((3,)), keras.layers.Dense(1)])
        net.compile(optimizer="adam", loss="mse")
        return net

    def train(state, net, callbacks=()):
        with training.resumable_run("attention", "fit", state, tracking_uri=uri) as run:
            history = training.fit(
                net, x, y, epochs=4, batch_size=8, state_dir=state, seed=5, callbacks=callbacks, verbose=0
            )
        return run, history

    reference = model()
    train(tmp_path / "uninterrupted", reference)

    state = tmp_path / "state"
    with pytest.raises(RuntimeError, match="crash at epoch 2"):
        train(state, model(), callbacks=[_Crash(2)])
    crashed_id = (state / "mlflow_run_id").read_text()
    assert (state / "backup").is_dir()
    resumed_model = model()
    resumed, history = train(state, resumed_model)
    assert resumed.info.run_id == crashed_id
    assert len(history.history["loss"]) == 2  # epochs 2 and 3 only: 0 and 1 were restored
    steps = [step for step, _ in _metric_steps(MlflowClient(uri), crashed_id, "loss")]
    assert steps == [0, 1, 2, 3]
    assert not (state / "backup").exists()  # deleted once training completed
    for got, want in zip(resumed_model.get_weights(), reference.get_weights()):
        np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-7)


def _fit_with_early_stopping(state_dir, interrupt_at=None):
    """A linear model whose validation loss is best after epoch 1: validation targets are negated."""
    x = np.random.default_rng(0).normal(size=(64, 3)).astype("float32")
    y = x @ np.array([[1.0], [2.0], [3.0]], "float32")

    def model():
        keras.utils.set_random_seed(0)
        m = keras.Sequential([keras.Input((3,)), keras.layers.Dense(1)])
        m.compile(optimizer=keras.optimizers.SGD(0.1), loss="mse")
        return m

    def early_stopping():
        return keras.callbacks.EarlyStopping(patience=2, restore_best_weights=True)

    kwargs = dict(epochs=6, state_dir=state_dir, seed=0, batch_size=16, verbose=0, validation_data=(x, -y))
    if interrupt_at is not None:
        with pytest.raises(RuntimeError, match=f"crash at epoch {interrupt_at}"):
            training.fit(model(), x, y, callbacks=[early_stopping(), _Crash(interrupt_at)], **kwargs)
    m = model()  # a new process builds the model afresh
    history = training.fit(m, x, y, callbacks=[early_stopping()], **kwargs)
    return history, m.get_weights()


@pytest.mark.backend
def test_early_stopping_survives_a_resume(tmp_path):
    reference, reference_weights = _fit_with_early_stopping(tmp_path / "ref")
    # Best epoch 1, patience 2: stops after epoch 3 and restores epoch 1's weights.
    assert reference.epoch == [0, 1, 2]
    history, weights = _fit_with_early_stopping(tmp_path / "resumed", interrupt_at=2)
    assert history.epoch == [2]  # resumed at epoch 3, and the patience counted across the interruption
    np.testing.assert_allclose(history.history["val_loss"], reference.history["val_loss"][2:], rtol=1e-6)
    for got, want in zip(weights, reference_weights, strict=True):
        np.testing.assert_allclose(got, want, rtol=1e-6)  # the best weights of epoch 1, not of epoch 3
    assert not (tmp_path / "resumed" / "backup").exists()  # training ended: no state left behind


@pytest.mark.backend
@pytest.mark.parametrize("weights", [b"\x89HDF\r\n\x1a\n cut short", None])
def test_a_first_backup_cut_short_restarts_training_from_epoch_0(tmp_path, weights):
    """Killed while Keras wrote the first epoch's backup: the weights file is half-written (Keras
    cannot open it and has no older one), or whole but without the epoch record that follows it."""
    reference, reference_weights = _fit_with_early_stopping(tmp_path / "ref")
    backup = tmp_path / "cut" / "backup"
    backup.mkdir(parents=True)
    if weights is None:  # whole weights of a model one epoch in, no training_metadata.json yet
        model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(1)])
        model.set_weights([np.ones((3, 1), "float32"), np.ones(1, "float32")])
        model.save_weights(backup / "latest.weights.h5")
    else:
        (backup / "latest.weights.h5").write_bytes(weights)
    history, got = _fit_with_early_stopping(tmp_path / "cut")
    assert history.epoch == reference.epoch
    for g, want in zip(got, reference_weights, strict=True):
        np.testing.assert_allclose(g, want, rtol=1e-6)
