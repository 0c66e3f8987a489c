"""Part 3's training recipe, the same for TAP and H-TAP: a codec first, then the transition on
its latents, teacher-forced and then in closed loop over rollouts that grow stage by stage.

1. Codec: the predictor's encoder and decoder trained as a frame autoencoder (pixel
   cross-entropy) on frames of fresh clips. One codec per seed, trained once and shared by TAP
   and H-TAP (`codec.weights.h5` in its own state folder), so the two differ only in the
   transition; its reconstruction MSE on the test frames is the floor of every latent model.
2. Latent pool: `pool_clips` fresh training clips of `pool_length` frames, encoded once by the
   frozen codec. Transitions train on windows of these latents, so a step costs no encoder or
   decoder pass, and both transitions see the same windows (drawn from (seed, stage, epoch, batch)).
3. Transition, encoder frozen, latent MSE plus the pixel cross-entropy of every few decoded
   predictions (`TransitionTrainer`). With `tune_decoder` the pixel loss also fine-tunes the
   model's own copy of the decoder: a decoder trained on sharp frames alone renders the blur of
   an uncertain rollout poorly (TAP, seed 0, paper profile: MSE 10 -> 10 162.0 -> 152.4, frames
   50-100 171.1 -> 168.9 when fine-tuned). Stage 1 teacher-forced (every step predicted from true
   latents, `teacher_length`-frame windows); stages 2.. closed loop from `context` observed
   latents over rollouts that grow linearly to `max_rollout` frames. An abrupt switch to long
   closed-loop rollouts was measured to settle at a fading blur; growing the rollout lets the
   model first learn one-step motion, then keep it over its own predictions.

Every stage is one `training.fit` (resumable, BackupAndRestore) with its own state folder, and
ends by saving the transition's weights (`stage{k}.weights.h5`), so a run resumed after a kill
skips finished stages, and the stage checkpoints give the budget curve: the same run evaluated
after a fraction of its updates.
"""

import math
from dataclasses import dataclass
from pathlib import Path

import keras
import numpy as np
from keras import ops

from seqattn import training
from seqattn.io import atomic_path
from seqattn.data import moving_mnist
from seqattn.data.batches import EpochSync


@dataclass(frozen=True)
class Stage:
    """One stage of transition training: `epochs` x `steps` updates on windows of `length` latents,
    the first `context` of them observed (context = length - 1: teacher forcing)."""

    length: int
    context: int
    epochs: int
    steps: int

    @property
    def updates(self) -> int:
        return self.epochs * self.steps

    @property
    def teacher_forced(self) -> bool:
        return self.context == self.length - 1


def transition_stages(context: int, teacher_length: int, max_rollout: int, stages: int, epochs_per_stage: int,
                      steps_per_epoch: int) -> list[Stage]:
    """Stage 1 teacher-forced on `teacher_length` latents; stages 2..`stages` closed loop from
    `context` latents, rollouts growing linearly to `max_rollout` (multiples of 5 frames before the
    last stage, which rolls out `max_rollout`)."""
    schedule = [Stage(teacher_length, teacher_length - 1, epochs_per_stage, steps_per_epoch)]
    closed = stages - 1
    for k in range(1, closed + 1):
        # multiples of 5 frames on the way; the last closed-loop stage reaches max_rollout itself
        rollout = max_rollout if k == closed else max(5, int(round(max_rollout * k / closed / 5)) * 5)
        schedule.append(Stage(context + min(rollout, max_rollout), context, epochs_per_stage, steps_per_epoch))
    return schedule


def save_weights_atomic(model, path: Path) -> None:
    """`model.save_weights(path)` that never leaves a half-written file at `path`."""
    with atomic_path(path, suffix=".weights.h5") as tmp:
        model.save_weights(tmp)


# ----------------------------------------------------------------------------- codec


class Autoencoder(keras.Model):
    """A predictor's codec as a frame autoencoder: (N, H, W, C) -> reconstruction. Its weights
    are the codec's alone, so the file it saves loads into a TAP and an H-TAP alike."""

    def __init__(self, encoder, decoder, **kwargs):
        super().__init__(**kwargs)
        self.encoder = encoder
        self.decoder = decoder

    def build(self, input_shape):
        if not self.encoder.built:
            self.encoder.build(input_shape)
        if not self.decoder.built:
            self.decoder.build(self.encoder.compute_output_shape(input_shape))

    def call(self, frames, training=None):
        return self.decoder(self.encoder(frames, training=training), training=training)


def _codec_of(predictor) -> Autoencoder:
    autoencoder = Autoencoder(predictor.encoder, predictor.decoder)
    autoencoder.build((None, predictor.frame_size, predictor.frame_size, predictor.channels))
    return autoencoder


class ClipBatches(keras.utils.PyDataset):
    """Batches of `SequenceBatches` clips, each turned into (inputs, targets) by a subclass."""

    def __init__(self, clips: moving_mnist.SequenceBatches):
        super().__init__()
        self.clips = clips

    def __len__(self) -> int:
        return len(self.clips)


class FrameBatches(ClipBatches):
    """Frames of fresh clips, (clips x length, H, W, 1) per batch, deterministic from (seed, epoch, batch)."""

    def __getitem__(self, index: int):
        clip, _ = self.clips[index]  # (B, T, H, W, 1)
        frames = clip.reshape((-1, *clip.shape[2:]))  # (B*T, H, W, 1)
        return frames, frames


def train_codec(predictor, train_pool: np.ndarray, config, seed: int, state_dir: Path) -> dict:
    """Train the predictor's encoder and decoder as an autoencoder, or load them when this seed's
    codec finished before. Returns {"codec_seconds": ..., "reused": bool}."""
    weights = state_dir / "codec.weights.h5"
    if weights.is_file():
        load_codec(predictor, weights)
        return {"reused": True}
    keras.utils.set_random_seed(seed)
    autoencoder = _codec_of(predictor)
    autoencoder.compile(optimizer=keras.optimizers.Adam(config.learning_rate), loss="binary_crossentropy")
    clips = moving_mnist.SequenceBatches(train_pool, config.codec_clips, config.codec_steps_per_epoch,
                                         length=config.codec_clip_length, n_digits=config.n_digits,
                                         seed=seed + 1_000_003)
    training.fit(autoencoder, FrameBatches(clips), epochs=config.codec_epochs, state_dir=state_dir / "fit",
                 seed=seed, callbacks=[clips.epoch_callback()], shuffle=False, verbose=0)
    save_weights_atomic(autoencoder, weights)
    return {"reused": False}


def load_codec(predictor, weights: Path) -> None:
    """Load a codec saved by `train_codec` into a predictor's encoder and decoder."""
    _codec_of(predictor).load_weights(weights)


def encode_pool(predictor, train_pool: np.ndarray, config, seed: int, batch: int = 20) -> tuple[np.ndarray, np.ndarray]:
    """Fresh training clips (pool_clips, pool_length, 64, 64) uint8 and their latents
    (pool_clips, pool_length, g, g, C) from the frozen codec."""
    clips = moving_mnist.generate(train_pool, config.pool_clips, config.pool_length, config.n_digits,
                                  seed=seed * 7_919 + 2_000_003)  # (N, L, 64, 64) uint8
    latents = []
    for lo in range(0, len(clips), batch):
        frames = (clips[lo : lo + batch].astype(np.float32) / 255.0)[..., None]  # (b, L, 64, 64, 1)
        latents.append(ops.convert_to_numpy(predictor.encode(frames)))  # (b, L, g, g, C)
    return clips, np.concatenate(latents)


# ----------------------------------------------------------------------------- transition


def decoded_steps(length: int, every: int) -> list[int]:
    """Indices into the predictions of latents 2..length whose frames get the pixel loss: every
    `every`-th prediction counted back from the last, so the far end of each rollout is always in."""
    return list(range(length - 2, -1, -every))[::-1]


class LatentWindows(keras.utils.PyDataset):
    """Windows of `length` consecutive latents from the pool as input; as targets the latents
    2..length and the frames of the predictions that `decoded_steps` selects. Batch i of epoch e is
    drawn from (seed, stage, e, i) alone."""

    def __init__(self, clips: np.ndarray, latents: np.ndarray, batch_size: int, steps: int, length: int,
                 decoded: list[int], seed: int, stage: int):
        super().__init__()
        if length > latents.shape[1]:
            raise ValueError(f"windows of {length} latents do not fit in pool clips of {latents.shape[1]}")
        self.clips, self.latents, self.batch_size, self.steps, self.length = clips, latents, batch_size, steps, length
        self.frame_index = np.asarray(decoded) + 1  # prediction k is of frame k + 1 of the window
        self.seed, self.stage, self.epoch = seed, stage, 0

    def __len__(self) -> int:
        return self.steps

    def __getitem__(self, index: int):
        rng = np.random.default_rng([self.seed, self.stage, self.epoch, index])
        clips = rng.integers(0, len(self.latents), self.batch_size)
        starts = rng.integers(0, self.latents.shape[1] - self.length + 1, self.batch_size)
        windows = np.stack([self.latents[c, s : s + self.length] for c, s in zip(clips, starts)])
        frames = np.stack([self.clips[c, s + self.frame_index] for c, s in zip(clips, starts)])  # (B, k, 64, 64)
        return windows, (windows[:, 1:], (frames.astype(np.float32) / 255.0)[..., None])

    def on_epoch_end(self):
        self.epoch += 1


class TransitionTrainer(keras.Model):
    """Trains a predictor's transition on latent windows: (B, T, g, g, C) -> the predictions of
    latents 2..T (one-step from the first `context`, then closed loop) and the frames the frozen
    decoder makes of the predictions `decoded`.

    The pixel loss is what keeps a rollout from fading: under uncertainty a latent loss alone pulls
    predictions to the mean latent, which decodes to a blank frame, while a pixel loss pulls them
    to latents that decode to the mean frame (a blur where the digits may be), which beats blank.
    Only every few predictions are decoded, because the decoder costs more than the transition.
    """

    def __init__(self, predictor, context: int, decoded: list[int], **kwargs):
        super().__init__(**kwargs)
        self.predictor = predictor
        self.context = context
        self.decoded = list(decoded)

    def call(self, latents, training=None):
        horizon = latents.shape[1] - self.context
        predicted = self.predictor.rollout_latents(latents[:, : self.context], horizon, training=training)
        chosen = ops.take(predicted, self.decoded, axis=1)  # (B, k, g, g, C)
        return predicted, self.predictor.decode(chosen)


def stage_weights(state_dir: Path, k: int) -> Path:
    return state_dir / f"stage{k}.weights.h5"


def stage_optimizer(state_dir: Path, k: int) -> Path:
    return state_dir / f"stage{k}.optimizer.npz"


def save_optimizer_state(optimizer, path: Path) -> None:
    """The optimizer's variables (step count, Adam's moments) in order, written atomically."""
    with atomic_path(path) as tmp, open(tmp, "wb") as f:
        np.savez(f, *[ops.convert_to_numpy(v) for v in optimizer.variables])


def load_optimizer_state(optimizer, variables, path: Path) -> None:
    """Build `optimizer` for `variables` and give it the state `save_optimizer_state` wrote."""
    if not optimizer.built:
        optimizer.build(variables)
    with np.load(path) as saved:
        values = [saved[f"arr_{i}"] for i in range(len(saved.files))]
    if len(values) != len(optimizer.variables):
        raise ValueError(f"{path} holds {len(values)} optimizer variables; this model's optimizer has "
                         f"{len(optimizer.variables)}")
    for variable, value in zip(optimizer.variables, values):
        variable.assign(value)


def train_transition(predictor, pool: tuple[np.ndarray, np.ndarray], stages: list[Stage], config, seed: int,
                     state_dir: Path, on_stage_end=None) -> list[dict]:
    """Train the transition stage by stage, the encoder frozen (and the decoder unless
    `config.tune_decoder`); skip stages finished before.

    `on_stage_end(k, stage)` runs after each stage, newly trained or not (e.g. to evaluate the
    checkpoint). One Adam optimizer carries its moments from stage to stage, so each finished stage
    saves them beside its weights: a run resumed after stage k continues with the optimizer an
    uninterrupted run would have, not a fresh one. Returns per stage {"stage", "length", "context", "updates", "final_loss"}.
    """
    predictor.encoder.trainable = False
    predictor.decoder.trainable = config.tune_decoder
    optimizer = keras.optimizers.Adam(config.learning_rate, clipnorm=1.0)
    log = []
    for k, stage in enumerate(stages, start=1):
        done = stage_weights(state_dir, k)
        entry = {"stage": k, "length": stage.length, "context": stage.context, "updates": stage.updates}
        if done.is_file():
            predictor.load_weights(done)
            if stage_optimizer(state_dir, k).is_file():  # absent in state saved before it was kept
                load_optimizer_state(optimizer, TransitionTrainer(predictor, stage.context, []).trainable_variables,
                                     stage_optimizer(state_dir, k))
        else:
            keras.utils.set_random_seed(seed * 1_000 + k)
            decoded = decoded_steps(stage.length, config.decode_every)
            trainer = TransitionTrainer(predictor, stage.context, decoded)
            trainer.compile(optimizer=optimizer, loss=["mse", "binary_crossentropy"],
                            loss_weights=[1.0, config.pixel_loss_weight])
            windows = LatentWindows(*pool, config.batch_size, stage.steps, stage.length, decoded, seed, k)
            history = training.fit(trainer, windows, epochs=stage.epochs, state_dir=state_dir / f"stage{k}",
                                   seed=seed * 1_000 + k, callbacks=[EpochSync(windows)], shuffle=False, verbose=0)
            entry["final_loss"] = float(history.history["loss"][-1]) if history.history.get("loss") else math.nan
            save_optimizer_state(optimizer, stage_optimizer(state_dir, k))  # before the weights that mark the stage done
            save_weights_atomic(predictor, done)
        log.append(entry)
        if on_stage_end is not None:
            on_stage_end(k, stage)
    return log
