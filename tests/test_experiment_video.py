"""Part 3 end to end on tiny sizes: training all three models, results.json, figures, MLflow, and
evaluating a saved checkpoint on sequence files a user brings. The tiny study rolls out to frame
52, so the far window (frames 50-52) and the paired comparison on it are exercised."""

import json
from dataclasses import replace

import mlflow
import numpy as np
import pytest

from seqattn import cli
from seqattn.data import moving_mnist
from seqattn.experiments import video_eval, video_report
from seqattn.experiments.video import PROFILES, config_tag, resolve_config
from seqattn.experiments.video_config import build_model, parameter_counts

TINY = ["--epochs", "1", "--stages", "2", "--train-sequences", "8", "--batch-size", "2", "--test-sequences", "3",
        "--context", "4", "--horizon", "3", "--eval-length", "52"]


@pytest.fixture
def isolated(tmp_path, monkeypatch):
    monkeypatch.setenv("SEQATTN_CACHE_DIR", str(tmp_path / "cache"))
    return tmp_path


def _run(tmp_path, *extra):
    argv = ["video", "--out", str(tmp_path / "out"), "--tracking-uri", f"sqlite:///{tmp_path}/mlflow.db", *extra]
    return cli.main(argv)


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """One tiny study shared by the tests that read its outputs (training is the slow part)."""
    tmp_path = tmp_path_factory.mktemp("video")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("SEQATTN_CACHE_DIR", str(tmp_path / "cache"))
        assert _run(tmp_path, *TINY) == 0
    return tmp_path


@pytest.mark.slow
def test_tiny_study_writes_results_figures_and_runs(trained, monkeypatch):
    monkeypatch.setenv("SEQATTN_CACHE_DIR", str(trained / "cache"))
    out = trained / "out" / "video"
    results = json.loads((out / "results.json").read_text())
    assert set(results["models"]) == {"tap", "htap", "convlstm"}
    assert results["windows"] == {"short": [5, 14], "rollout": [5, 52], "far": [50, 52]}
    for name, model in results["models"].items():
        assert len(model["per_frame"]["mse"]["mean"]) == 52 - 4, name
        assert {"mse_short", "mse_far", "skill_far", "f1_far", "ssim_short"} <= set(model["metrics"]), name
        assert model["metrics"]["mse_rollout"]["mean"] > 0
    assert abs(results["parameter_ratio_tap_over_htap"]["transition"] - 1) < 0.05
    # The floor and the trivial predictions go through the same evaluation as the models.
    assert results["codec"]["metrics"]["mse_far"]["mean"] < results["baselines"]["blank"]["metrics"]["mse_far"]
    assert results["baselines"]["blank"]["metrics"]["skill_far"] == 0.0
    assert results["baselines"]["blank"]["metrics"]["f1_far"] == 0.0
    far = results["htap_vs_tap"]["far"]
    assert far["seeds"] == 1 and far["sequences"] == 3 and far["relative_low"] <= far["relative"] <= far["relative_high"]
    assert [p["stage"] for p in results["budget_curve"]] == [1, 2]
    attention = results["htap_attention"]
    assert len(attention["layers"]) == 1 and len(attention["layers"]["layer1"]["span"]) == 4
    assert len(attention["span_by_step_mean_over_heads"][0]) == 51
    assert results["config"]["train_sequences"] == 8
    for name in ("research_attention_plot.png", "skill_by_horizon.png", "budget_curve.png", "strip.png",
                 "strip.npz", "rollout.gif", "results.md"):
        assert (out / name).stat().st_size > 0, name

    mlflow.set_tracking_uri(f"sqlite:///{trained}/mlflow.db")
    runs = mlflow.search_runs(experiment_names=["seqattn-part3-video"])
    assert set(runs["tags.mlflow.runName"]) == {"video-quick", "codec-seed0", "tap-seed0", "htap-seed0",
                                               "convlstm-seed0"}
    child = runs[runs["tags.mlflow.runName"] == "htap-seed0"].iloc[0]
    assert child["metrics.mse_far"] == pytest.approx(results["models"]["htap"]["metrics"]["mse_far"]["mean"])
    client = mlflow.MlflowClient()
    span = client.get_metric_history(child["run_id"], "attention_span_per_frame")
    assert [m.step for m in span] == list(range(2, 53))  # one step per predicted frame
    for name in ("tap", "htap", "convlstm"):
        run_id = runs[runs["tags.mlflow.runName"] == f"{name}-seed0"].iloc[0]["run_id"]
        assert [m.step for m in client.get_metric_history(run_id, "test_mse_per_frame")] == list(range(5, 53))

    # A second run with the same options reuses the trained models and reproduces the numbers.
    assert _run(trained, *TINY) == 0
    again = json.loads((out / "results.json").read_text())
    assert again["models"]["htap"]["metrics"] == results["models"]["htap"]["metrics"]


@pytest.mark.slow
def test_evaluate_checkpoint_on_files_in_both_layouts(trained, monkeypatch):
    monkeypatch.setenv("SEQATTN_CACHE_DIR", str(trained / "cache"))
    checkpoint = next((trained / "out" / "video" / "runs").glob("htap-seed0-*/model.keras"))
    sequences = np.random.default_rng(0).integers(0, 256, (3, 9, 64, 64), dtype=np.uint8)
    np.save(trained / "nthw.npy", sequences)
    np.save(trained / "tnhw.npy", sequences.transpose(1, 0, 2, 3))
    metrics = []
    for name, layout in (("nthw.npy", "nthw"), ("tnhw.npy", "tnhw")):
        assert _run(trained, "evaluate", "--checkpoint", str(checkpoint), "--test-set", str(trained / name),
                    "--layout", layout) == 0
        results = json.loads((trained / "out" / "video" / "evaluate" / "results.json").read_text())
        assert results["sequences"] == 3 and results["frames"] == 9 and results["context"] == 4
        assert results["windows"] == {"short": [5, 9], "rollout": [5, 9]}
        assert len(results["per_frame"]["mse"]) == 5
        metrics.append(results["metrics"])
    assert metrics[0] == metrics[1]
    assert (trained / "out" / "video" / "evaluate" / "mse_by_horizon.png").is_file()


def test_bad_options_fail_with_one_clear_line(isolated, capsys):
    assert _run(isolated, "--context", "10", "--eval-length", "10") == 1
    assert "--eval-length 10 must exceed --context 10" in capsys.readouterr().err
    assert _run(isolated, "--epochs", "0") == 1
    assert "--epochs must be a positive integer" in capsys.readouterr().err
    assert _run(isolated, "evaluate", "--test-set", "x.npy") == 1
    assert "needs --checkpoint" in capsys.readouterr().err
    assert _run(isolated, "evaluate", "--checkpoint", str(isolated / "none.keras"), "--test-set", "x.npy") == 1
    assert "does not exist" in capsys.readouterr().err


@pytest.mark.parametrize("profile", sorted(PROFILES))
def test_every_profile_builds_its_models_with_matched_transitions(profile):
    """The profiles a user runs for hours (paper) or on a GPU (full) build every model and roll it
    out, and TAP's transition stays within 1% of H-TAP's parameters, as the comparison assumes."""
    config = PROFILES[profile]
    clip = np.zeros((1, config.context + 2, 64, 64, 1), np.float32)
    transitions = {}
    for name in ("tap", "htap", "convlstm"):
        model = build_model(name, config)
        assert tuple(model(clip).shape) == (1, config.context + 1, 64, 64, 1)
        transitions[name] = parameter_counts(model).get("transition")
    assert abs(transitions["tap"] / transitions["htap"] - 1) < 0.01, transitions


def test_far_window_starts_after_the_context():
    assert video_eval.windows(10, 100) == {"short": [11, 20], "rollout": [11, 100], "far": [50, 100]}
    assert video_eval.windows(60, 100) == {"short": [61, 70], "rollout": [61, 100], "far": [61, 100]}
    assert video_eval.windows(10, 30) == {"short": [11, 20], "rollout": [11, 30]}
    truth = np.random.default_rng(0).random((2, 100, 8, 8)).astype(np.float32)
    evaluation = video_eval.evaluate(video_eval.last_frame_predictor(60), truth, 60)
    assert evaluation["per_sequence"]["far"]["mse"].shape == (2,)
    by_hand = ((truth[:, 60:] - truth[:, 59:60]) ** 2).sum(axis=(2, 3)).mean(axis=1)
    np.testing.assert_allclose(evaluation["per_sequence"]["far"]["mse"], by_hand, rtol=1e-6)
    short = ((truth[:, 60:70] - truth[:, 59:60]) ** 2).sum(axis=(2, 3)).mean(axis=1)  # frames 61..70
    np.testing.assert_allclose(evaluation["per_sequence"]["short"]["mse"], short, rtol=1e-6)
    lit, held = truth[:, 60:70] > 0.5, truth[:, 59:60] > 0.5  # digit masks, as the foreground F1 thresholds
    dice = 2 * (lit & held).sum(axis=(2, 3)) / (lit.sum(axis=(2, 3)) + held.sum(axis=(2, 3)))
    np.testing.assert_allclose(evaluation["per_sequence"]["short"]["f1"], dice.mean(axis=1), rtol=1e-6)


def test_trivial_predictors_score_as_computed_by_hand():
    truth = np.zeros((2, 6, 8, 8), np.float32)
    truth[:, :, 2:4, 2:4] = 1.0  # a 2x2 square, 4 bright pixels in every frame
    blank = video_eval.evaluate(video_eval.blank_predictor(3), truth, 3)
    np.testing.assert_allclose(blank["per_frame"]["mse"], 4.0)
    np.testing.assert_allclose(blank["per_frame"]["skill"], 0.0)
    np.testing.assert_allclose(blank["per_frame"]["f1"], 0.0)
    still = video_eval.evaluate(video_eval.last_frame_predictor(3), truth, 3)  # the square never moves
    np.testing.assert_allclose(still["per_frame"]["mse"], 0.0)
    np.testing.assert_allclose(still["per_frame"]["skill"], 1.0)
    np.testing.assert_allclose(still["per_frame"]["f1"], 1.0)


def test_window_skill_is_one_minus_mean_mse_over_mean_blank_mse():
    truth = np.zeros((2, 60, 8, 8), np.float32)
    truth[0, :, 2:4, 2:4] = 1.0  # sequence 0: 4 lit pixels in every frame; sequence 1 stays black
    truth[:, 55:] = 0.0  # frames 56-60 black in every sequence: their per-frame skill is 0/0
    perfect = video_eval.evaluate(lambda x: x[:, 10:].copy(), truth, 10)
    assert video_eval.window_scores(perfect, 10)["skill_far"] == 1.0
    blank = video_eval.evaluate(video_eval.blank_predictor(10), truth, 10)
    assert video_eval.window_scores(blank, 10)["skill_far"] == 0.0
    # half the ink everywhere: per lit frame MSE 4 x 0.25 = 1 in sequence 0, blank MSE 4; frames 50-55
    # lit, 56-60 black: window MSE (6 x 0.5) / 11, blank (6 x 2) / 11, skill 1 - 3/12
    half = video_eval.evaluate(lambda x: 0.5 * x[:, 10:], truth, 10)
    np.testing.assert_allclose(video_eval.window_scores(half, 10)["skill_far"], 0.75)


def test_mean_frame_baseline_scores_as_computed_by_hand():
    clips = np.zeros((2, 2, 8, 8), np.uint8)  # SSIM needs 7x7 frames
    clips[0, :, 0, 0] = 255  # pixel (0, 0) lit in half of the four frames
    clips[1, 0, 1, 1] = 255  # pixel (1, 1) lit in one of them
    frame = video_eval.mean_frame(clips)
    expected = np.zeros((8, 8), np.float32)
    expected[0, 0], expected[1, 1] = 0.5, 0.25
    np.testing.assert_allclose(frame, expected)
    truth = np.zeros((1, 5, 8, 8), np.float32)
    truth[:, :, 0, 0] = 1.0
    evaluation = video_eval.evaluate(video_eval.mean_frame_predictor(frame, 3), truth, 3)
    np.testing.assert_allclose(evaluation["per_frame"]["mse"], 0.5**2 + 0.25**2)  # (1 - 0.5)^2 + 0.25^2
    np.testing.assert_allclose(evaluation["per_frame"]["skill"], 1.0 - 0.3125 / 1.0)


def _observed(pool, n, length, seed, n_digits=2):
    """Generated sequences in [0, 1] and the layout they were drawn from."""
    frames = moving_mnist.generate(pool, n, length, n_digits, seed=seed).astype(np.float32) / 255.0
    return frames, moving_mnist.layout_of(n, n_digits, len(pool), seed)


def test_observer_with_exact_directions_predicts_the_sequences_themselves():
    pool = np.random.default_rng(1).integers(0, 256, (10, 28, 28), dtype=np.uint8)
    truth, layout = _observed(pool, 5, 14, seed=3)
    observer = video_eval.trajectory_oracle_predictor(pool, layout, 4, direction_noise_deg=0.0, samples=2)
    evaluation = video_eval.evaluate(observer, truth, 4, chunk=2)
    np.testing.assert_allclose(evaluation["per_frame"]["mse"], 0.0, atol=1e-9)


def test_observer_spreads_the_digits_ink_and_ignores_how_sequences_are_chunked():
    pool = np.full((1, 28, 28), 255, np.uint8)  # one solid block: every rendering holds 28 x 28 lit pixels
    truth, layout = _observed(pool, 4, 30, seed=7, n_digits=1)
    whole = video_eval.trajectory_oracle_predictor(pool, layout, 3, direction_noise_deg=20.0, samples=16)(truth)
    assert whole.shape == (4, 27, 64, 64)
    np.testing.assert_allclose(whole.sum(axis=(2, 3)), 28 * 28, rtol=1e-5)  # the ink is spread, never lost
    assert (whole[:, -1] < 1.0).any()  # and spread: the renderings disagree by the last frame
    one_by_one = video_eval.trajectory_oracle_predictor(pool, layout, 3, direction_noise_deg=20.0, samples=16)
    np.testing.assert_array_equal(np.concatenate([one_by_one(truth[i : i + 1]) for i in range(4)]), whole)


def test_observer_refuses_sequences_that_are_not_its_layouts():
    pool = np.random.default_rng(2).integers(1, 256, (10, 28, 28), dtype=np.uint8)
    truth, layout = _observed(pool, 3, 12, seed=4)
    observer = video_eval.trajectory_oracle_predictor(pool, layout, 4, direction_noise_deg=3.0, samples=2)
    with pytest.raises(ValueError, match="test sequence 0 is not the one its layout renders"):
        observer(truth[::-1])


def test_tracking_ladder_table_gives_each_observers_mse_against_blank_frames():
    results = {"windows": {"short": [11, 20], "far": [50, 100]},
               "baselines": {"blank": {"metrics": {"mse_short": 200.0, "mse_far": 160.0}}},
               "tracking_ladder": [{"direction_noise_deg": 3.0, "metrics": {"mse_short": 50.0, "mse_far": 120.0}}]}
    table = video_report.ladder_markdown(results)
    assert "| 3 | 50.0 (0.25) | 120.0 (0.75) |" in table


def test_config_tags_follow_what_decides_each_trained_part():
    quick, names = PROFILES["quick"], ("codec", "tap", "htap", "convlstm")

    def tag(name, config, digits="mnist"):
        return config_tag(name, config, digits)

    more_tests = replace(quick, test_sequences=999, seeds=(5,))
    assert all(tag(n, more_tests) == tag(n, quick) for n in names)
    wider = replace(quick, d_model=96)
    assert tag("codec", wider) == tag("codec", quick)  # the codec does not depend on H-TAP's width
    assert tag("htap", wider) != tag("htap", quick) and tag("tap", wider) != tag("tap", quick)
    assert tag("convlstm", wider) == tag("convlstm", quick)
    # models trained on other digits (the fallback, another MNIST copy) are never read back
    assert all(tag(n, quick, "fallback") != tag(n, quick) for n in names)


def test_paper_rollouts_grow_to_30_frames_and_horizon_90_is_the_ablation():
    def config(*argv):
        return resolve_config(cli.parse_arguments(["video", "--profile", "paper", *argv], cli.build_parser))

    paper = config()
    assert (paper.max_rollout, paper.pool_length, paper.eval_length) == (30, 45, 100)
    assert [s.length for s in paper.stage_schedule()] == [20, 20, 30, 40]  # teacher-forced, then 10, 20, 30 frames
    ablation = config("--horizon", "90")  # the previous recipe: rollouts reach every evaluated frame
    assert (ablation.max_rollout, ablation.pool_length, ablation.stage_schedule()[-1].length) == (90, 100, 100)


def test_options_reach_the_config():
    args = cli.parse_arguments(["video", "--stages", "3", "--horizon", "40", "--epochs", "2", "--batch-size", "4",
                                "--train-sequences", "96"], cli.build_parser)
    config = resolve_config(args)
    assert (config.stages, config.max_rollout, config.epochs_per_stage, config.batch_size) == (3, 40, 2, 4)
    assert config.train_sequences == 96 and config.pool_length >= config.context + 40
    stages = config.stage_schedule()
    assert [(s.length, s.context) for s in stages] == [(20, 19), (30, 10), (50, 10)]


@pytest.mark.slow
def test_same_seed_reproduces_the_metrics_and_another_seed_changes_them(isolated, capsys):
    def metrics(folder, seed):
        # a shorter test rollout than TINY's: this test trains three times
        assert _run(folder, *TINY, "--eval-length", "14", "--models", "htap", "--seeds", str(seed)) == 0
        assert "reusing" not in capsys.readouterr().out  # trained afresh in a new folder
        results = json.loads((folder / "out" / "video" / "results.json").read_text())
        return {k: results["models"]["htap"][k] for k in ("metrics", "per_frame")}

    first = metrics(isolated / "a", seed=0)
    assert metrics(isolated / "b", seed=0) == first  # exactly: same seed, backend and data
    other = metrics(isolated / "c", seed=1)
    assert other["metrics"]["mse_rollout"]["mean"] != first["metrics"]["mse_rollout"]["mean"]
