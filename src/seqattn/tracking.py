"""MLflow tracking for every part of the study.

One experiment per part, one run per model and seed, nested under a parent run per part when the
whole study runs. Each run records the resolved config as params, per-epoch and final metrics,
curves (`log_curve`: a metric per horizon step or frame), figures and results.json as artifacts,
and tags for backend, seed, versions and git commit. Experiments are created and kept described
for MLflow's UI by `seqattn.mlflow_experiments`; runs of one model and settings over seeds share
the tag `seqattn.case`, by which the UI groups them.

The store is MLflow's default, SQLite `mlflow.db` in the working directory (so `mlflow ui` there
shows the runs), unless `--tracking-uri` or MLFLOW_TRACKING_URI names another one. Several
processes may share a SQLite store (SQLite serialises their writes); `configure` creates a new
one under a lock beside it, as MLflow would otherwise create and migrate it in each of them.
"""

import math
import os
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator, Mapping
from contextlib import ExitStack, contextmanager
from pathlib import Path

import keras
import mlflow
from mlflow.entities import Metric
from mlflow.store.db.db_types import DATABASE_ENGINES
import sqlalchemy

from seqattn.errors import TrackingError
from seqattn import mlflow_experiments
from seqattn.io import environment_info, exclusive_lock

DEFAULT_TRACKING_URI = "sqlite:///mlflow.db"
EXPERIMENTS = mlflow_experiments.EXPERIMENTS
_MAX_PARAM_LENGTH = 6000  # MLflow's limit on one param value
PARENT_RUN_ENV = "SEQATTN_PARENT_RUN_ID"
SWEEP_LABEL_ENV = "SEQATTN_SWEEP_LABEL"
_opened_databases: set[Path] = set()  # SQLite files this process has seen created and migrated


def resolve_tracking_uri(tracking_uri: str | None = None) -> str:
    return tracking_uri or os.environ.get("MLFLOW_TRACKING_URI") or DEFAULT_TRACKING_URI


def _open_sqlite_store(uri: str) -> None:
    """Create (or check) the SQLite store at `uri` while holding `<database>.lock` beside it.

    MLflow creates the tables of a new database, then migrates them, in the first call that
    touches the store; processes started together each do so at once, and all but one fail
    (`duplicate column name: step`). Under the lock the first one builds the store, and the
    others, once they hold it, find it complete and only read it.
    """
    database = sqlalchemy.engine.make_url(uri).database
    if not database or database == ":memory:":
        return
    path = Path(database).resolve()
    if path in _opened_databases:
        return
    lock = path.with_name(path.name + ".lock")
    with ExitStack() as held:
        try:
            path.parent.mkdir(parents=True, exist_ok=True)  # as MLflow does for a new store
            held.enter_context(exclusive_lock(lock))
        except OSError as err:
            raise TrackingError(f"MLflow store {uri}: cannot create {lock} ({err.strerror})") from None
        mlflow.MlflowClient(uri).search_experiments(max_results=1)
    _opened_databases.add(path)


def configure(tracking_uri: str | None = None, *, open_store: bool = True) -> str:
    """Point MLflow at the store, creating a new SQLite one safely (unless open_store=False: a
    check before any work, which must leave no store behind, and opens only a store that exists);
    fail fast with one line if an HTTP server does not answer or the store cannot be opened.

    MLflow itself retries an unreachable server for minutes before giving up.
    """
    uri = resolve_tracking_uri(tracking_uri)
    scheme = urllib.parse.urlparse(uri).scheme.split("+")[0]  # postgresql+psycopg2 -> postgresql
    if scheme in ("http", "https"):
        try:
            urllib.request.urlopen(uri.rstrip("/") + "/health", timeout=5).close()
        except (urllib.error.URLError, OSError) as err:
            reason = getattr(err, "reason", err)
            raise TrackingError(f"MLflow tracking server {uri} is unreachable ({reason})") from None
    mlflow.set_tracking_uri(uri)  # first: an error below names the URI MLflow was given
    if scheme == "sqlite":
        database = sqlalchemy.engine.make_url(uri).database
        if open_store or (database and Path(database).exists()):  # a store that exists is checked now
            _open_sqlite_store(uri)
    elif scheme not in ("http", "https", *DATABASE_ENGINES, "databricks", "databricks-uc"):
        # An unknown scheme or a plain folder fails here, before any output. (A database server's store
        # is left alone: opening an empty one would create its tables.)
        mlflow.MlflowClient(uri)
    return uri


def flatten(config: Mapping, prefix: str = "") -> dict[str, str]:
    """{'model': {'units': 32}} -> {'model.units': '32'}: MLflow params are flat strings."""
    flat = {}
    for key, value in config.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping):
            flat.update(flatten(value, prefix=f"{name}."))
        else:
            flat[name] = str(value)[:_MAX_PARAM_LENGTH]
    return flat


def case_name(run_name: str, seed: int) -> str:
    """The run name less its seed suffix ('-seed3', '-s3'): what runs differing only in seed share."""
    for suffix in (f"-seed{seed}", f"-s{seed}"):
        if run_name.endswith(suffix):
            return run_name[: -len(suffix)]
    return run_name


@contextmanager
def start_run(
    part: str,
    run_name: str,
    *,
    config: Mapping | None = None,
    seed: int | None = None,
    tracking_uri: str | None = None,
    nested: bool = False,
    run_id: str | None = None,
    parent_run_id: str | None = None,
) -> Iterator[mlflow.ActiveRun]:
    """Open (or, given `run_id`, reopen) a run in the part's experiment.

    A reopened run is continued, not duplicated: params and tags are logged only when new. A run
    with a seed is tagged `seqattn.case` (`case_name`). A new top-level run becomes a child of
    `parent_run_id`, or of $SEQATTN_PARENT_RUN_ID: how the processes of a sweep (`seqattn.sweep`)
    attach their runs to the sweep's parent run. The experiment is made ready for MLflow's UI
    first (`mlflow_experiments.ensure`).
    """
    if part not in EXPERIMENTS:
        raise ValueError(f"part must be one of {sorted(EXPERIMENTS)}; got {part!r}")
    if not nested:
        configure(tracking_uri)
    experiment = mlflow_experiments.ensure(mlflow.MlflowClient(), part)
    mlflow.set_experiment(experiment_id=experiment.experiment_id)
    if nested or run_id is not None:
        parent_run_id = None  # nested: the active run is the parent; reopened: it has one already
    else:
        parent_run_id = parent_run_id or os.environ.get(PARENT_RUN_ENV) or None
    with mlflow.start_run(run_id=run_id, run_name=None if run_id else run_name, nested=nested,
                          parent_run_id=parent_run_id) as run:
        if run_id is None:
            if config:
                mlflow.log_params(flatten(config))
            tags = {f"seqattn.{k}": str(v) for k, v in environment_info().items()}
            tags["seqattn.part"] = part
            if seed is not None:
                tags["seqattn.seed"] = str(seed)
                tags[mlflow_experiments.CASE_TAG] = case_name(run_name, seed)
            if parent_run_id and os.environ.get(SWEEP_LABEL_ENV):
                tags["seqattn.sweep_label"] = os.environ[SWEEP_LABEL_ENV]
            mlflow.set_tags(tags)
        yield run


def _metric_name(name: str) -> str:
    return name.replace("@", "_at_").replace(" ", "_")


def log_metrics(metrics: Mapping[str, float], step: int | None = None) -> None:
    """Log finite scalar metrics to the active run (names sanitised for MLflow)."""
    clean = {_metric_name(name): float(value) for name, value in metrics.items() if math.isfinite(float(value))}
    if clean:
        mlflow.log_metrics(clean, step=step)


def log_curve(name: str, values, first_step: int = 0, run_id: str | None = None) -> None:
    """Log a curve as one metric whose step is the position along it: values[i] at step first_step + i.

    For MSE per horizon step or per predicted frame, span per decoder step: MLflow's UI draws the
    metric over its steps, and the runs table shows the last point. Non-finite values are left out.
    One `MlflowClient.log_batch` call (split by MLflow into batches of 1000), not one per point.
    `run_id` defaults to the active run.
    """
    run_id = run_id or mlflow.active_run().info.run_id
    timestamp = int(time.time() * 1000)
    points = [Metric(_metric_name(name), float(value), timestamp, first_step + i)
              for i, value in enumerate(values) if math.isfinite(float(value))]
    if points:
        mlflow.MlflowClient().log_batch(run_id, metrics=points)


def log_artifact(path: str | os.PathLike, artifact_path: str | None = None, run_id: str | None = None) -> None:
    """Log a file, if it exists, to the active run or to `run_id` (e.g. a figure of a finished model run)."""
    if not Path(path).exists():
        return
    if run_id is None:
        mlflow.log_artifact(str(path), artifact_path=artifact_path)
    else:
        mlflow.MlflowClient().log_artifact(run_id, str(path), artifact_path=artifact_path)


class MLflowCallback(keras.callbacks.Callback):
    """Logs every epoch's Keras logs (loss, val_loss, ...) to the active MLflow run, if any.

    Keras passes the true epoch index after a resume, so a resumed run continues the same curve.
    """

    def __init__(self, prefix: str = ""):
        super().__init__()
        self.prefix = prefix

    def on_epoch_end(self, epoch, logs=None):
        if mlflow.active_run() is None:  # fit outside a run (tests, workers): no stray runs
            return
        log_metrics({f"{self.prefix}{k}": v for k, v in (logs or {}).items()}, step=epoch)
