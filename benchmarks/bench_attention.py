"""Attention speed and memory: our naive path, our memory-efficient path, the fused kernel.

For each sequence length n (head dim 64, batch x heads = 4 x 8 = 32, fp32, causal and not):
- time: the methods run in one process, interleaved (fused, memory-efficient, naive, fused, ...)
  after a warm-up call each, and each keeps its median over the rounds, wall clock and CPU time.
  Load from other jobs on the machine then falls on every method alike, and the ratios to the
  fused kernel hold where absolute times do not. Above n = 16384 one call takes minutes: the time
  is that of the single call of the memory measurement;
- achieved GFLOP/s: 4 B H n^2 d flops (two matmuls), half of it when causal, against the
  machine's measured fp32 matmul peak;
- peak extra memory: each (method, n, causal) runs once more in a fresh subprocess, and the growth
  of the process's peak RSS over the forward pass is recorded, so allocator caches of earlier runs
  do not hide it.
The fused kernel is `keras.ops.dot_product_attention`, which on torch calls
torch.nn.functional.scaled_dot_product_attention (the flash kernel on CPU); the targets are set
against it, so every measurement runs on torch whatever KERAS_BACKEND says. Torch runs with the
project's thread policy (`seqattn.backend.limit_torch_threads`: one intra-op thread unless
OMP_NUM_THREADS is set), the same for every method; the thread count and the machine's load
average are recorded.

Run: `python -m benchmarks.bench_attention [--sizes 256 1024 ...] [--tune]`.
"""

import argparse
import inspect
import json
import os
import statistics
import subprocess
import sys
import time

os.environ.setdefault("KERAS_BACKEND", "torch")

import numpy as np  # noqa: E402
from keras import ops  # noqa: E402

from benchmarks.common import cases, machine_info, peak_rss_bytes, write_results  # noqa: E402
from seqattn.attention import ScaledDotProductAttention  # noqa: E402
from seqattn.progress import progress_write  # noqa: E402

BATCH, HEADS, HEAD_DIM = 4, 8, 64
METHODS = ("fused", "memory_efficient", "naive")  # the order within each interleaved round
MEMORY_LIMIT_BYTES = 16 * 2**30  # leave room on a 24 GiB machine
FUSED_MAX_N = 16384  # the fused kernel runs up to here; beyond, only the memory-efficient path runs
_LAYER_DEFAULTS = inspect.signature(ScaledDotProductAttention.__init__).parameters
DEFAULT_CHUNKS = (_LAYER_DEFAULTS["query_chunk_size"].default, _LAYER_DEFAULTS["key_chunk_size"].default)
TUNE_CHUNKS = [(q, k) for q in (64, 128, 256, 512) for k in (512, 1024, 2048, 4096)]


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


def _limit_threads() -> None:
    from seqattn.backend import limit_torch_threads

    limit_torch_threads()


def _timed(fn) -> tuple[float, float]:
    """Wall and CPU seconds of one call."""
    wall, cpu = time.perf_counter(), time.process_time()
    fn()
    return time.perf_counter() - wall, time.process_time() - cpu


def measure_machine() -> dict:
    """Machine facts and the fp32 GFLOP/s of a large square matmul, the ceiling attention could reach."""
    _limit_threads()
    rng = np.random.default_rng(0)
    a = ops.convert_to_tensor(rng.standard_normal((2048, 2048), dtype=np.float32))
    ops.convert_to_numpy(ops.matmul(a, a))
    seconds = min(_timed(lambda: ops.convert_to_numpy(ops.matmul(a, a)))[0] for _ in range(5))
    return {"machine": machine_info(), "matmul_peak_gflops": 2 * 2048**3 / seconds / 1e9}


def time_case(n: int, causal: bool, variants: list, rounds: int) -> list[dict]:
    """Median wall and CPU seconds of each (method, chunks) variant over `rounds` interleaved calls."""
    _limit_threads()
    q, k, v = make_inputs(n)
    calls = [lambda fn=forward(method, causal, chunks): ops.convert_to_numpy(fn(q, k, v)) for method, chunks in variants]
    for call in calls:
        call()  # warm-up
    samples = [[] for _ in calls]
    for _ in range(rounds):
        for call, times in zip(calls, samples):
            times.append(_timed(call))
    return [{"seconds": statistics.median(w for w, _ in times), "cpu_seconds": statistics.median(c for _, c in times),
             "rounds": rounds, "load_average": os.getloadavg()[0]} for times in samples]


def memory_case(method: str, n: int, causal: bool, chunks) -> dict:
    """Peak RSS growth over one call in this (fresh) process, and that call's times."""
    _limit_threads()
    q, k, v = make_inputs(n)
    fn = forward(method, causal, chunks)
    baseline = peak_rss_bytes()
    wall, cpu = _timed(lambda: ops.convert_to_numpy(fn(q, k, v)))
    return {"peak_extra_bytes": peak_rss_bytes() - baseline, "seconds": wall, "cpu_seconds": cpu,
            "load_average": os.getloadavg()[0]}


def _in_subprocess(function: str, **kwargs):
    """benchmarks.bench_attention.<function>(**kwargs) in a fresh torch process."""
    code = (f"import json, sys; from benchmarks.bench_attention import {function}; "
            f"print(json.dumps({function}(**json.loads(sys.argv[1]))))")
    env = {**os.environ, "KERAS_BACKEND": "torch"}
    out = subprocess.run([sys.executable, "-c", code, json.dumps(kwargs)], capture_output=True, text=True, env=env)
    if out.returncode:
        raise RuntimeError(f"{function}({kwargs}) failed:\n{out.stderr[-3000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def rounds_for(n: int) -> int:
    """Interleaved rounds per length; none above 16384, where the memory run's single call is the time."""
    return 15 if n <= 1024 else 7 if n <= 4096 else 3 if n <= 16384 else 0


def tune_chunks(n: int, causal: bool) -> list[dict]:
    """The memory-efficient path over chunk sizes at one length, interleaved in one process."""
    variants = [["memory_efficient", list(chunks)] for chunks in TUNE_CHUNKS]
    rows = _in_subprocess("time_case", n=n, causal=causal, variants=variants, rounds=3)
    for (_, chunks), row in zip(variants, rows):
        row["chunks"] = chunks
        progress_write(f"  tune n={n} chunks={tuple(chunks)}: {row['seconds']:.3f} s")
    return rows


def skip_reason(method: str, n: int) -> str | None:
    if method == "naive" and naive_bytes(n) > MEMORY_LIMIT_BYTES:
        return f"needs ~{naive_bytes(n) / 2**30:.0f} GiB for (B, H, n, n) scores"
    if method == "fused" and n > FUSED_MAX_N:
        return f"beyond the fused kernel's grid (n <= {FUSED_MAX_N})"
    return None


def measure(n: int, causal: bool, chunks, payload: dict) -> list[dict]:
    """Rows of every method that runs at (n, causal): memory each in a fresh process, then times interleaved."""
    methods = []
    for method in METHODS:
        reason = skip_reason(method, n)
        if reason:
            payload["skipped"].append({"method": method, "n": n, "causal": causal, "reason": reason})
        else:
            methods.append(method)
    rows = []
    for method in methods:
        memory = _in_subprocess("memory_case", method=method, n=n, causal=causal, chunks=list(chunks))
        rows.append({"method": method, "n": n, "causal": causal,
                     "chunks": list(chunks) if method == "memory_efficient" else None,
                     "peak_extra_bytes": memory["peak_extra_bytes"], "seconds": memory["seconds"],
                     "cpu_seconds": memory["cpu_seconds"], "rounds": 0, "load_average": memory["load_average"]})
    rounds = rounds_for(n)
    if rounds:
        variants = [[method, list(chunks)] for method in methods]
        for row, timing in zip(rows, _in_subprocess("time_case", n=n, causal=causal, variants=variants, rounds=rounds)):
            row.update(timing)
    for row in rows:
        row["gflops"] = attention_flops(n, causal) / row["seconds"] / 1e9
    return rows


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[256, 1024, 4096, 16384, 32768])
    parser.add_argument("--tune", action="store_true", help="sweep chunk sizes at n=4096 first")
    args = parser.parse_args(argv)

    payload = {**_in_subprocess("measure_machine"), "shape": {"batch": BATCH, "heads": HEADS, "head_dim": HEAD_DIM},
               "load_average_start": os.getloadavg(), "rows": [], "skipped": []}
    chunks = DEFAULT_CHUNKS
    if args.tune:
        payload["tuning"] = tune_chunks(4096, causal=False)
        chunks = tuple(min(payload["tuning"], key=lambda r: r["seconds"])["chunks"])
    payload["chunks"] = list(chunks)
    for n, causal in cases([(n, causal) for n in args.sizes for causal in (False, True)], "attention"):
        for row in measure(n, causal, chunks, payload):
            payload["rows"].append(row)
            progress_write(f"n={n:6d} causal={causal!s:5} {row['method']:17s} {row['seconds']:8.3f} s "
                           f"(CPU {row['cpu_seconds']:8.3f} s) {row['gflops']:7.1f} GFLOP/s  "
                           f"+{row['peak_extra_bytes'] / 2**20:8.1f} MiB")
    payload["load_average_end"] = os.getloadavg()
    path = write_results("attention", payload)
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
