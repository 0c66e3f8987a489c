"""Moving MNIST data and metrics throughput: generating sequences, training batches, reading a
sequence file, and the per-frame metrics.

- generate: sequences per second of 2 digits on a 64x64 canvas, 20 frames (target of the Part 3
  issue: at least 1,000 per second on 2 cores) and 100 frames, best of several runs;
- SequenceBatches: float32 (B, T, 64, 64, 1) training batches per second;
- load_sequences: an official-layout (20, N, 64, 64) uint8 file read into float32 (N, T, 64, 64);
- frame_metrics: frames per second for MSE, MAE, PSNR and SSIM together.
Digits are the real MNIST test digits when SEQATTN_DATA_DIR (or the cache) holds them, else the
offline fallback; the source is recorded.

Run: `python -m benchmarks.bench_moving_mnist [--repeats 5]`.
"""

import argparse
import os
import tempfile
from pathlib import Path

os.environ.setdefault("KERAS_BACKEND", "torch")

import numpy as np  # noqa: E402

from benchmarks.common import best_time, cases, machine_info, write_results  # noqa: E402
from seqattn.data.mnist import load_mnist, split_pools  # noqa: E402
from seqattn.data.moving_mnist import SequenceBatches, generate, load_sequences  # noqa: E402
from seqattn.metrics.video import frame_metrics  # noqa: E402
from seqattn.progress import progress_write  # noqa: E402

TARGET_SEQUENCES_PER_S = 1000  # 20-frame sequences, from the Part 3 issue


def bench_generate(pool: np.ndarray, repeats: int) -> list[dict]:
    rows = []
    for length, n in cases(((20, 1000), (20, 5000), (100, 1000)), "generate"):
        seconds = best_time(lambda: generate(pool, n, length=length, seed=0), repeats=repeats)
        rows.append({"length": length, "n_sequences": n, "seconds": seconds,
                     "sequences_per_s": n / seconds, "frames_per_s": n * length / seconds})
        progress_write(f"generate {n:5d} x {length:3d} frames: {seconds:.3f} s, {n / seconds:8.0f} sequences/s")
    return rows


def bench_batches(pool: np.ndarray, repeats: int) -> dict:
    batches = SequenceBatches(pool, batch_size=32, steps_per_epoch=20, length=20, seed=0)
    seconds = best_time(lambda: [batches[i] for i in range(len(batches))], repeats=repeats)
    per_s = len(batches) / seconds
    print(f"SequenceBatches (32, 20, 64, 64, 1): {per_s:.1f} batches/s", flush=True)
    return {"batch_size": 32, "length": 20, "batches_per_s": per_s, "sequences_per_s": 32 * per_s}


def bench_load(pool: np.ndarray, repeats: int) -> dict:
    n = 2000
    sequences = generate(pool, n, length=20, seed=1).transpose(1, 0, 2, 3)  # (T, N, H, W) official layout
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "mnist_test_seq.npy"
        np.save(path, sequences)
        seconds = best_time(lambda: load_sequences(path, layout="tnhw"), repeats=repeats)
    print(f"load_sequences (20, {n}, 64, 64) uint8: {seconds:.3f} s, {n / seconds:.0f} sequences/s", flush=True)
    return {"shape": [20, n, 64, 64], "seconds": seconds, "sequences_per_s": n / seconds}


def bench_metrics(pool: np.ndarray, repeats: int) -> dict:
    true = generate(pool, 100, length=20, seed=2).astype(np.float32) / 255  # (N, T, H, W)
    pred = np.clip(true + np.random.default_rng(0).normal(0, 0.1, true.shape).astype(np.float32), 0, 1)
    seconds = best_time(lambda: frame_metrics(true, pred), repeats=repeats)
    frames = true.shape[0] * true.shape[1]
    print(f"frame_metrics {frames} frames of 64x64: {seconds:.3f} s, {frames / seconds:.0f} frames/s", flush=True)
    return {"frames": frames, "seconds": seconds, "frames_per_s": frames / seconds}


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args(argv)

    digits = load_mnist()
    train_pool, _ = split_pools(digits)
    payload = {"machine": machine_info(), "digits_source": digits.source, "pool_size": len(train_pool)}
    payload["generate"] = bench_generate(train_pool, args.repeats)
    payload["sequence_batches"] = bench_batches(train_pool, args.repeats)
    payload["load_sequences"] = bench_load(train_pool, args.repeats)
    payload["frame_metrics"] = bench_metrics(train_pool, args.repeats)
    rate = next(r["sequences_per_s"] for r in payload["generate"] if r["length"] == 20 and r["n_sequences"] == 1000)
    payload["target"] = {"sequences_per_s_20_frames": TARGET_SEQUENCES_PER_S, "measured": rate,
                         "met": rate >= TARGET_SEQUENCES_PER_S}
    print(f"target >= {TARGET_SEQUENCES_PER_S} sequences/s (20 frames): {rate:.0f}, "
          f"{'met' if rate >= TARGET_SEQUENCES_PER_S else 'NOT met'}")
    path = write_results("moving_mnist", payload)
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
