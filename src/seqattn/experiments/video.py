"""Part 3: latent video prediction on Moving MNIST, TAP (recurrent transition) against H-TAP
(causal space-time attention over the latent history), with ConvLSTM as the pixel-space anchor.

config -> data -> train -> evaluate -> report:
- Config (`video_config`): the options and profiles, the model factory, the tags naming each
  trained part's state folder.
- Data: training clips drawn fresh from the training digit pool; one fixed test set of
  `eval_length` (100) frames from the disjoint test pool, the same for every model and seed.
- Training (`video_training`, run per model and seed by `video_runs`): per seed one codec shared
  by TAP and H-TAP, then each transition on the same latent windows, teacher-forced and then
  closed loop over growing rollouts; the same number of updates and windows for both. ConvLSTM
  trains end to end in pixel space for the same number of updates.
- Evaluation (`video_eval`): each model observes frames 1..context and rolls out the rest; windows
  `short` (10 -> 10) and `far` (frames 50-100); per-frame MSE, SSIM, foreground F1, skill against
  blank frames; the codec's reconstruction (the floor), blank, last-frame and mean-training-frame
  predictions through the same code. H-TAP vs TAP paired on the same test sequences, with a bootstrap interval over
  sequences and seeds; the same comparison at the stage checkpoints gives the budget curve.
- Report (`video_report`): results.json, results.md, figures.

`seqattn video evaluate --checkpoint MODEL.keras --test-set FILE.npy` (`video_checkpoint`) runs a
saved model on a sequence file a user brings (e.g. the official `mnist_test_seq.npy`) with the
same metrics.
"""

import argparse
import time
from dataclasses import asdict, replace
from pathlib import Path

import numpy as np

from seqattn import tracking, training
from seqattn.data import mnist, moving_mnist
from seqattn.errors import ConfigError
from seqattn.experiments import video_eval, video_report
from seqattn.experiments.common import PositiveInt, write_outputs
from seqattn.experiments.video_checkpoint import run_evaluation
from seqattn.experiments.video_config import (  # noqa: F401 - build_model and config_tag: Part 3's names for them
    LATENT_MODELS, MODEL_NAMES, PROFILES, TEST_SET_SEED, VideoConfig, build_model, config_tag,
)
from seqattn.experiments.video_runs import SeedData, codec_floor, train_and_evaluate
from seqattn.io import ensure_writable_dir
from seqattn.models.transitions import RNN_CELLS

DESCRIPTION = "Part 3: Moving MNIST video prediction, TAP vs H-TAP (and ConvLSTM), 10 -> 10 and 10 -> 90"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("mode", nargs="?", choices=("train", "evaluate"), default="train",
                        help="train: train and evaluate every model (default); evaluate: run a saved "
                             "model on --test-set")
    parser.add_argument("--models", nargs="+", choices=MODEL_NAMES, default=None, help="models to train")
    parser.add_argument("--rnn", choices=RNN_CELLS, default=None, help="TAP's recurrent cell (default gru)")
    parser.add_argument("--epochs", action=PositiveInt, default=None,
                        help="epochs per transition stage (default: the profile's)")
    parser.add_argument("--stages", action=PositiveInt, default=None,
                        help="transition stages: one teacher-forced, then closed loop with growing rollouts")
    parser.add_argument("--train-sequences", action=PositiveInt, default=None,
                        help="training windows per model over all stages, the same for every model")
    parser.add_argument("--batch-size", action=PositiveInt, default=None, help="training batch size")
    parser.add_argument("--test-sequences", action=PositiveInt, default=None, help="sequences in the fixed test set")
    parser.add_argument("--context", action=PositiveInt, default=None, help="observed frames (default 10)")
    parser.add_argument("--horizon", action=PositiveInt, default=None,
                        help="closed-loop rollout frames of the last training stage")
    parser.add_argument("--eval-length", action=PositiveInt, default=None,
                        help="frames per test sequence, context included (default 100: 10 -> 90)")
    parser.add_argument("--mnist", default=None, help="MNIST IDX folder/file or mnist.npz (default: data folder)")
    parser.add_argument("--checkpoint", default=None, help="evaluate: a saved TAP/H-TAP/ConvLSTM .keras model")
    parser.add_argument("--test-set", default=None, help="evaluate: a .npy sequence file")
    parser.add_argument("--layout", choices=moving_mnist.LAYOUTS, default=None,
                        help="evaluate: axes of --test-set, tnhw (official file) or nthw; detected when unambiguous")


def resolve_config(args: argparse.Namespace) -> VideoConfig:
    config = PROFILES[args.profile]
    overrides = {
        "models": tuple(dict.fromkeys(args.models)) if args.models else None,
        "rnn": args.rnn,
        "epochs_per_stage": args.epochs,
        "stages": getattr(args, "stages", None),
        "batch_size": args.batch_size,
        "test_sequences": args.test_sequences,
        "context": args.context,
        "max_rollout": args.horizon,
        "eval_length": args.eval_length,
        "seeds": tuple(args.seeds) if args.seeds else None,
    }
    config = replace(config, **{k: v for k, v in overrides.items() if v is not None})
    if args.train_sequences is not None:
        per_step = config.batch_size * config.stages * config.epochs_per_stage
        config = replace(config, steps_per_epoch=max(1, args.train_sequences // per_step))
    if config.eval_length <= config.context:
        raise ConfigError(
            f"--eval-length {config.eval_length} must exceed --context {config.context}: nothing to predict"
        )
    if config.stages < 2:
        raise ConfigError(f"--stages must be at least 2 (teacher forcing, then closed loop); got {config.stages}")
    if config.test_sequences < 2 and set(LATENT_MODELS) <= set(config.models):
        # the paired H-TAP vs TAP interval resamples test sequences: found here, not after training
        raise ConfigError(f"--test-sequences must be at least 2 for the paired H-TAP vs TAP comparison; "
                          f"got {config.test_sequences}")
    windows_needed = max(config.teacher_length, config.context + config.max_rollout)
    if windows_needed > config.pool_length:
        config = replace(config, pool_length=windows_needed)  # training windows must fit in the pool clips
    return replace(config, attention_sequences=min(config.attention_sequences, config.test_sequences),
                   eval_batch_size=min(config.eval_batch_size, config.test_sequences))


MEAN_FRAME_CLIPS = 200  # training clips whose frames average to the mean-frame baseline
MEAN_FRAME_SEED = 3_000_017


def training_mean_frame(train_pool: np.ndarray, config: VideoConfig) -> np.ndarray:
    """The mean frame of fresh training clips (training digits only, never the test set)."""
    clips = moving_mnist.generate(train_pool, MEAN_FRAME_CLIPS, config.eval_length, config.n_digits,
                                  seed=MEAN_FRAME_SEED)
    return video_eval.mean_frame(clips)


# Direction errors (degrees) of the tracking ladder: observers told the digits and their motion
# (`video_eval.trajectory_oracle_predictor`), each scored like a model.
LADDER_NOISE_DEG = (3.0, 10.0, 30.0)
LADDER_SAMPLES = 64  # renderings averaged per sequence


def tracking_ladder(test_pool: np.ndarray, test: np.ndarray, config: VideoConfig) -> dict:
    """Evaluations of the observers of `LADDER_NOISE_DEG` on the fixed test set, by direction error."""
    layout = moving_mnist.layout_of(len(test), config.n_digits, len(test_pool), TEST_SET_SEED)
    return {noise: video_eval.evaluate(
                video_eval.trajectory_oracle_predictor(test_pool, layout, config.context, noise, LADDER_SAMPLES),
                test, config.context, desc=f"observer, direction error {noise:g} deg")
            for noise in LADDER_NOISE_DEG}


def run_training(args: argparse.Namespace) -> dict:
    config = resolve_config(args)
    started = time.time()
    digits = mnist.load_mnist(args.mnist)  # read before any folder is made: a bad path leaves nothing behind
    out = ensure_writable_dir(Path(args.out) / "video")
    train_pool, test_pool = mnist.split_pools(digits)
    test_set = moving_mnist.fixed_test_set(test_pool, config.test_sequences, config.eval_length,
                                           config.n_digits, seed=TEST_SET_SEED)
    test = test_set.astype(np.float32) / 255.0  # (N, T, 64, 64)
    shown = min(2, len(test))
    baselines = {
        "blank": video_eval.evaluate(video_eval.blank_predictor(config.context), test, config.context, desc="blank"),
        "last_frame": video_eval.evaluate(video_eval.last_frame_predictor(config.context), test, config.context,
                                          desc="last frame"),
        "mean_frame": video_eval.evaluate(video_eval.mean_frame_predictor(training_mean_frame(train_pool, config),
                                                                          config.context),
                                          test, config.context, desc="mean frame"),
    }
    ladder = tracking_ladder(test_pool, test, config)
    runs = {name: [] for name in config.models}
    floors, examples, attention = [], {}, None
    with training.resumable_run("video", f"video-{args.profile}", out / "state", config=asdict(config),
                                tracking_uri=args.tracking_uri) as parent:
        if digits.source == "sklearn-digits-fallback":
            tracking.log_metrics({"mnist_fallback": 1.0})
        for seed in config.seeds:
            data = SeedData(seed, config, train_pool, out)
            if any(name in LATENT_MODELS for name in config.models):
                floors.append(codec_floor(data, config, test))
            for name in config.models:
                outcome = train_and_evaluate(name, seed, config, data, test, out, args.tracking_uri, shown)
                runs[name].append(outcome)
                if seed == config.seeds[0]:
                    examples[name] = outcome["evaluation"]["examples"]
                    attention = outcome["attention"] if name == "htap" else attention
                video_eval.clear_backend_memory()

        results = video_report.summarise(config, runs, baselines, floors, attention, args.profile, digits.source,
                                         ladder)
        results["wall_time_s"] = time.time() - started
        figures = video_report.write_figures(config, results, runs, baselines, attention, examples, test[:shown],
                                             out)
        results["figures"] = [p.name for p in figures]
        write_outputs(out, results, video_report.results_markdown(results), figures)
        tracking.log_metrics(video_report.flat_headline(results))
        results["mlflow_run_id"] = parent.info.run_id
    print(f"\nPart 3 ({args.profile}, seeds {list(config.seeds)}, {results['wall_time_s']:.0f} s):\n"
          f"{video_report.results_table(results)}\n")
    if "htap_vs_tap" in results:
        print(video_report.comparison_sentence(results))
    print(f"wrote {out / 'results.json'}, {out / 'results.md'} and {len(figures)} figures")
    return results


def run(args: argparse.Namespace) -> dict:
    if getattr(args, "mode", "train") == "evaluate":
        return run_evaluation(args)
    return run_training(args)

