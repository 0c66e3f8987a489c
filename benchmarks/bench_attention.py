"""Attention speed and memory: our naive path, our memory-efficient path, the fused kernel.

For each sequence length n (head dim 64, batch x heads = 4 x 8 = 32, fp32, causal and not):
- time: best of several runs of one forward pass;
- achieved GFLOP/s: 4 B H n^2 d flops (two matmuls), half of it when causal, against the
  machine's measured fp32 matmul peak;
- peak extra memory: each (method, n, causal) runs in a fresh subprocess, and the growth of the
  process's peak RSS over the forward pass is recorded, so allocator caches of earlier runs do
  not hide it.
The fused kernel is `keras.ops.dot_product_attention`, which on torch calls
torch.nn.functional.scaled_dot_product_attention (the flash kernel on CPU).

Run: `python -m benchmarks.bench_attention [--sizes 256 1024 ...] [--tune]`.
"""

import argparse
import json
import os
import subprocess
import sys
import time

os.environ.setdefault("KERAS_BACKEND", "torch")

import keras  # noqa: E402
import numpy as np  # noqa: E402
from keras import ops  # noqa: E402

from benchmarks.common import best_time, cases, machine_info, peak_rss_bytes, write_results  # noqa: E402
from seqattn.attention import ScaledDotProductAttention  # noqa: E402
from seqattn.progress import progress_write  # noqa: E402

BATCH, HEADS, HEAD_DIM = 4, 8, 64
METHODS = ("naive", "memory_efficient", "fused")
MEMORY_LIMIT_BYTES = 16 * 2**30  # leave room on a 24 GiB machine
DEFAULT_CHUNKS = (256, 512)  # the layer's defaults, from --tune


def attention_flops(n: int, causal: bool) -> float:
    flops = 4.0 * BATCH * HEADS * n * n * HEAD_DIM
    return flops / 2 if causal else flops


def naive_bytes(n: int) -> int:
    """Score, exp and weight matrices alive together in the naive path: about 3 of (B, H, n, n) fp32."""
    return 3 * BATCH * HEADS * n * n * 4


def make_inputs(n: int, seed: int = 0):
    rng = np.random.default_rng(seed)
    shape = (BATCH, HEADS, n, HEAD_DIM)  # (B, nh, T, hs)
    return [ops.convert_to_tensor(rng.standard_normal(shape, dtype=np.float32)) for _ in range(3)]


def forward(method: str, causal: bool, chunks=DEFAULT_CHUNKS):
    """A function q, k, v -> output for `method`."""
    if method == "fused":
        def fused(q, k, v):
            # keras.ops.dot_product_attention takes (B, T, nh, hs)
            t = lambda x: ops.swapaxes(x, 1, 2)  # noqa: E731
            return ops.dot_product_attention(t(q), t(k), t(v), is_causal=causal)
        return fused
    layer = ScaledDotProductAttention(
        causal=causal, memory_efficient=method == "memory_efficient",
        query_chunk_size=chunks[0], key_chunk_size=chunks[1],
    )
    return lambda q, k, v: layer(q, k, v)


def measure_matmul_peak() -> float:
    """fp32 GFLOP/s of a large square matmul: the ceiling attention could reach here."""
    rng = np.random.default_rng(0)
    a = ops.convert_to_tensor(rng.standard_normal((2048, 2048), dtype=np.float32))
    seconds = best_time(lambda: ops.convert_to_numpy(ops.matmul(a, a)), repeats=5)
    return 2 * 2048**3 / seconds / 1e9


def run_case(method: str, n: int, causal: bool, repeats: int, chunks) -> dict:
    """One measurement; meant to run in a fresh process (see `_in_subprocess`)."""
    q, k, v = make_inputs(n)
    fn = forward(method, causal, chunks)
    baseline = peak_rss_bytes()
    start = time.perf_counter()
    ops.convert_to_numpy(fn(q, k, v))  # first call: memory, and the only timing for long runs
    seconds = time.perf_counter() - start
    extra = peak_rss_bytes() - baseline
    if repeats > 1:
        seconds = best_time(lambda: ops.convert_to_numpy(fn(q, k, v)), repeats=repeats, warmup=0)
    return {
        "method": method, "n": n, "causal": causal, "chunks": list(chunks) if method == "memory_efficient" else None,
        "seconds": seconds, "gflops": attention_flops(n, causal) / seconds / 1e9, "peak_extra_bytes": extra,
    }


def _in_subprocess(method: str, n: int, causal: bool, repeats: int, chunks) -> dict:
    code = (
        "import json, sys; from benchmarks.bench_attention import run_case; "
        f"print(json.dumps(run_case({method!r}, {n}, {causal}, {repeats}, {tuple(chunks)})))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def repeats_for(n: int) -> int:
    """Best of 5 for short runs; a single (first) call above n = 4096, where one call takes minutes."""
    return 5 if n <= 1024 else 3 if n <= 4096 else 1


def tune_chunks(n: int, causal: bool) -> list[dict]:
    """Time the memory-efficient path over chunk sizes at one length."""
    rows = []
    sizes = (256, 512, 1024, 2048)
    for q_chunk, k_chunk in cases([(q, k) for q in sizes for k in sizes], f"tune chunks at n={n}"):
        rows.append(_in_subprocess("memory_efficient", n, causal, 2, (q_chunk, k_chunk)))
        progress_write(f"  tune n={n} chunks=({q_chunk}, {k_chunk}): {rows[-1]['seconds']:.3f} s")
    return rows


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[256, 1024, 4096, 16384, 32768])
    parser.add_argument("--tune", action="store_true", help="sweep chunk sizes at n=4096 first")
    args = parser.parse_args(argv)

    payload = {"machine": machine_info(), "shape": {"batch": BATCH, "heads": HEADS, "head_dim": HEAD_DIM},
               "matmul_peak_gflops": measure_matmul_peak(), "rows": [], "skipped": []}
    chunks = DEFAULT_CHUNKS
    if args.tune:
        payload["tuning"] = tune_chunks(4096, causal=False)
        best = min(payload["tuning"], key=lambda r: r["seconds"])
        chunks = tuple(best["chunks"])
    payload["chunks"] = list(chunks)
    grid = [(n, causal, method) for n in args.sizes for causal in (False, True) for method in METHODS]
    for n, causal, method in cases(grid, "attention"):
        if method == "naive" and naive_bytes(n) > MEMORY_LIMIT_BYTES:
            payload["skipped"].append({"method": method, "n": n, "causal": causal,
                                       "reason": f"needs ~{naive_bytes(n) / 2**30:.0f} GiB for (B, H, n, n) scores"})
            continue
        if method == "fused" and n > 16384:
            payload["skipped"].append({"method": method, "n": n, "causal": causal,
                                       "reason": "beyond the issue's grid for the fused kernel"})
            continue
        row = _in_subprocess(method, n, causal, repeats_for(n), chunks)
        payload["rows"].append(row)
        progress_write(f"n={n:6d} causal={causal!s:5} {method:17s} {row['seconds']:8.3f} s "
                       f"{row['gflops']:7.1f} GFLOP/s  +{row['peak_extra_bytes'] / 2**20:8.1f} MiB")
    path = write_results("attention", payload)
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
