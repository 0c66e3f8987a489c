"""Part 3: latent video prediction on Moving MNIST, TAP (recurrent transition) against H-TAP
(causal space-time attention over the latent history), with ConvLSTM as the pixel-space anchor.

config -> data -> train -> evaluate -> report:
- Data: training clips drawn fresh from the training digit pool; one fixed test set of
  `eval_length` (100) frames from the disjoint test pool, the same for every model and seed.
- Training (`video_training`): per seed one codec shared by TAP and H-TAP, then each transition on
  the same latent windows, teacher-forced and then closed loop over growing rollouts; the same
  number of updates and windows for both. ConvLSTM trains end to end in pixel space for the same
  number of updates.
- Evaluation (`video_eval`): each model observes frames 1..context and rolls out the rest; windows
  `short` (10 -> 10) and `far` (frames 50-100); per-frame MSE, SSIM, foreground F1, skill against
  blank frames; the codec's reconstruction (the floor), blank and last-frame predictions through
  the same code. H-TAP vs TAP paired on the same test sequences, with a bootstrap interval over
  sequences and seeds; the same comparison at the stage checkpoints gives the budget curve.
- Report (`video_report`): results.json, results.md, figures.

`seqattn video evaluate --checkpoint MODEL.keras --test-set FILE.npy` runs a saved model on a
sequence file a user brings (e.g. the official `mnist_test_seq.npy`) with the same metrics.
"""

import argparse
import hashlib
import json
import time
import zipfile
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import keras
import numpy as np

from seqattn import distributed, tracking, training
from seqattn.data import mnist, moving_mnist
from seqattn.errors import ConfigError
from seqattn.experiments import video_eval, video_report, video_training
from seqattn.io import atomic_path, ensure_writable_dir, write_json_atomic
from seqattn.metrics.attention import span_metrics
from seqattn.models.transitions import RNN_CELLS
from seqattn.models.video import HTAP, TAP, ConvLSTMPredictor, htap_transition_params, matched_units
from seqattn.progress import progress_write

DESCRIPTION = "Part 3: Moving MNIST video prediction, TAP vs H-TAP (and ConvLSTM), 10 -> 10 and 10 -> 90"
MODEL_NAMES = ("tap", "htap", "convlstm")
LATENT_MODELS = ("tap", "htap")
TEST_SET_SEED = 20_260_401  # the fixed test set does not move with the training seeds
BUDGET_FRACTIONS = (0.25, 0.5, 1.0)  # of the transition's updates: the budget curve's checkpoints


@dataclass(frozen=True)
class VideoConfig:
    models: tuple = MODEL_NAMES
    seeds: tuple = (0,)
    context: int = 10
    eval_length: int = 100  # the long protocol: 10 -> 90
    n_digits: int = 2
    # codec shared by TAP and H-TAP: a latent grid of (64 / 2**len(widths))^2 cells
    latent_channels: int = 16
    codec_widths: tuple = (32, 64)
    codec_epochs: int = 2
    codec_steps_per_epoch: int = 60
    codec_clips: int = 4  # clips per codec batch ...
    codec_clip_length: int = 16  # ... of this many frames: 64 frames per update
    # latent pool the transitions train on
    pool_clips: int = 128
    pool_length: int = 40
    # transitions step on tokens of token_patch^2 latent cells; H-TAP's width and depth, TAP's state
    # channels chosen to match its parameter count. One space-time block: on a CPU the closed-loop
    # training step of H-TAP is dominated by per-step overhead, which grows with depth.
    token_patch: int = 2
    d_model: int = 64
    num_layers: int = 1
    num_heads: int = 4
    ff_dim: int = 128
    rnn: str = "gru"
    # transition recipe (video_training.transition_stages)
    teacher_length: int = 20
    max_rollout: int = 20
    stages: int = 4
    epochs_per_stage: int = 1
    steps_per_epoch: int = 30
    batch_size: int = 8
    learning_rate: float = 1e-3
    decode_every: int = 6  # predictions between two that get the pixel loss (the decoder is the costly part)
    pixel_loss_weight: float = 1.0
    # ConvLSTM anchor on 4x4-folded frames, trained end to end on context + convlstm_horizon frames
    convlstm_filters: tuple = (32,)
    convlstm_kernel: int = 3
    convlstm_horizon: int = 10
    test_sequences: int = 64
    # sequences per predict call: the decoder turns all their frames at once, 8 x 99 frames peak near 2 GiB
    eval_batch_size: int = 8
    attention_sequences: int = 2  # test sequences whose H-TAP attention is analysed (x g*g cells)

    @property
    def transition_updates(self) -> int:
        return self.stages * self.epochs_per_stage * self.steps_per_epoch

    @property
    def train_sequences(self) -> int:
        """Training windows each model sees (the matched budget)."""
        return self.transition_updates * self.batch_size

    def stage_schedule(self) -> list:
        return video_training.transition_stages(self.context, self.teacher_length, self.max_rollout, self.stages,
                                                self.epochs_per_stage, self.steps_per_epoch)

    def budget_stages(self) -> list[int]:
        """Stage checkpoints of the budget curve (1-based), the last always: the final evaluation."""
        return sorted({max(1, round(f * self.stages)) for f in BUDGET_FRACTIONS} | {self.stages})


PROFILES = {
    # Part 3 of `make run`: minutes on 2 CPU cores; its wall time is in outputs/video/results.json.
    "quick": VideoConfig(),
    # What the paper reports, sized for a 2-core CPU session; wall time in results/video/results.json.
    "paper": VideoConfig(seeds=(0, 1, 2), codec_epochs=5, codec_steps_per_epoch=60, pool_clips=400,
                         pool_length=45, max_rollout=25, stages=4, epochs_per_stage=1, steps_per_epoch=60,
                         batch_size=16, test_sequences=256, eval_batch_size=8, attention_sequences=4),
    # For a GPU: rollouts grown to the full 90 frames, wider codec and transitions.
    "full": VideoConfig(seeds=(0, 1, 2), codec_widths=(64, 128), latent_channels=32, codec_epochs=20,
                        codec_steps_per_epoch=500, pool_clips=10_000, pool_length=100, d_model=128, num_layers=4,
                        ff_dim=256, decode_every=2, max_rollout=90, stages=10, epochs_per_stage=10, steps_per_epoch=500,
                        batch_size=32, convlstm_filters=(64, 64, 64, 64), convlstm_kernel=5, test_sequences=2000,
                        eval_batch_size=100, attention_sequences=8),
}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("mode", nargs="?", choices=("train", "evaluate"), default="train",
                        help="train: train and evaluate every model (default); evaluate: run a saved "
                             "model on --test-set")
    parser.add_argument("--models", nargs="+", choices=MODEL_NAMES, default=None, help="models to train")
    parser.add_argument("--rnn", choices=RNN_CELLS, default=None, help="TAP's recurrent cell (default gru)")
    parser.add_argument("--epochs", type=int, default=None,
                        help="epochs per transition stage (default: the profile's)")
    parser.add_argument("--stages", type=int, default=None,
                        help="transition stages: one teacher-forced, then closed loop with growing rollouts")
    parser.add_argument("--train-sequences", type=int, default=None,
                        help="training windows per model over all stages, the same for every model")
    parser.add_argument("--batch-size", type=int, default=None, help="training batch size")
    parser.add_argument("--test-sequences", type=int, default=None, help="sequences in the fixed test set")
    parser.add_argument("--context", type=int, default=None, help="observed frames (default 10)")
    parser.add_argument("--horizon", type=int, default=None,
                        help="closed-loop rollout frames of the last training stage")
    parser.add_argument("--eval-length", type=int, default=None,
                        help="frames per test sequence, context included (default 100: 10 -> 90)")
    parser.add_argument("--mnist", default=None, help="MNIST IDX folder/file or mnist.npz (default: data folder)")
    parser.add_argument("--checkpoint", default=None, help="evaluate: a saved TAP/H-TAP/ConvLSTM .keras model")
    parser.add_argument("--test-set", default=None, help="evaluate: a .npy sequence file")
    parser.add_argument("--layout", choices=moving_mnist.LAYOUTS, default=None,
                        help="evaluate: axes of --test-set, tnhw (official file) or nthw; detected when unambiguous")


def _positive(name: str, value) -> None:
    if value is not None and value < 1:
        raise ConfigError(f"--{name} must be a positive integer; got {value}")


def resolve_config(args: argparse.Namespace) -> VideoConfig:
    config = PROFILES[args.profile]
    for name in ("epochs", "stages", "train_sequences", "batch_size", "test_sequences", "context", "horizon",
                 "eval_length"):
        _positive(name.replace("_", "-"), getattr(args, name, None))
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
    windows_needed = max(config.teacher_length, config.context + config.max_rollout)
    if windows_needed > config.pool_length:
        config = replace(config, pool_length=windows_needed)  # training windows must fit in the pool clips
    return replace(config, attention_sequences=min(config.attention_sequences, config.test_sequences),
                   eval_batch_size=min(config.eval_batch_size, config.test_sequences))


# ----------------------------------------------------------------------------- models


def build_model(name: str, config: VideoConfig) -> keras.Model:
    codec = dict(context=config.context, latent_channels=config.latent_channels, codec_widths=config.codec_widths,
                 token_patch=config.token_patch)
    if name == "htap":
        model = HTAP(d_model=config.d_model, num_layers=config.num_layers, num_heads=config.num_heads,
                     ff_dim=config.ff_dim, name="htap", **codec)
    elif name == "tap":
        tokens = config.token_patch**2 * config.latent_channels
        target = htap_transition_params(tokens, config.d_model, config.num_layers, config.ff_dim)
        model = TAP(rnn=config.rnn, units=matched_units(target, tokens, config.rnn), name="tap", **codec)
    else:
        model = ConvLSTMPredictor(context=config.context, filters=config.convlstm_filters,
                                  kernel_size=config.convlstm_kernel, name="convlstm")
        model.build((None, config.context + config.convlstm_horizon, 64, 64, 1))
        model.compile(optimizer=keras.optimizers.Adam(config.learning_rate), loss="binary_crossentropy")
        return model
    model.build((None, config.context + 1, 64, 64, 1))
    return model


def parameter_counts(model: keras.Model) -> dict:
    counts = {"total": int(model.count_params())}
    if hasattr(model, "transition_params"):
        counts["transition"] = int(model.transition_params())
        counts["codec"] = counts["total"] - counts["transition"]
    return counts


CODEC_FIELDS = ("n_digits", "latent_channels", "codec_widths", "codec_epochs", "codec_steps_per_epoch",
                "codec_clips", "codec_clip_length", "learning_rate")
RUN_FIELDS = {
    "codec": CODEC_FIELDS,
    "latent": CODEC_FIELDS + ("context", "pool_clips", "pool_length", "token_patch", "d_model", "num_layers", "num_heads", "ff_dim",
                              "rnn", "teacher_length", "max_rollout", "stages", "epochs_per_stage",
                              "steps_per_epoch", "batch_size", "decode_every", "pixel_loss_weight"),
    "convlstm": ("n_digits", "context", "convlstm_filters", "convlstm_kernel", "convlstm_horizon", "stages",
                 "epochs_per_stage", "steps_per_epoch", "batch_size", "learning_rate"),
}


def config_tag(name: str, config: VideoConfig) -> str:
    """A short hash of what decides a trained codec or model, so changed options never reuse a stale one."""
    kind = "codec" if name == "codec" else "convlstm" if name == "convlstm" else "latent"
    fields = {field: getattr(config, field) for field in RUN_FIELDS[kind]}
    return hashlib.sha256(json.dumps([name, fields], sort_keys=True, default=str).encode()).hexdigest()[:8]


class NextFrameBatches(keras.utils.PyDataset):
    """Clips from `SequenceBatches` as (clip, clip[:, 1:]): the targets of next-frame prediction."""

    def __init__(self, clips: moving_mnist.SequenceBatches):
        super().__init__()
        self.clips = clips

    def __len__(self) -> int:
        return len(self.clips)

    def __getitem__(self, index: int):
        clip, _ = self.clips[index]  # (B, T, 64, 64, 1)
        return clip, clip[:, 1:]

    def on_epoch_end(self):
        self.clips.on_epoch_end()


# ----------------------------------------------------------------------------- one seed


class SeedData:
    """What every latent model of one seed shares: the codec's weights and the latent pool, made
    on first use."""

    def __init__(self, seed: int, config: VideoConfig, train_pool: np.ndarray, out: Path):
        self.seed, self.config, self.train_pool = seed, config, train_pool
        self.codec_dir = out / "runs" / f"codec-seed{seed}-{config_tag('codec', config)}"
        self._pool = None
        self.codec_seconds = None

    def codec_weights(self) -> Path:
        weights = self.codec_dir / "codec.weights.h5"
        if not weights.is_file():
            started = time.time()
            with training.resumable_run("video", f"codec-seed{self.seed}", self.codec_dir, seed=self.seed,
                                        config={k: getattr(self.config, k) for k in CODEC_FIELDS}, nested=True):
                reference = build_model("htap", self.config)
                video_training.train_codec(reference, self.train_pool, self.config, self.seed, self.codec_dir)
                self.codec_seconds = time.time() - started
                write_json_atomic(self.codec_dir / "codec.json", {"codec_seconds": self.codec_seconds})
                tracking.log_metrics({"codec_seconds": self.codec_seconds})
        return weights

    def load_codec(self, predictor) -> None:
        video_training.load_codec(predictor, self.codec_weights())

    def pool(self, predictor) -> tuple[np.ndarray, np.ndarray]:
        """The seed's training clips and their latents, encoded once for TAP and H-TAP."""
        if self._pool is None:
            self._pool = video_training.encode_pool(predictor, self.train_pool, self.config, self.seed)
        return self._pool

    def seconds(self) -> float:
        info = self.codec_dir / "codec.json"
        return json.loads(info.read_text())["codec_seconds"] if info.is_file() else float("nan")


def _evaluate_model(model, test: np.ndarray, config: VideoConfig, keep: int, desc: str) -> dict:
    predict = video_eval.model_predictor(model, config.eval_batch_size)
    return video_eval.evaluate(predict, test, config.context, keep=keep, desc=desc)


def _cached_evaluation(model, test: np.ndarray, config: VideoConfig, keep: int, desc: str, state_dir: Path) -> dict:
    """The final evaluation of a trained model, kept beside it (keyed by the test set), so a run
    that gathers models trained by other processes evaluates each once."""
    key = hashlib.sha256(json.dumps([TEST_SET_SEED, test.shape, config.context, keep]).encode()).hexdigest()[:8]
    path = state_dir / f"evaluation-{key}.npz"
    if path.is_file():
        with np.load(path) as saved:
            return video_eval.from_arrays(dict(saved))
    evaluation = _evaluate_model(model, test, config, keep, desc)
    with atomic_path(path) as tmp, open(tmp, "wb") as f:
        np.savez(f, **video_eval.to_arrays(evaluation))
    return evaluation


def _budget_entry(evaluation: dict, config: VideoConfig, updates: int, seconds: float) -> dict:
    return {
        "updates": updates,
        "train_seconds": seconds,
        "metrics": video_eval.window_means(evaluation, config.context),
        "per_sequence_mse": {w: v["mse"].tolist() for w, v in evaluation["per_sequence"].items()},
    }


def train_latent_model(name: str, seed: int, config: VideoConfig, data: SeedData, test: np.ndarray,
                       state_dir: Path) -> tuple[keras.Model, dict]:
    """Train one transition stage by stage on the seed's codec; evaluate the budget checkpoints."""
    keras.utils.set_random_seed(seed)
    model = build_model(name, config)
    data.load_codec(model)
    stages = config.stage_schedule()
    budget_at = config.budget_stages()[:-1]  # the last stage's point is the final evaluation
    budget, clock = {}, {"seconds": 0.0, "last": time.time()}
    timing_file = state_dir / "stage_seconds.json"
    seconds = json.loads(timing_file.read_text()) if timing_file.is_file() else {}

    def on_stage_end(k, stage):
        if str(k) not in seconds:
            seconds[str(k)] = time.time() - clock["last"]
            write_json_atomic(timing_file, seconds)
        if k in budget_at:
            cached = state_dir / f"budget_stage{k}.json"
            if not cached.is_file():
                evaluation = _evaluate_model(model, test, config, 0, f"{name} seed {seed} stage {k}")
                updates = sum(s.updates for s in stages[:k])
                write_json_atomic(cached, _budget_entry(evaluation, config, updates,
                                                        sum(seconds[str(j)] for j in range(1, k + 1))))
            budget[k] = json.loads(cached.read_text())
        clock["last"] = time.time()  # a checkpoint's evaluation is not training time

    log = video_training.train_transition(model, data.pool(model), stages, config, seed, state_dir, on_stage_end)
    info = {
        "train_seconds": sum(seconds.values()),
        "codec_seconds": data.seconds(),
        "stages": log,
        "parameters": parameter_counts(model),
        "budget": {str(k): v for k, v in budget.items()},
    }
    return model, info


def train_convlstm(seed: int, config: VideoConfig, train_pool: np.ndarray, state_dir: Path) -> tuple[keras.Model, dict]:
    keras.utils.set_random_seed(seed)
    context = distributed.current()  # --distribute: replicas share global batches
    with context.scope():
        model = build_model("convlstm", config)
    clips = moving_mnist.SequenceBatches(
        train_pool, config.batch_size, config.steps_per_epoch, length=config.context + config.convlstm_horizon,
        n_digits=config.n_digits, seed=seed,
    )
    started = time.time()
    history = training.fit(model, context.shard(NextFrameBatches(clips)), epochs=config.stages * config.epochs_per_stage,
                           state_dir=state_dir / "fit", seed=seed, callbacks=[clips.epoch_callback()], shuffle=False,
                           verbose=0)
    return model, {
        "train_seconds": time.time() - started,
        "final_loss": float(history.history["loss"][-1]) if history.history.get("loss") else None,
        "parameters": parameter_counts(model),
    }


def train_and_evaluate(name: str, seed: int, config: VideoConfig, data: SeedData, test: np.ndarray, out: Path,
                       tracking_uri: str | None, keep: int) -> dict:
    """Train one model for one seed (or load it when this exact training finished before), then
    evaluate it on the fixed test set; all logged to one nested MLflow run."""
    state_dir = out / "runs" / f"{name}-seed{seed}-{config_tag(name, config)}"
    model_path = state_dir / "model.keras"
    with training.resumable_run("video", f"{name}-seed{seed}", state_dir, config=asdict(config), seed=seed,
                                nested=True, tracking_uri=tracking_uri):
        if model_path.is_file():
            progress_write(f"[video] {name} seed {seed}: reusing {model_path}")
            model = keras.models.load_model(model_path, safe_mode=True)
            info = json.loads((state_dir / "train.json").read_text())
        else:
            progress_write(f"[video] {name} seed {seed}: training")
            if name in LATENT_MODELS:
                model, info = train_latent_model(name, seed, config, data, test, state_dir)
            else:
                model, info = train_convlstm(seed, config, data.train_pool, state_dir)
            model.save(model_path)
            write_json_atomic(state_dir / "train.json", info)
            tracking.log_metrics({"train_seconds": info["train_seconds"]})
            tracking.log_artifact(model_path)
        evaluation = _cached_evaluation(model, test, config, keep, f"{name} seed {seed}", state_dir)
        numbers = video_eval.window_means(evaluation, config.context)
        if "budget" in info:
            info["budget"][str(config.stages)] = _budget_entry(evaluation, config, config.transition_updates,
                                                               info["train_seconds"])
        tracking.log_metrics(numbers)
        first = config.context + 1
        for metric in ("mse", "skill", "f1", "ssim"):
            tracking.log_curve(f"test_{metric}_per_frame", evaluation["per_frame"][metric], first_step=first)
        attention = None
        if name == "htap":
            attention = video_eval.attention_analysis(model, test[: config.attention_sequences])
            # span per predicted frame (step = frame number), and over the rollout's queries per head
            tracking.log_curve("attention_span_per_frame", attention["span_by_step"].mean(axis=(0, 1)), first_step=2)
            tracking.log_metrics(span_metrics(attention["report"]["rollout"]))
    return {"evaluation": evaluation, "summary": numbers, "train": info, "attention": attention}


def run_training(args: argparse.Namespace) -> dict:
    config = resolve_config(args)
    out = ensure_writable_dir(Path(args.out) / "video")
    started = time.time()
    digits = mnist.load_mnist(args.mnist)
    train_pool, test_pool = mnist.split_pools(digits)
    test_set = moving_mnist.fixed_test_set(test_pool, config.test_sequences, config.eval_length,
                                           config.n_digits, seed=TEST_SET_SEED)
    test = test_set.astype(np.float32) / 255.0  # (N, T, 64, 64)
    shown = min(2, len(test))
    baselines = {
        "blank": video_eval.evaluate(video_eval.blank_predictor(config.context), test, config.context, desc="blank"),
        "last_frame": video_eval.evaluate(video_eval.last_frame_predictor(config.context), test, config.context,
                                          desc="last frame"),
    }
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

        results = video_report.summarise(config, runs, baselines, floors, attention, args.profile, digits.source)
        results["wall_time_s"] = time.time() - started
        figures = video_report.write_figures(config, results, runs, baselines, attention, examples, test[:shown],
                                             out)
        results["figures"] = [p.name for p in figures]
        video_report.write_outputs(results, out)
        tracking.log_metrics(video_report.flat_headline(results))
        for path in [*figures, out / "results.json", out / "results.md"]:
            tracking.log_artifact(path)
        results["mlflow_run_id"] = parent.info.run_id
    print(f"\nPart 3 ({args.profile}, seeds {list(config.seeds)}, {results['wall_time_s']:.0f} s):\n"
          f"{video_report.results_table(results)}\n")
    if "htap_vs_tap" in results:
        print(video_report.comparison_sentence(results))
    print(f"wrote {out / 'results.json'}, {out / 'results.md'} and {len(figures)} figures")
    return results


def codec_floor(data: SeedData, config: VideoConfig, test: np.ndarray) -> dict:
    """The seed's codec reconstructing the true future frames: the floor of every latent model."""
    predictor = build_model("htap", config)
    data.load_codec(predictor)
    evaluation = video_eval.evaluate(video_eval.reconstruction_predictor(predictor, config.context,
                                                                         config.eval_batch_size),
                                     test, config.context, desc=f"codec seed {data.seed}")
    return {"summary": video_eval.window_means(evaluation, config.context), "codec_seconds": data.seconds(),
            "per_frame_mse": evaluation["per_frame"]["mse"].tolist()}


# ----------------------------------------------------------------------------- evaluate a checkpoint


def _load_checkpoint(path: Path) -> keras.Model:
    """A saved TAP, H-TAP or ConvLSTM; ConfigError naming the file for anything else."""
    # Keras reports a file that is not a zip archive as "File not found".
    reason = None if zipfile.is_zipfile(path) else "not a zip archive"
    if reason is None:
        try:
            model = keras.models.load_model(path, safe_mode=True)
        except Exception as err:  # noqa: BLE001 - keras raises many types for a bad archive
            reason = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
    if reason is not None:
        raise ConfigError(f"--checkpoint {str(path)!r} is not a readable .keras model ({reason})")
    if not hasattr(model, "frame_size"):
        raise ConfigError(f"--checkpoint {str(path)!r} holds a {type(model).__name__}, not a TAP, H-TAP or "
                          "ConvLSTM video model")
    return model


def run_evaluation(args: argparse.Namespace) -> dict:
    if not args.checkpoint or not args.test_set:
        raise ConfigError("seqattn video evaluate needs --checkpoint MODEL.keras and --test-set FILE.npy")
    checkpoint = Path(args.checkpoint)
    if not checkpoint.is_file():
        problem = "is not a file" if checkpoint.exists() else "does not exist"
        raise ConfigError(f"--checkpoint {str(checkpoint)!r} {problem}")
    _positive("context", args.context)
    out = ensure_writable_dir(Path(args.out) / "video" / "evaluate")
    model = _load_checkpoint(checkpoint)
    if args.context is not None:
        model.context = args.context  # every model's rollout works from any number of observed frames
    size = model.frame_size
    sequences = moving_mnist.load_sequences(args.test_set, args.layout, min_length=model.context + 1,
                                            frame_size=(size, size))
    started = time.time()
    with tracking.start_run("video", f"evaluate-{checkpoint.stem}", tracking_uri=args.tracking_uri,
                            config={"checkpoint": str(checkpoint), "test_set": str(args.test_set),
                                    "context": model.context, "layout": args.layout}):
        evaluation = video_eval.evaluate(video_eval.model_predictor(model, 16), sequences, model.context, keep=1,
                                         desc=f"{model.name} on {Path(args.test_set).name}")
        numbers = video_eval.window_means(evaluation, model.context)
        tracking.log_metrics(numbers)
        tracking.log_curve("test_mse_per_frame", evaluation["per_frame"]["mse"], first_step=model.context + 1)
        results = {
            "part": "video",
            "mode": "evaluate",
            "checkpoint": str(checkpoint),
            "model": model.name,
            "test_set": str(args.test_set),
            "sequences": int(sequences.shape[0]),
            "frames": int(sequences.shape[1]),
            "context": model.context,
            "windows": evaluation["windows"],
            "backend": keras.backend.backend(),
            "metrics": numbers,
            "per_frame": {k: np.asarray(v).tolist() for k, v in evaluation["per_frame"].items()},
            "wall_time_s": time.time() - started,
        }
        paths = video_report.write_evaluation_figures(model.name, evaluation, sequences[:1], model.context,
                                                      Path(args.test_set).name, out)
        write_json_atomic(out / "results.json", results)
        for path in (*paths, out / "results.json"):
            tracking.log_artifact(path)
    print(video_report.metrics_table(numbers))
    print(f"wrote {out / 'results.json'}")
    return results


def run(args: argparse.Namespace) -> dict:
    if getattr(args, "mode", "train") == "evaluate":
        return run_evaluation(args)
    return run_training(args)
