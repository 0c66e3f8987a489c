"""Part 1 end to end: the trained attention must point at the correct item."""

import json
from argparse import Namespace

import mlflow
import pytest

from seqattn.experiments import attention


@pytest.mark.slow
def test_quick_profile_learns_the_correct_alignment(tmp_path):
    args = Namespace(profile="quick", seeds=[0], out=str(tmp_path / "out"), epochs=None, n_pairs=None,
                     num_heads=None, tracking_uri=f"sqlite:///{tmp_path}/mlflow.db", backend=None)
    results = attention.run(args)

    out = tmp_path / "out" / "attention"
    saved = json.loads((out / "results.json").read_text())
    assert saved["summary"] == results["summary"]
    # Held-out queries: argmax of the learned weights is the item holding the asked key.
    assert results["per_seed"]["0"]["alignment_accuracy"] >= 0.9
    assert results["per_seed"]["0"]["answer_accuracy"] >= 0.9
    assert (out / "attention_viz.png").stat().st_size > 10_000

    mlflow.set_tracking_uri(args.tracking_uri)
    runs = mlflow.search_runs(experiment_names=["seqattn-part1-attention"], output_format="list")
    by_name = {r.info.run_name: r for r in runs}
    assert set(by_name) == {"attention-quick", "retrieval-seed0"}
    child = by_name["retrieval-seed0"]
    assert child.data.tags["mlflow.parentRunId"] == by_name["attention-quick"].info.run_id
    assert child.data.params["epochs"] == str(attention.PROFILES["quick"].epochs)
    assert child.data.metrics["alignment_accuracy"] == results["per_seed"]["0"]["alignment_accuracy"]
    # Attention Span: mean, normalised, per head; training curves per epoch; the figure beside the model.
    heads = attention.PROFILES["quick"].num_heads
    for name in ["attention_span", "normalised_span"] + [f"{kind}_head{h}" for kind in ("attention_span",
                                                                                          "normalised_span")
                                                          for h in range(1, heads + 1)]:
        assert child.data.metrics[name] == pytest.approx(results["per_seed"]["0"][name])
    client = mlflow.MlflowClient()
    history = client.get_metric_history(child.info.run_id, "val_loss")
    assert sorted(m.step for m in history) == list(range(attention.PROFILES["quick"].epochs))
    assert {a.path for a in client.list_artifacts(child.info.run_id)} == {"attention_viz.png", "model.keras"}
    assert child.data.tags["seqattn.case"] == "retrieval"
