"""Part 3's transition training: what it trains. The encoder is frozen (its latents are the
targets); the decoder is frozen unless `tune_decoder`, when the pixel loss trains it too."""

from dataclasses import replace

import numpy as np
import pytest
from keras import ops

from seqattn.experiments import video_training
from seqattn.experiments.video_config import PROFILES
from seqattn.models.video import TAP


def _weights(layer) -> list[np.ndarray]:
    return [np.array(w) for w in layer.get_weights()]


def _changed(before: list[np.ndarray], after: list[np.ndarray]) -> bool:
    return any(not np.array_equal(a, b) for a, b in zip(before, after))


@pytest.mark.backend
@pytest.mark.parametrize("tune_decoder", [False, True])
def test_transition_training_trains_the_decoder_only_when_asked(tune_decoder, tmp_path):
    model = TAP(units=4, context=3, latent_channels=2, codec_widths=(4, 4), frame_size=16)
    model.build()
    rng = np.random.default_rng(0)
    clips = rng.integers(0, 256, (4, 8, 16, 16), dtype=np.uint8)
    latents = ops.convert_to_numpy(model.encode(clips[..., None].astype(np.float32) / 255.0))  # (4, 8, 4, 4, 2)
    config = replace(PROFILES["quick"], batch_size=2, decode_every=2, tune_decoder=tune_decoder)
    stages = video_training.transition_stages(3, teacher_length=5, max_rollout=5, stages=2, epochs_per_stage=1,
                                              steps_per_epoch=2)
    encoder, decoder, cell = _weights(model.encoder), _weights(model.decoder), _weights(model.cell)
    video_training.train_transition(model, (clips, latents), stages, config, seed=0, state_dir=tmp_path)
    assert not _changed(encoder, _weights(model.encoder))
    assert _changed(decoder, _weights(model.decoder)) == tune_decoder
    assert _changed(cell, _weights(model.cell))


@pytest.mark.parametrize("max_rollout, rollouts", [
    (30, [10, 20, 30]),  # the paper profile: multiples of 5
    (12, [5, 10, 12]),  # the last stage rolls out all 12 frames, not 10
    (7, [5, 5, 7]),
])
def test_closed_loop_rollouts_grow_to_max_rollout(max_rollout, rollouts):
    stages = video_training.transition_stages(10, teacher_length=20, max_rollout=max_rollout, stages=4,
                                              epochs_per_stage=1, steps_per_epoch=1)
    assert stages[0].teacher_forced and stages[0].length == 20
    assert [s.length - s.context for s in stages[1:]] == rollouts
    assert all(s.context == 10 for s in stages[1:])
