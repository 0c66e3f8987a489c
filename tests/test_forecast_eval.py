"""Part 2's choices read no test window; the hybrid's finer keys; its Attention Span in steps; the
paired comparison; published rows only beside the dataset and lookback they were measured at."""

import json
from dataclasses import replace

import numpy as np
import pytest

from seqattn import published
from seqattn.data.windows import Series, fraction_borders, make_windows
from seqattn.experiments import forecast, forecast_eval, forecast_report
from seqattn.models.forecaster import Forecaster

pytestmark = pytest.mark.backend


class ReadLog(dict):
    """A dict of splits that records which splits were read."""

    def __init__(self, items, log):
        super().__init__(items)
        self.log = log

    def __getitem__(self, key):
        self.log.append(key)
        return super().__getitem__(key)

    def items(self):
        self.log.extend(self.keys())
        return super().items()

    def values(self):
        self.log.extend(self.keys())
        return super().values()


@pytest.fixture
def small_windows():
    t = np.arange(600, dtype=np.float64)
    values = np.stack([np.sin(t / 5), np.cos(t / 7)], axis=1)
    return make_windows(Series("waves", values, ("a", "b"), fraction_borders(len(t))), 24, 12)


def test_selection_reads_only_training_and_validation_windows(small_windows, tmp_path, monkeypatch):
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path}/mlflow.db")
    read = []
    poisoned = {**small_windows.x, "test": np.full_like(small_windows.x["test"], np.nan)}
    data = replace(small_windows, x=ReadLog(poisoned, read), y=ReadLog(small_windows.y, read))
    config = replace(forecast.PROFILES["quick"], epochs=1, units=8, num_heads=2)
    candidates = {"12-step keys": {"segment": 12, "key_segment": 12}, "4-step keys": {"segment": 12, "key_segment": 4}}

    windows = forecast_eval.validation_windows(data)
    with pytest.raises(ValueError, match="test windows"):
        forecast_eval.select_options("hybrid", data, candidates, config, 0, tmp_path / "s0", verbose=0)
    selection = forecast_eval.select_options("hybrid", windows, candidates, config, 0, tmp_path / "s1", verbose=0)

    assert read and "test" not in read
    assert set(windows.x) == set(windows.y) == {"train", "val"}
    assert selection["metric"] == "val_mse" and set(selection["scores"]) == set(candidates)
    assert all(np.isfinite(v) for v in selection["scores"].values())  # the NaN test split was never used
    assert selection["chosen"] == min(selection["scores"], key=selection["scores"].get)
    assert selection["options"] == candidates[selection["chosen"]]
    assert selection["validation_windows"] == len(small_windows.x["val"])
    again = forecast_eval.select_options("hybrid", windows, {}, config, 0, tmp_path / "s1", verbose=0)
    assert again == selection  # read back, not trained again


def test_a_refinement_is_tried_on_the_winning_candidate_only(small_windows, tmp_path, monkeypatch):
    trained = []

    def fake_mse(name, windows, options, config, seed, state_dir, verbose):
        trained.append(options)
        return {12: 0.5, 4: 0.7}[options["key_segment"]] - 0.1 * (options.get("normalisation") == "last")

    monkeypatch.setattr(forecast_eval, "_validation_mse", fake_mse)
    candidates = {"12-step keys": {"key_segment": 12}, "4-step keys": {"key_segment": 4}}
    refinements = {"last-value normalisation": {"normalisation": "last"}}
    windows = forecast_eval.validation_windows(small_windows)
    selection = forecast_eval.select_options("hybrid", windows, candidates, None, 0, tmp_path, 0, refinements)
    assert trained == [{"key_segment": 12}, {"key_segment": 4}, {"key_segment": 12, "normalisation": "last"}]
    assert selection["chosen"] == "12-step keys and last-value normalisation"
    assert selection["options"] == {"key_segment": 12, "normalisation": "last"}
    assert selection["scores"] == pytest.approx({"12-step keys": 0.5, "4-step keys": 0.7,
                                                 "12-step keys and last-value normalisation": 0.4})


def test_keys_finer_than_output_segments():
    x = np.random.default_rng(0).normal(size=(3, 48, 2)).astype("float32")
    model = Forecaster(24, units=16, num_heads=2, segment=12, key_segment=4)
    pred, weights = model.attention_weights(x)
    assert pred.shape == (3, 24, 2)
    assert weights.shape == (3, 2, 2, 24 // 12, 48 // 4)  # (B, G, nh, H/w, L/k)
    assert np.allclose(weights.sum(axis=-1), 1.0, atol=1e-5)
    assert Forecaster.from_config(model.get_config()).key_segment == 4
    with pytest.raises(ValueError, match="key_segment=5 must divide the lookback"):
        Forecaster(24, segment=12, key_segment=5)(x)


class FixedAttention:
    """Stands in for a trained hybrid: returns the attention weights it is given."""

    def __init__(self, weights, segment, key_segment):
        self.weights, self.segment, self.key_segment = weights, segment, key_segment

    def attention_weights(self, x):
        return None, self.weights


def _data(lookback, horizon, windows=4):
    return type("Data", (), {"x": {"test": np.zeros((windows, lookback, 1))}, "lookback": lookback})()


def test_attention_span_in_steps_with_keys_finer_than_outputs():
    lookback, w, k = 96, 24, 8  # 2 decoder segments of H = 48, 12 keys
    n_out, n_in = 2, lookback // k
    uniform = np.full((4, 1, 2, n_out, n_in), 1 / n_in)
    summary = forecast_eval.attention_summary(FixedAttention(uniform, w, k), _data(lookback, 48))
    assert summary["normalised_span"] == pytest.approx(1.0)
    # uniform weights: mean lag L/2 = 48 plus the decoder segment's centre, 12 and 36 steps in
    assert summary["uniform_span_per_decoder_step"] == pytest.approx([60.0, 84.0])
    assert summary["windows"] == 4 and summary["keys"] == n_in and summary["entropy_nats"] == pytest.approx(np.log(n_in))
    last = np.zeros_like(uniform)
    last[..., -1] = 1.0  # every query on the key just before the forecast origin
    summary = forecast_eval.attention_summary(FixedAttention(last, w, k), _data(lookback, 48))
    # centre of decoder segment j (j*24 + 12 after the origin) to the centre of the last key (4 before it)
    assert summary["span_per_decoder_step"] == pytest.approx([16.0, 40.0])
    assert summary["span_steps"] == pytest.approx(28.0)
    assert summary["normalised_span"] < 0.5 and summary["metrics"]["attention_span_head2"] == pytest.approx(28.0)


def test_paired_comparison_over_seeds_and_window_blocks():
    rng = np.random.default_rng(0)
    base = {seed: rng.gamma(2.0, 0.2, size=100) for seed in (0, 1, 2)}
    better = {seed: 0.9 * values for seed, values in base.items()}
    result = forecast_eval.paired_comparison(better, base, horizon=10)
    assert result["relative"] == pytest.approx(-0.1)
    assert result["relative_low"] == pytest.approx(-0.1) and result["relative_high"] == pytest.approx(-0.1)
    assert result["sequences"] == 10 and result["seeds"] == 3 and result["block_windows"] == 10
    same = forecast_eval.paired_comparison(base, base, horizon=10)
    assert same["difference"] == same["difference_low"] == same["difference_high"] == 0
    noisy = {seed: values * rng.uniform(0.5, 1.5, size=100) for seed, values in base.items()}
    result = forecast_eval.paired_comparison(noisy, base, horizon=10)
    assert result["relative_low"] < result["relative"] < result["relative_high"]


def test_paired_comparison_counts_every_window_when_blocks_do_not_divide_them():
    """105 windows at H=10: 10 blocks of 10 or 11; the means are the windows' own, the last 5 included."""
    a = {0: np.ones(105), 1: np.ones(105)}
    b = {0: np.ones(105), 1: np.ones(105)}
    a[0][-5:] = 22.0  # mean 2.0 over the 105 windows of seed 0
    result = forecast_eval.paired_comparison(a, b, horizon=10)
    assert result["sequences"] == 10
    assert result["mean_a"] == pytest.approx(1.5) and result["mean_b"] == pytest.approx(1.0)
    assert result["relative"] == pytest.approx(0.5)


def test_published_rows_only_under_their_dataset_and_lookback():
    etth1 = forecast_report.published_for("etth1", "M", [96, 336, 720])
    same = {(r["label"], r["lookback"]) for r in etth1["same_lookback"]}
    assert same == {("TimeMixer", 96), ("iTransformer", 96), ("DLinear", 336), ("SegRNN", 720)}
    assert {r["label"] for r in etth1["other"]} == {"Repeat", "LSTMa", "PatchTST/64"}
    assert forecast_report.published_for("etth2", "M", [96]) == {"same_lookback": [], "other": []}
    assert forecast_report.published_for("etth1", "S", [96]) == {"same_lookback": [], "other": []}
    timemixer = next(r for r in published.forecast_rows("etth1", 96) if r.key == "timemixer")
    assert timemixer.mse == {96: 0.375, 192: 0.429, 336: 0.484, 720: 0.498}

    stat = {"mean": 0.4, "std": 0.01}
    row = {"features": "M", "horizon": 96, "model": "hybrid", "seeds": [0], "mse": stat, "mae": stat,
           "train_time_s": {"mean": 1.0, "std": 0.0}}
    etth2 = forecast_report.results_markdown([row | {"dataset": "etth2", "lookback": 96}], [], ("hybrid",), "", {}, [])
    assert "Published" not in etth2 and "ETTh1" not in etth2 and "TimeMixer" not in etth2
    table = forecast_report.results_markdown([row | {"dataset": "etth1", "lookback": 96}], [], ("hybrid",), "", {}, [])
    same_lookback = table[table.index("Published at the same lookback"):table.index("## Published at other")]
    assert "TimeMixer" in same_lookback and "iTransformer" in same_lookback and "DLinear" not in same_lookback
    assert "| DLinear (L=336) | 0.375 |" in table and "Zeng et al. (2023)" in table


def test_the_table_reuses_the_run_its_selection_trained(small_windows, tmp_path, monkeypatch):
    """The table's seed-0 hybrid with the chosen options is the selection's run of that candidate, to
    the last digit: it is read back, not trained twice; another seed or options trains anew."""
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path}/mlflow.db")
    config = replace(forecast.PROFILES["quick"], epochs=2, units=8, num_heads=2)
    candidates = {"12-step keys": {"segment": 12, "key_segment": 12}, "4-step keys": {"segment": 12, "key_segment": 4}}
    windows = forecast_eval.validation_windows(small_windows)
    selection = forecast_eval.select_options("hybrid", windows, candidates, config, 0, tmp_path / "select", verbose=0)
    options, folder = selection["options"], forecast_eval.candidate_folder(tmp_path / "select", selection["options"])
    fresh, _ = forecast_eval.train_and_evaluate("hybrid", small_windows, config, 0, tmp_path / "fresh", "fresh",
                                                config.epochs, 0, **options)

    def no_training(*args, **kwargs):
        raise AssertionError("trained again")

    monkeypatch.setattr(forecast_eval, "fit", no_training)
    reused, _ = forecast_eval.train_and_evaluate("hybrid", small_windows, config, 0, tmp_path / "reused", "reused",
                                                 config.epochs, 0, trained=folder, **options)
    assert (fresh["trained_in"], reused["trained_in"]) == ("this run", "selection")
    assert reused["trained_in_run"] == json.loads((folder / "score.json").read_text())["mlflow_run_id"]
    assert reused["mse"] == fresh["mse"] and reused["mse_per_step"] == fresh["mse_per_step"]
    assert reused["epochs_run"] == fresh["epochs_run"] and reused["train_time_s"] > 0
    assert np.array_equal(np.load(tmp_path / "reused" / "window_mse.npy"), np.load(tmp_path / "fresh" / "window_mse.npy"))
    other = candidates["4-step keys" if options == candidates["12-step keys"] else "12-step keys"]
    for i, (seed, asked, epochs) in enumerate(((1, options, 2), (0, other, 2), (0, options, 3))):
        with pytest.raises(AssertionError, match="trained again"):
            forecast_eval.train_and_evaluate("hybrid", small_windows, config, seed, tmp_path / f"other{i}", "other",
                                             epochs, 0, trained=folder, **asked)
