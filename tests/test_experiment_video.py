"""Part 3 end to end on tiny sizes: training all three models, results.json, figures, MLflow, and
evaluating a saved checkpoint on sequence files a user brings."""

import json
from dataclasses import replace

import mlflow
import numpy as np
import pytest

from seqattn import cli
from seqattn.experiments.video import PROFILES, _config_tag, build_model, resolve_config

TINY = ["--epochs", "1", "--train-sequences", "8", "--batch-size", "4", "--test-sequences", "3",
        "--context", "4", "--horizon", "2", "--eval-length", "12"]


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
    for name, model in results["models"].items():
        assert len(model["per_frame"]["mse"]["mean"]) == 12 - 4, name
        assert {"mse_10to10", "mse_all", "ssim_10to10", "psnr_all"} <= set(model["metrics"]), name
        assert model["metrics"]["mse_all"]["mean"] > 0
    assert abs(results["parameter_ratio_tap_over_htap"]["total"] - 1) < 0.10
    assert abs(results["parameter_ratio_tap_over_htap"]["transition"] - 1) < 0.10
    assert "htap_vs_tap_far_mse_change" not in results  # 12 frames never reach the far horizon
    attention = results["htap_attention"]
    assert len(attention["layers"]) == 2 and len(attention["layers"]["layer1"]["span"]) == 4
    assert len(attention["span_by_step_mean_over_heads"][0]) == 11
    assert results["config"]["train_sequences"] == 8
    for name in ("research_attention_plot.png", "strip.png", "rollout.gif", "results.md"):
        assert (out / name).stat().st_size > 0, name

    mlflow.set_tracking_uri(f"sqlite:///{trained}/mlflow.db")
    runs = mlflow.search_runs(experiment_names=["seqattn-part3-video"])
    assert len(runs) == 4  # the parent and one per model
    assert set(runs["tags.mlflow.runName"]) == {"video-quick", "tap-seed0", "htap-seed0", "convlstm-seed0"}
    child = runs[runs["tags.mlflow.runName"] == "htap-seed0"].iloc[0]
    assert child["metrics.mse_all"] == pytest.approx(results["models"]["htap"]["metrics"]["mse_all"]["mean"])

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


def test_skip_features_leave_the_cache_tags_of_existing_configs_alone():
    # Computed with `_config_tag` before VideoConfig had `skip_features` (commit afa3964): models
    # cached under these folders by earlier runs must still be found.
    before = {"quick": {"tap": "67955b8c", "htap": "71197920", "convlstm": "8fa6a0a7"},
              "paper": {"tap": "a4693259", "htap": "c9e2aa25", "convlstm": "966bbbfb"}}
    for profile, tags in before.items():
        assert {name: _config_tag(name, PROFILES[profile]) for name in tags} == tags, profile
    with_skips = replace(PROFILES["quick"], skip_features=True)
    assert _config_tag("htap", with_skips) != before["quick"]["htap"]


def test_skip_features_option_reaches_the_models():
    for extra, expected in (([], False), (["--skip-features"], True)):
        args = cli.parse_arguments(["video", "--context", "3", "--horizon", "2", *extra], cli.build_parser)
        config = resolve_config(args)
        assert config.skip_features is expected
        for name in ("tap", "htap"):
            assert build_model(name, config).skip_features is expected, name


@pytest.mark.slow
def test_same_seed_reproduces_the_metrics_and_another_seed_changes_them(isolated, capsys):
    def metrics(folder, seed):
        assert _run(folder, *TINY, "--models", "htap", "--seeds", str(seed)) == 0
        assert "reusing" not in capsys.readouterr().out  # trained afresh in a new folder
        results = json.loads((folder / "out" / "video" / "results.json").read_text())
        return {k: results["models"]["htap"][k] for k in ("metrics", "per_frame")}

    first = metrics(isolated / "a", seed=0)
    assert metrics(isolated / "b", seed=0) == first  # exactly: same seed, backend and data
    other = metrics(isolated / "c", seed=1)
    assert other["metrics"]["mse_all"]["mean"] != first["metrics"]["mse_all"]["mean"]
