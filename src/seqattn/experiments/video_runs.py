"""Part 3, one model and one seed: train it (or reuse it when this exact training finished
before), evaluate it on the fixed test set, and log both to its nested MLflow run.

Each trained part has a state folder named by `video_config.config_tag`: the seed's codec
(`SeedData`, shared by TAP and H-TAP), each transition with its stage checkpoints and budget
evaluations, ConvLSTM. A model's final evaluation is kept beside it, so the run that gathers
models trained by other processes evaluates each once.
"""

import json
import time
from dataclasses import asdict
from pathlib import Path

import keras
import numpy as np

from seqattn import distributed, tracking, training
from seqattn.data import moving_mnist
from seqattn.experiments import common, video_eval, video_training
from seqattn.experiments.video_config import (
    CODEC_FIELDS, LATENT_MODELS, VideoConfig, build_model, config_tag, parameter_counts,
)
from seqattn.io import atomic_path, write_json_atomic
from seqattn.metrics.attention import span_metrics
from seqattn.progress import progress_write


class NextFrameBatches(video_training.ClipBatches):
    """Clips from `SequenceBatches` as (clip, clip[:, 1:]): the targets of next-frame prediction."""

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
        self.digits = moving_mnist.pool_hash(train_pool)
        self.codec_dir = out / "runs" / f"codec-seed{seed}-{config_tag('codec', config, self.digits)}"
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
    """The final evaluation of a trained model, kept beside it (keyed by the test set's contents), so
    a run that gathers models trained by other processes evaluates each once."""
    key = common.config_tag([moving_mnist.pool_hash(test), config.context, keep, video_eval.FORMAT])
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
        "metrics": video_eval.window_scores(evaluation, config.context),
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
    pool = data.pool(model)  # encoded once per seed, before the clock: not the first model's training time
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

    log = video_training.train_transition(model, pool, stages, config, seed, state_dir, on_stage_end)
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
    history = training.fit(model, context.shard(NextFrameBatches(clips)), epochs=config.stages * config.epochs_per_stage,
                           state_dir=state_dir / "fit", seed=seed, callbacks=[clips.epoch_callback()], shuffle=False,
                           verbose=0)
    return model, {
        "train_seconds": training.train_seconds(state_dir / "fit"),  # summed over resumes
        "final_loss": float(history.history["loss"][-1]) if history.history.get("loss") else None,
        "parameters": parameter_counts(model),
    }


def train_and_evaluate(name: str, seed: int, config: VideoConfig, data: SeedData, test: np.ndarray, out: Path,
                       tracking_uri: str | None, keep: int) -> dict:
    """Train one model for one seed (or load it when this exact training finished before), then
    evaluate it on the fixed test set; all logged to one nested MLflow run."""
    state_dir = out / "runs" / f"{name}-seed{seed}-{config_tag(name, config, data.digits)}"
    model_path = state_dir / "model.keras"
    with training.resumable_run("video", f"{name}-seed{seed}", state_dir, config=asdict(config), seed=seed,
                                nested=True, tracking_uri=tracking_uri):
        if model_path.is_file():  # saved last, atomically: its train.json is complete
            progress_write(f"[video] {name} seed {seed}: reusing {model_path}")
            model = keras.models.load_model(model_path, safe_mode=True)
            info = json.loads((state_dir / "train.json").read_text())
        else:
            progress_write(f"[video] {name} seed {seed}: training")
            if name in LATENT_MODELS:
                model, info = train_latent_model(name, seed, config, data, test, state_dir)
            else:
                model, info = train_convlstm(seed, config, data.train_pool, state_dir)
            write_json_atomic(state_dir / "train.json", info)
            with atomic_path(model_path, suffix=".keras") as tmp:  # a kill mid-save leaves no model to reuse
                model.save(tmp)
            tracking.log_metrics({"train_seconds": info["train_seconds"]})
            tracking.log_artifact(model_path)
        evaluation = _cached_evaluation(model, test, config, keep, f"{name} seed {seed}", state_dir)
        numbers = video_eval.window_scores(evaluation, config.context)
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


def codec_floor(data: SeedData, config: VideoConfig, test: np.ndarray) -> dict:
    """The seed's codec reconstructing the true future frames: the floor of every latent model."""
    predictor = build_model("htap", config)
    data.load_codec(predictor)
    evaluation = video_eval.evaluate(video_eval.reconstruction_predictor(predictor, config.context,
                                                                         config.eval_batch_size),
                                     test, config.context, desc=f"codec seed {data.seed}")
    return {"summary": video_eval.window_scores(evaluation, config.context), "codec_seconds": data.seconds(),
            "per_frame_mse": evaluation["per_frame"]["mse"].tolist()}

