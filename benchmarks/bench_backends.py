"""Every training step of the study on every backend and compile mode, to choose the default.

Cases, one `train_on_batch` step each, with the models as the experiments build them (quick profile):
- Part 1: the retrieval model (`seqattn.experiments.attention.build_model`);
- Part 2: the hybrid forecaster on ETTh1 (L=96, H=96);
- Part 3: every model of the video factory (`seqattn.experiments.video.MODEL_NAMES`, built by its
  `build_model`) on 20-frame Moving MNIST clips, 10 observed and 10 predicted, trained as the
  study trains it (`benchmarks.bench_video.training_step`: TAP and H-TAP on latent windows, the
  ConvLSTM end to end on clips).
Parts 1 and 2 take `--steps` batches per timed pass (their steps last milliseconds), Part 3 one.
Variants: torch eager (Keras's torch default); torch with jit_compile=True (torch.compile);
tensorflow as Keras runs it on a CPU (a tf.function graph, jit_compile "auto" = off) and with
jit_compile=True (XLA); jax (jit) when it is installed. Each runs with 1 and with 2 threads (torch
intra-op threads, OMP_NUM_THREADS; tensorflow intra- and inter-op threads).

Keras reads KERAS_BACKEND once, at import, so every (variant, threads, case) runs in its own
subprocess (`--child`), which also keeps a compiler that crashes or hangs to its own case: a case
that fails or passes `--case-timeout` seconds (compilation included) is recorded with its error.
Seconds per step are the best of `--repeats` after a warm-up step, which also traces or compiles;
the warm-up's time and the machine's load average are recorded too. The variants of one case run
back to back, so that changing load from other jobs falls on them alike. Each variant's score is
the geometric mean over the cases of its time over the fastest time of that case, so every part of
the study counts alike.

Run: `python -m benchmarks.bench_backends [--variants torch tensorflow ...] [--threads 1 2] [--cases ...]`.
"""

import argparse
import importlib.util
import json
import math
import os
import re
import subprocess
import sys
import time

from benchmarks.common import cases, write_results
from seqattn.backend import select_backend
from seqattn.progress import progress_write

# name -> (backend, jit_compile)
VARIANTS = {
    "torch": ("torch", False),
    "torch-compile": ("torch", True),
    "tensorflow": ("tensorflow", False),
    "tensorflow-xla": ("tensorflow", True),
    "jax": ("jax", True),
}
THREADS = (1, 2)
CLIP_FRAMES = 20  # Part 3 clips: 10 observed, 10 predicted
LOOKBACK = HORIZON = 96  # Part 2


def _set_threads(backend: str, threads: int) -> None:
    """Before the backend computes anything."""
    if backend == "tensorflow":
        import tensorflow as tf

        tf.config.threading.set_intra_op_parallelism_threads(threads)
        tf.config.threading.set_inter_op_parallelism_threads(threads)
    elif backend == "torch":
        import torch

        torch.set_num_threads(threads)


def case_keys() -> list[str]:
    """The cases, with the Part 3 models the video factory has today."""
    from seqattn.experiments import video

    return ["retrieval", "hybrid", *(f"video-{name}" for name in video.MODEL_NAMES)]


def _prepare(key: str, steps: int):
    """(description, model, batches) for one case; the model is built and compiled, not yet trained."""
    import keras

    from seqattn.experiments import attention, forecast, video

    keras.utils.set_random_seed(0)
    if key == "retrieval":
        from seqattn.data.retrieval import make_retrieval_task

        config = attention.PROFILES["quick"]
        bs = config.batch_size
        task = make_retrieval_task(steps * bs, config.n_pairs, config.n_keys, config.n_values, seed=0)
        inputs = task.inputs()
        batches = [({name: x[i * bs : (i + 1) * bs] for name, x in inputs.items()}, task.targets[i * bs : (i + 1) * bs])
                   for i in range(steps)]
        return f"Part 1 retrieval model (batch {bs})", attention.build_model(config), batches
    if key == "hybrid":
        from seqattn.data.windows import make_windows

        config = forecast.PROFILES["quick"]
        data = make_windows(forecast.load_series("etth1", config.features, seed=0, n_samples=0), LOOKBACK, HORIZON)
        bs = config.batch_size
        batches = [(data.x["train"][i * bs : (i + 1) * bs], data.y["train"][i * bs : (i + 1) * bs])
                   for i in range(steps)]
        return (f"Part 2 hybrid forecaster (ETTh1 L={LOOKBACK} H={HORIZON}, batch {bs})",
                forecast.build_model("hybrid", config, LOOKBACK, HORIZON), batches)
    from benchmarks import bench_video  # imported here: it selects the backend when loaded
    from seqattn.data.mnist import load_mnist, split_pools

    name = key.removeprefix("video-")
    config = video.PROFILES["quick"]
    pool, _ = split_pools(load_mnist())
    _, trained, inputs, targets = bench_video.training_step(name, config,
                                                            bench_video.clips(pool, config.batch_size, CLIP_FRAMES))
    return f"Part 3 {name} ({config.batch_size} clips x {CLIP_FRAMES} frames)", trained, [(inputs, targets)]


def child(backend: str, jit_compile: bool, threads: int, key: str, repeats: int, steps: int) -> dict:
    """Measure one case in this process; keras must not be imported yet."""
    os.environ["OMP_NUM_THREADS"] = str(threads)  # torch reads it at import, seqattn's tensorflow policy too
    select_backend(backend)
    _set_threads(backend, threads)

    from benchmarks.common import machine_info

    description, model, batches = _prepare(key, steps)
    if jit_compile != bool(model.jit_compile):
        model.jit_compile = jit_compile
        model.make_train_function(force=True)

    def step():
        for x, y in batches:
            model.train_on_batch(x, y)

    start = time.perf_counter()
    step()  # warm-up: traces or compiles the step
    warmup = time.perf_counter() - start
    best = math.inf
    for _ in range(repeats):
        start = time.perf_counter()
        step()
        best = min(best, time.perf_counter() - start)
    return {"case": description, "seconds": best / len(batches), "warmup_seconds": warmup,
            "jit_compile": bool(model.jit_compile), "load_average": os.getloadavg()[0],
            "machine": machine_info() | {"threads": threads}}


def run_child(variant: str, threads: int, key: str, repeats: int, steps: int, timeout: float) -> dict:
    backend, jit_compile = VARIANTS[variant]
    env = {k: v for k, v in os.environ.items() if k not in ("KERAS_BACKEND", "OMP_NUM_THREADS")}
    command = [sys.executable, "-m", "benchmarks.bench_backends", "--child", variant, "--threads", str(threads),
               "--cases", key, "--repeats", str(repeats), "--steps", str(steps)]
    try:
        out = subprocess.run(command, capture_output=True, text=True, env=env, timeout=timeout)
    except subprocess.TimeoutExpired:
        return {"error": f"more than {timeout:.0f} s (warm-up and {repeats} steps)"}
    if out.returncode:
        lines = [line.strip() for line in out.stderr.splitlines() if line.strip()]
        errors = [line for line in lines if re.match(r"[\w.]+(Error|Exception)\b", line)]
        return {"error": (errors or lines or [f"exit status {out.returncode}"])[-1][:300]}
    return json.loads(out.stdout.strip().splitlines()[-1])


def summarise(results: dict, keys: list[str]) -> dict:
    """Per variant and thread count: geometric mean over cases of time / the case's fastest time."""
    fastest = {key: min((r[key]["seconds"] for r in results.values() if "seconds" in r[key]), default=None)
               for key in keys}
    scores = {}
    for name, per_case in results.items():
        if all("seconds" in per_case[key] for key in keys):  # only a variant that ran every case
            scores[name] = math.exp(sum(math.log(per_case[key]["seconds"] / fastest[key]) for key in keys) / len(keys))
    return {"fastest_seconds": fastest, "geomean_vs_fastest": scores,
            "best": min(scores, key=scores.get) if scores else None}


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--variants", nargs="+", choices=list(VARIANTS), default=list(VARIANTS))
    parser.add_argument("--threads", type=int, nargs="+", default=list(THREADS))
    parser.add_argument("--cases", nargs="+", default=None, help="case keys (default: every step of the study)")
    parser.add_argument("--repeats", type=int, default=3, help="timed steps per case (after one warm-up)")
    parser.add_argument("--steps", type=int, default=10, help="Part 1 and 2 batches per timed pass")
    parser.add_argument("--case-timeout", type=float, default=600, help="seconds per case, compilation included")
    parser.add_argument("--child", choices=list(VARIANTS), default=None, help=argparse.SUPPRESS)
    parser.add_argument("--name", default="backends", help="results file stem (benchmarks/results/<name>.json)")
    args = parser.parse_args(argv)

    if args.child:
        backend, jit_compile = VARIANTS[args.child]
        print(json.dumps(child(backend, jit_compile, args.threads[0], args.cases[0], args.repeats, args.steps)))
        return
    select_backend()  # the video factory's module imports keras: the project's default, not Keras's
    keys = args.cases or case_keys()
    variants = [v for v in args.variants if importlib.util.find_spec(VARIANTS[v][0]) is not None]
    payload = {"variants": {}, "cases": keys, "results": {},
               "not_installed": [v for v in args.variants if v not in variants],
               "load_average_start": os.getloadavg()}
    # Every variant of a case back to back, so a change of load on a shared machine falls on a
    # case's variants alike rather than on whole backends.
    runs = [(v, t, key) for key in keys for v in variants for t in args.threads]
    for variant, threads, key in cases(runs, "backends"):
        name = f"{variant}@{threads}"
        backend, jit_compile = VARIANTS[variant]
        payload["variants"][name] = {"variant": variant, "backend": backend, "jit_compile": jit_compile,
                                     "threads": threads}
        result = run_child(variant, threads, key, args.repeats, args.steps, args.case_timeout)
        payload["results"].setdefault(name, {})[key] = result
        progress_write(f"{name:20s} {key:16s} " + (f"{result['seconds']:.4f} s/step (warm-up "
                       f"{result['warmup_seconds']:.1f} s)" if "seconds" in result else f"failed: {result['error']}"))
    payload["load_average_end"] = os.getloadavg()
    payload["summary"] = summarise(payload["results"], keys)
    machines = [r["machine"] for per_case in payload["results"].values() for r in per_case.values() if "machine" in r]
    payload["machine"] = machines[0] if machines else {}
    print(f"fastest: {payload['summary']['best']}; wrote {write_results(args.name, payload)}")


if __name__ == "__main__":
    main()
