"""Video models: training throughput of TAP, H-TAP and ConvLSTM, and H-TAP's rollout cost per frame.

- train: one optimiser step (`train_on_batch`) on Moving MNIST clips of 20 and 100 frames, batch
  and model sizes of the quick profile (`seqattn.experiments.video`, built with its `build_model`),
  best of a few steps after a warm-up step; frames/s counts the clip frames of the batch.
- rollout: the time of each generated frame against its position, H-TAP with and without the
  key/value cache, the latent transition alone (the decoder runs once over all latents at the
  end, so it does not depend on the position). The loop is `HTAP.rollout_tokens`'s, with a clock
  around every step. A step's cost depends only on the length of the history it reads, so the
  context is 2 frames here, which makes frames 3..100 single steps (the quick profile observes 10;
  its frame p costs what frame p costs here). Best of several rollouts per position. The target:
  with the cache, frame 100 costs at most 1.2x frame 10.
  As a check on the instrumented loop, `rollout_tokens` itself is timed whole, both ways.
It runs on KERAS_BACKEND or the project's default backend, with the project's thread policy
(`seqattn.backend`: torch one thread, tensorflow its default, unless OMP_NUM_THREADS is set), as
users get it.

Run: `python -m benchmarks.bench_video [--lengths 20 100] [--repeats 3] [--rollouts 7]`.
"""

import argparse
import contextlib
import os
import time

from seqattn.backend import limit_torch_threads, select_backend

select_backend()  # KERAS_BACKEND, or the project's default as users get it
limit_torch_threads()
# torch_threads in the machine record is what this policy left; OMP_NUM_THREADS overrides it
THREADS = {"omp_num_threads": os.environ.get("OMP_NUM_THREADS") or None,
           "thread_policy": "seqattn.backend (OMP_NUM_THREADS, else torch 1 thread, tensorflow its default)"}

import keras  # noqa: E402
import numpy as np  # noqa: E402
from keras import ops  # noqa: E402

from benchmarks.common import best_time, cases, machine_info, write_results  # noqa: E402
from seqattn.data.mnist import load_mnist, split_pools  # noqa: E402
from seqattn.data.moving_mnist import generate  # noqa: E402
from seqattn.experiments.video import LATENT_MODELS, MODEL_NAMES, PROFILES, build_model  # noqa: E402
from seqattn.experiments.video_training import TransitionTrainer, decoded_steps  # noqa: E402
from seqattn.models.video import residual_step  # noqa: E402
from seqattn.progress import progress_write  # noqa: E402

TARGET_RATIO = 1.2  # frame 100 / frame 10 with the cache: a cached step's cost barely grows with the history
ROLLOUT_CONTEXT = 2


def inference():
    """No autograd bookkeeping during rollout, as `model.predict` runs it."""
    if keras.backend.backend() == "torch":
        import torch

        return torch.no_grad()
    return contextlib.nullcontext()


def clips(pool: np.ndarray, batch: int, length: int) -> np.ndarray:
    return generate(pool, batch, length=length, seed=0)[..., None].astype(np.float32) / 255  # (B, T, 64, 64, 1)


def training_step(name: str, config, x: np.ndarray) -> tuple:
    """One training step of `name` as the study trains it, on clips x (B, T, 64, 64, 1): TAP and
    H-TAP on latent windows (closed loop after 10 observed latents, the pixel loss on every few
    decoded predictions), the ConvLSTM end to end on clips. Returns (the model, the compiled model
    that `train_on_batch` steps, its inputs, its targets)."""
    keras.utils.set_random_seed(0)
    model = build_model(name, config)
    if name not in LATENT_MODELS:
        return model, model, x, x[:, 1:]
    decoded = decoded_steps(x.shape[1], config.decode_every)
    trainer = TransitionTrainer(model, config.context, decoded)
    trainer.compile(optimizer="adam", loss=["mse", "binary_crossentropy"])
    z = ops.convert_to_numpy(model.encode(x))
    return model, trainer, z, (z[:, 1:], x[:, np.asarray(decoded) + 1])


def bench_train(pool: np.ndarray, lengths, repeats: int, models) -> list[dict]:
    """`training_step` of each model on clips of each length."""
    config = PROFILES["quick"]
    rows = []
    for length, name in cases([(length, name) for length in lengths for name in models], "video training"):
        model, trained, inputs, targets = training_step(name, config, clips(pool, config.batch_size, length))
        seconds = best_time(lambda: trained.train_on_batch(inputs, targets), repeats=repeats)
        frames = config.batch_size * length
        rows.append({"model": name, "frames": length, "batch_size": config.batch_size, "seconds": seconds,
                     "frames_per_s": frames / seconds, "clips_per_s": config.batch_size / seconds,
                     "parameters": int(model.count_params())})
        progress_write(f"train {name:8s} {length:3d} frames: {seconds:.3f} s/step, {frames / seconds:7.1f} frames/s")
    return rows


def timed_rollout(model, tokens, horizon: int, use_cache: bool) -> list[float]:
    """`HTAP.rollout_tokens` with a clock around every step: seconds of each generated frame,
    frames context+1 .. context+horizon in order."""
    seconds = []
    start = time.perf_counter()
    delta, cache, _ = model._extend(tokens, None, False, False)
    predicted = residual_step(tokens, delta)  # (B, C, s, s, D)
    ops.convert_to_numpy(predicted)
    seconds.append(time.perf_counter() - start)
    history = None if use_cache else ops.concatenate([tokens, predicted[:, -1:]], axis=1)
    z = predicted[:, -1:]  # (B, 1, s, s, D)
    for _ in range(horizon - 1):
        start = time.perf_counter()
        if use_cache:
            delta, cache, _ = model._extend(z, cache, False, False)
        else:
            delta = model._extend(history, None, False, False)[0][:, -1:]
        z = residual_step(z, delta)
        if not use_cache:
            history = ops.concatenate([history, z], axis=1)
        ops.convert_to_numpy(z)  # the step is done when its latent can be read
        seconds.append(time.perf_counter() - start)
    return seconds


def bench_rollout(length: int, rollouts: int) -> dict:
    config = PROFILES["quick"]
    batch = config.eval_batch_size
    keras.utils.set_random_seed(0)
    model = build_model("htap", config)
    rng = np.random.default_rng(0)
    tokens = ops.convert_to_tensor(rng.uniform(-0.9, 0.9, (batch, ROLLOUT_CONTEXT, *model.token_shape)).astype(np.float32))
    horizon = length - ROLLOUT_CONTEXT
    positions = list(range(ROLLOUT_CONTEXT + 1, length + 1))  # generated frames
    out = {"batch_size": batch, "context": ROLLOUT_CONTEXT, "last_frame": length, "positions": positions}
    with inference():
        for use_cache in cases((True, False), "rollouts"):
            key = "cache" if use_cache else "no_cache"
            timed_rollout(model, tokens, horizon, use_cache)  # warm-up
            runs = np.array([timed_rollout(model, tokens, horizon, use_cache) for _ in range(rollouts)])
            best = runs.min(axis=0)  # (positions,)
            at = {p: float(best[positions.index(p)]) for p in (10, length)}
            window = lambda lo, hi: float(best[positions.index(lo) : positions.index(hi) + 1].mean())  # noqa: E731
            whole = best_time(lambda: ops.convert_to_numpy(
                model.rollout_tokens(tokens, horizon, use_cache=use_cache)), repeats=3)
            out[key] = {
                "seconds_per_frame": best.tolist(),
                "frame_10_s": at[10], "frame_last_s": at[length],
                "ratio_last_to_10": at[length] / at[10],
                # less sensitive to one noisy step: frames length-9..length against 10..19
                "ratio_last10_to_10_19": window(length - 9, length) / window(10, 19),
                "instrumented_total_s": float(best.sum()),
                "rollout_tokens_s": whole,
            }
            progress_write(f"rollout {key:8s}: frame 10 {1e3 * at[10]:.2f} ms, frame {length} "
                           f"{1e3 * at[length]:.2f} ms, ratio {at[length] / at[10]:.2f}; "
                           f"whole rollout_tokens {whole:.3f} s")
    ratio = out["cache"]["ratio_last_to_10"]
    out["target"] = {"max_ratio_with_cache": TARGET_RATIO, "measured": ratio, "met": ratio <= TARGET_RATIO}
    return out


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lengths", type=int, nargs="+", default=[20, 100], help="training clip lengths")
    parser.add_argument("--models", nargs="+", choices=MODEL_NAMES, default=list(MODEL_NAMES))
    parser.add_argument("--repeats", type=int, default=3, help="timed training steps per case (after one warm-up)")
    parser.add_argument("--rollout-length", type=int, default=100)
    parser.add_argument("--rollouts", type=int, default=7, help="timed rollouts; the best per position counts")
    parser.add_argument("--name", default="video", help="results file stem (benchmarks/results/<name>.json)")
    args = parser.parse_args(argv)

    digits = load_mnist()
    train_pool, _ = split_pools(digits)
    payload = {"machine": machine_info() | THREADS, "digits_source": digits.source, "profile": "quick",
               "config": {k: getattr(PROFILES["quick"], k) for k in (
                   "batch_size", "context", "latent_channels", "codec_widths", "token_patch", "d_model", "num_layers",
                   "num_heads", "ff_dim", "rnn", "decode_every", "convlstm_filters", "convlstm_kernel",
                   "eval_batch_size")}}
    payload["train"] = bench_train(train_pool, args.lengths, args.repeats, args.models)
    payload["rollout"] = bench_rollout(args.rollout_length, args.rollouts)
    target = payload["rollout"]["target"]
    print(f"target frame {args.rollout_length} <= {TARGET_RATIO}x frame 10 with the cache: "
          f"{target['measured']:.2f}x, {'met' if target['met'] else 'NOT met'}")
    print(f"wrote {write_results(args.name, payload)}")


if __name__ == "__main__":
    main()
