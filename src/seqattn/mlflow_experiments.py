"""The project's MLflow experiments, set up so that MLflow's UI opens each on its runs table.

One experiment per part. Each carries, as experiment tags (what MLflow's UI reads):
- `mlflow.note.content`: the part's one-line description (as `seqattn --help` gives it), shown
  above its runs and in the experiment list;
- `mlflow.experimentKind` = `custom_model_development`: a model-training experiment, not a GenAI
  one. MLflow 3.17's UI takes the kind from its "GenAI / Model training" switch instead, which a
  page address sets with `workflowType=machine_learning` (`runs_page`);
- `mlflow.sharedViewState.seqattn-headline`: a saved view of the runs table ("Views" menu), with
  the part's headline metrics as the first columns, runs grouped by `seqattn.case` (the same
  model and settings over seeds: one group per row of results.md, its mean above its seed runs)
  and sorted by start. MLflow's "share view" stores views this way; `runs_page` opens it by its key.

`ensure` writes missing or outdated tags, on new and existing experiments alike; every run of the
project goes through it (`tracking.start_run`), and so does `seqattn ui`. This module needs
mlflow but not Keras, so `seqattn ui` starts without loading a backend.
"""

import json
import time
import urllib.parse

from mlflow import MlflowClient
from mlflow.entities import Experiment
from mlflow.exceptions import MlflowException

from seqattn.cli import PARTS

EXPERIMENTS = {
    "attention": "seqattn-part1-attention",
    "forecast": "seqattn-part2-forecast",
    "video": "seqattn-part3-video",
}
DESCRIPTIONS = PARTS
# Columns of the saved view: the numbers each part reports in results.md. Attention Span metrics
# are `attention_span` and `normalised_span` in every part (positions, lookback steps, frames).
HEADLINE_METRICS = {
    "attention": ("answer_accuracy", "alignment_accuracy", "attention_span", "normalised_span",
                  "correct_attention_span", "attention_entropy"),
    "forecast": ("test_mse", "test_mae", "attention_span", "normalised_span", "valid_prediction_time",
                 "epochs_run", "train_time_s"),
    "video": ("mse_short", "skill_short", "ssim_short", "mse_far", "skill_far", "f1_far", "attention_span",
              "normalised_span", "train_seconds"),
}
HEADLINE_PARAMS = {"attention": (), "forecast": ("dataset", "lookback", "horizon"), "video": ()}
CASE_TAG = "seqattn.case"
KIND_TAG, KIND_MODEL_TRAINING = "mlflow.experimentKind", "custom_model_development"
NOTE_TAG = "mlflow.note.content"
VIEW_KEY = "seqattn-headline"
VIEW_TAG = f"mlflow.sharedViewState.{VIEW_KEY}"
VIEW_NAME = "seqattn: headline metrics"


def headline_view(part: str) -> dict:
    """The runs-table state of the saved view (keys and column names as MLflow's UI writes them)."""
    columns = [f"metrics.`{name}`" for name in HEADLINE_METRICS[part]]
    columns += [f"params.`{name}`" for name in HEADLINE_PARAMS[part]]
    run_name = "attributes.`Run Name`"
    return {
        "orderByKey": "attributes.start_time",
        "orderByAsc": True,
        "selectedColumns": columns,
        "columnOrder": [run_name, "attributes.`Created`", *columns],  # else metrics come alphabetically
        "columnWidths": {run_name: 280},  # room for a group's name, e.g. etth1-M-L96-H96-seq2seq
        "groupBy": {"aggregateFunction": "average", "groupByKeys": [{"mode": "tag", "groupByData": CASE_TAG}]},
    }


def _saved_view(part: str, existing: str | None) -> str:
    """The view's tag value; the existing one when it already holds this view (its dates kept)."""
    state = json.dumps(headline_view(part), sort_keys=True)
    try:
        saved = json.loads(existing or "")
        if saved.get("name") == VIEW_NAME and saved.get("state") == state:
            return existing
    except (ValueError, AttributeError):
        pass  # missing, or not a saved view: write ours
    now = int(time.time() * 1000)
    return json.dumps({"name": VIEW_NAME, "createdAt": now, "updatedAt": now, "state": state})


def ensure(client: MlflowClient, part: str) -> Experiment:
    """The part's experiment, created if missing, with its description, kind and saved view."""
    name = EXPERIMENTS[part]
    experiment = client.get_experiment_by_name(name)
    if experiment is None:
        try:
            client.create_experiment(name)
        except MlflowException as err:
            if err.error_code != "RESOURCE_ALREADY_EXISTS":  # another process created it meanwhile
                raise
        experiment = client.get_experiment_by_name(name)
    tags = {NOTE_TAG: DESCRIPTIONS[part], KIND_TAG: KIND_MODEL_TRAINING,
            VIEW_TAG: _saved_view(part, experiment.tags.get(VIEW_TAG))}
    changed = {key: value for key, value in tags.items() if experiment.tags.get(key) != value}
    for key, value in changed.items():
        client.set_experiment_tag(experiment.experiment_id, key, value)
    return client.get_experiment(experiment.experiment_id) if changed else experiment


def runs_page(base_url: str, experiment_id: str) -> str:
    """Address of the experiment's runs table in MLflow's UI, in model-training mode, in the saved view."""
    query = urllib.parse.urlencode({"workflowType": "machine_learning", "viewStateShareKey": VIEW_KEY})
    return f"{base_url.rstrip('/')}/#/experiments/{experiment_id}/runs?{query}"
