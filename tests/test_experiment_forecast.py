"""End to end: `seqattn forecast` on a tiny CSV and Mackey-Glass writes results, figure and MLflow runs,
choosing the chaotic series' options on validation windows only."""

import json
from dataclasses import replace

import mlflow
import numpy as np
import pytest

from seqattn import cli
from seqattn.data import ett
from seqattn.data.windows import make_windows
from seqattn.experiments import forecast, forecast_eval
from seqattn.experiments.common import config_tag

pytestmark = pytest.mark.slow


@pytest.fixture
def tiny_csv(tmp_path):
    t = np.arange(360)
    lines = ["date,load,OT"] + [
        f"2021-03-{1 + i // 24:02d} {i % 24:02d}:00:00,{np.sin(i / 4):.5f},{np.cos(i / 6) + 0.1 * np.sin(i / 3):.5f}"
        for i in t
    ]
    path = tmp_path / "tiny.csv"
    path.write_text("\n".join(lines) + "\n")
    return path


def _argv(tmp_path, csv_path, *extra):
    return ["forecast", "--dataset", f"csv:{csv_path}", "mackey-glass", "--lookback", "24", "--horizon", "12",
            "--epochs", "1", "--out", str(tmp_path / "out"), "--tracking-uri", f"sqlite:///{tmp_path}/mlflow.db",
            *extra]


def test_run_writes_results_figure_and_mlflow_runs(tmp_path, tiny_csv, monkeypatch):
    monkeypatch.setitem(forecast.PROFILES, "quick", replace(forecast.PROFILES["quick"], chaotic_samples=600))
    ablations = dict(list(forecast.ABLATIONS.items())[:2])  # the base and one change keep the test short
    monkeypatch.setattr(forecast, "ABLATIONS", ablations)
    handed = []  # what the part hands the selection step

    def spy(name, windows, *args, **kwargs):
        handed.append((set(windows.x), set(windows.y), windows.series.name))
        return forecast_eval.select_options(name, windows, *args, **kwargs)

    monkeypatch.setattr(forecast, "select_options", spy)
    args = cli.parse_arguments(_argv(tmp_path, tiny_csv, "--ablation"), cli.build_parser)
    results = cli.run_part("forecast", args)

    out = tmp_path / "out" / "forecast"
    saved = json.loads((out / "results.json").read_text())
    assert saved["config"]["datasets"] == [f"csv:{tiny_csv}", "mackey-glass"]
    assert len(saved["runs"]) == 2 * len(forecast.MODELS)
    by_key = {(r["dataset"], r["model"]): r for r in saved["runs"]}
    assert set(by_key) == {(d, m) for d in (f"csv:{tiny_csv}", "mackey-glass") for m in forecast.MODELS}
    for run in saved["runs"]:
        assert run["mse"] >= 0 and len(run["mse_per_step"]) == 12
    assert np.mean(by_key[(f"csv:{tiny_csv}", "repeat")]["mse_per_step"]) == pytest.approx(
        by_key[(f"csv:{tiny_csv}", "repeat")]["mse"], rel=1e-6)
    mg = by_key[("mackey-glass", "hybrid")]
    assert 0 <= mg["valid_prediction_time"] <= 12 and len(mg["nrmse_per_step"]) == 12
    # The chaotic series' options: chosen per series and horizon on its validation windows, used by the
    # hybrid and seq2seq, recorded with the validation MSE of every candidate.
    assert handed == [({"train", "val"}, {"train", "val"}, "mackey-glass")]
    selection = saved["selection"]["mackey-glass L=24 H=12"]
    assert selection["metric"] == "val_mse" and set(selection["scores"]) == set(forecast.CHAOTIC_CANDIDATES)
    assert selection["chosen"] == min(selection["scores"], key=selection["scores"].get)
    assert mg["options"] == by_key[("mackey-glass", "seq2seq")]["options"] == selection["options"]
    # a run's state folder names its options: a run kept from another choice is never read back
    options = selection["options"]
    tagged = "mackey-glass-M-L24-H12-hybrid-s0-" + (f"{config_tag(options)}-" if options else "")
    assert [p.name.startswith(tagged) for p in (out / "state").glob("mackey-glass-M-L24-H12-hybrid-s0-*")] == [True]
    assert by_key[(f"csv:{tiny_csv}", "hybrid")]["options"] == {}
    assert set(saved["selection"]) == {"mackey-glass L=24 H=12"}  # the quick profile's keys are fixed on ETT and CSV
    assert {row["model"] for row in saved["summary"]} == set(forecast.MODELS)
    assert [a["variant"] for a in saved["ablation"]] == list(forecast.ABLATIONS)
    assert saved["attention"]["segment"] == 12 and saved["attention"]["span_steps"] > 0
    # hybrid vs seq2seq on the same windows and seed, per case, with the hybrid's span
    assert {(p["dataset"], p["lookback"], p["horizon"]) for p in saved["paired"]} == {
        (f"csv:{tiny_csv}", 24, 12), ("mackey-glass", 24, 12)}
    for p in saved["paired"]:
        assert p["relative_low"] <= p["relative"] <= p["relative_high"] and p["seeds_compared"] == [0]
        assert p["normalised_span"] > 0
    # no published row was measured on these series: none is shown beside them
    assert all(v == {"same_lookback": [], "other": []} for v in saved["published"].values())
    assert results["wall_time_s"] == saved["wall_time_s"]
    assert (out / "forecast_attention.png").stat().st_size > 10_000
    table = (out / "results.md").read_text()
    assert "| 12 | hybrid |" in table and "Ablation" in table and "hybrid vs seq2seq, paired" in table
    assert "Published" not in table and "chosen on the validation windows" in table
    trained_min = sum(r["train_time_s"] for r in saved["runs"]) / 60
    assert f"training time of the table's runs {trained_min:.0f} min in all" in table

    mlflow.set_tracking_uri(f"sqlite:///{tmp_path}/mlflow.db")
    runs = mlflow.search_runs(experiment_names=["seqattn-part2-forecast"])
    selection_runs = len(forecast.CHAOTIC_CANDIDATES)
    assert len(runs) == 1 + 2 * len(forecast.MODELS) + len(forecast.ABLATIONS) + selection_runs  # parent + nested
    name = f"csv:{tiny_csv}-M-L24-H12-dlinear-s0"
    dlinear = runs[runs["tags.mlflow.runName"] == name].iloc[0]
    assert dlinear["metrics.test_mse"] == pytest.approx(by_key[(f"csv:{tiny_csv}", "dlinear")]["mse"])
    # The hybrid runs hold its Attention Span over the lookback, the errors per horizon step, the
    # training curves, and the model and figure; seeds of one case share the tag MLflow's UI groups by.
    client = mlflow.MlflowClient()
    (hybrid,) = mlflow.search_runs(experiment_names=["seqattn-part2-forecast"], output_format="list",
                                   filter_string="params.model = 'hybrid' and tags.`seqattn.case` LIKE 'csv:%'")
    record = by_key[(f"csv:{tiny_csv}", "hybrid")]
    assert hybrid.data.tags["seqattn.case"] == f"csv:{tiny_csv}-M-L24-H12-hybrid"
    assert hybrid.data.metrics["attention_span"] == pytest.approx(record["attention_span_steps"])
    assert 0 < hybrid.data.metrics["normalised_span"] == pytest.approx(record["normalised_span"])
    heads = forecast.PROFILES["quick"].num_heads
    assert {f"attention_span_head{h}" for h in range(1, heads + 1)} <= set(hybrid.data.metrics)
    segments = client.get_metric_history(hybrid.info.run_id, "attention_span_per_decoder_segment")
    assert [m.step for m in segments] == [1]  # H = 12 in one segment of 12 steps
    per_step = sorted((m.step, m.value) for m in client.get_metric_history(hybrid.info.run_id, "test_mse_per_step"))
    assert [step for step, _ in per_step] == list(range(1, 13))
    np.testing.assert_allclose([value for _, value in per_step], record["mse_per_step"])
    assert len(client.get_metric_history(hybrid.info.run_id, "loss")) == 1  # one epoch
    assert {a.path for a in client.list_artifacts(hybrid.info.run_id)} == {"model.keras", "forecast_attention.png"}

    # Rerunning the same command reuses every finished run instead of training again.
    cli.run_part("forecast", cli.parse_arguments(_argv(tmp_path, tiny_csv), cli.build_parser))
    again = json.loads((out / "results.json").read_text())
    assert [r["mse"] for r in again["runs"]] == [r["mse"] for r in saved["runs"]]
    nested = mlflow.search_runs(experiment_names=["seqattn-part2-forecast"])
    assert len(nested) == len(runs) + 1  # only a new parent run


def test_options_are_chosen_per_horizon_on_that_horizons_validation_windows(tmp_path, monkeypatch):
    series = forecast.load_series("mackey-glass", "M", seed=0, n_samples=600)
    jobs = [("mackey-glass", 24, 6), ("mackey-glass", 24, 12)]
    datasets = {job: make_windows(series, job[1], job[2]) for job in jobs}
    seen = []

    def pick_by_horizon(name, windows, candidates, config, seed, state_dir, verbose, refinements):
        assert refinements == {}  # chaotic series choose among their candidates only
        seen.append((windows.horizon, set(windows.x), set(windows.y)))
        label = sorted(candidates)[windows.horizon == 12]  # a different candidate wins at each horizon
        return {"chosen": label, "options": candidates[label]}

    monkeypatch.setattr(forecast, "select_options", pick_by_horizon)
    chosen = forecast.choose_options(forecast.PROFILES["quick"], datasets, jobs, tmp_path, "tag", 0)
    assert seen == [(6, {"train", "val"}, {"train", "val"}), (12, {"train", "val"}, {"train", "val"})]
    assert set(chosen) == {"mackey-glass L=24 H=6", "mackey-glass L=24 H=12"}
    assert chosen["mackey-glass L=24 H=6"]["options"] != chosen["mackey-glass L=24 H=12"]["options"]
    assert (chosen["mackey-glass L=24 H=6"]["horizon"], chosen["mackey-glass L=24 H=12"]["horizon"]) == (6, 12)


def test_bad_options_and_bad_csv_give_one_line(tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_info:
        cli.parse_arguments(["forecast", "--dataset", "weather"], cli.build_parser)
    assert exit_info.value.code == 2
    assert "csv:PATH" in capsys.readouterr().err
    bad = tmp_path / "bad.csv"
    bad.write_text("date,OT\n2020-01-01,1.0\n2020-01-02,oops\n")
    code = cli.main(["forecast", "--dataset", f"csv:{bad}", "--out", str(tmp_path / "o"),
                     "--tracking-uri", f"sqlite:///{tmp_path}/m.db"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 1 and err == [f"seqattn: error: {bad}: line 3, column 'OT': non-numeric value 'oops'"]
    assert not (tmp_path / "o" / "forecast" / "results.json").exists()


def test_segments_fall_back_to_common_divisors():
    config = forecast.PROFILES["quick"]
    assert forecast_eval.segments(config, 96, 96, {}) == (24, 24)
    assert forecast_eval.segments(config, 96, 100, {}) == (4, 24)  # output segments divide H, keys L
    assert forecast_eval.segments(config, 100, 96, {"key_segment": 8}) == (24, 4)


def test_lanes_share_state_folders_and_a_fixed_option_leaves_the_candidates(tmp_path):
    def config(*argv):
        return forecast.resolve_config(cli.parse_arguments(["forecast", "--profile", "paper", *argv], cli.build_parser))

    whole, lane = config(), config("--dataset", "etth1", "--lookback", "336", "720", "--models", "hybrid")
    assert forecast.plan(lane) == [("etth1", lookback, h) for lookback in (336, 720) for h in whole.horizons]
    assert set(forecast.plan(lane)) < set(forecast.plan(whole))
    kept = {k: v for k, v in vars(whole).items() if k not in forecast._NOT_IN_TAG}
    assert kept == {k: v for k, v in vars(lane).items() if k not in forecast._NOT_IN_TAG}
    fixed = config("--normalisation", "none")
    assert all("normalisation" not in options for options in fixed.chaotic_candidates.values())
    assert whole.refinements == forecast.NORMALISATION_REFINEMENTS and fixed.refinements == {}
    assert len(fixed.chaotic_candidates) == len({str(o) for o in fixed.chaotic_candidates.values()})
    fixed_keys = config("--key-segment", "8")  # the loss is still chosen, and the normalisation refined
    assert forecast.candidates_for(fixed_keys, "etth1", 96, 96) == forecast.LOSS_CANDIDATES
    assert fixed_keys.refinements == forecast.NORMALISATION_REFINEMENTS
    # keys chosen per lookback, among those that keep the encoder's steps within max_keys
    assert forecast.candidates_for(whole, "etth1", 336, 96) == forecast.LOSS_KEY_CANDIDATES
    assert forecast.candidates_for(whole, "etth1", 720, 96) == {
        "24-step keys": {"key_segment": 24}, "24-step keys and MAE loss": {"key_segment": 24, "loss": "mae"}}
    assert forecast.candidates_for(whole, "lorenz", 96, 96) == forecast.CHAOTIC_CANDIDATES


def test_same_seed_reproduces_the_metrics_and_another_seed_changes_them(tmp_path, tiny_csv, capsys):
    def metrics(folder, seed):
        argv = ["forecast", "--dataset", f"csv:{tiny_csv}", "--lookback", "24", "--horizon", "12", "--epochs", "2",
                "--models", "hybrid", "dlinear", "--seeds", str(seed), "--out", str(folder / "out"),
                "--tracking-uri", f"sqlite:///{folder}/mlflow.db"]
        assert cli.main(argv) == 0
        assert "finished earlier" not in capsys.readouterr().out  # trained afresh, nothing reused
        runs = json.loads((folder / "out" / "forecast" / "results.json").read_text())["runs"]
        return {r["model"]: {k: r[k] for k in ("mse", "mae", "mse_per_step", "epochs_run")} for r in runs}

    first = metrics(tmp_path / "a", seed=0)
    assert metrics(tmp_path / "b", seed=0) == first  # exactly: same seed, backend and data
    other = metrics(tmp_path / "c", seed=1)
    for model in ("hybrid", "dlinear"):
        assert other[model]["mse"] != first[model]["mse"], model


def test_the_loss_option_compiles_mae_for_the_recurrent_models_only():
    config = forecast.PROFILES["quick"]
    hybrid = forecast_eval.build_model("hybrid", config, 24, 12, loss="mae")
    assert hybrid.loss == "mae" and "loss" not in hybrid.get_config()
    assert forecast_eval.build_model("seq2seq", config, 24, 12).loss == "mse"  # the config's default
    assert forecast_eval.build_model("dlinear", config, 24, 12, loss="mae").loss == "mse"


def test_dlinear_trains_by_its_own_recipe(tmp_path, tiny_csv):
    """Batches of 32, the rate halved after every epoch, its own epochs and patience."""
    data = make_windows(ett.load_csv(tiny_csv), 24, 12)
    config = replace(forecast.PROFILES["quick"], dlinear_epochs=3, dlinear_patience=5, epochs=1)
    model = forecast_eval.build_model("dlinear", config, 24, 12)
    batch_sizes = []
    model.fit = _recording_fit(model.fit, batch_sizes)
    epochs_run, seconds = forecast_eval.fit(model, "dlinear", data, config, 0, tmp_path, config.epochs, verbose=0)
    assert epochs_run == 3 and seconds > 0
    assert batch_sizes == [config.dlinear_batch_size]
    assert float(model.optimizer.learning_rate) == pytest.approx(config.dlinear_learning_rate * 0.25)


def _recording_fit(fit, batch_sizes):
    def wrapped(batches, *args, **kwargs):
        batch_sizes.append(batches.batch_size)  # training.fit batches the arrays itself
        return fit(batches, *args, **kwargs)
    return wrapped
