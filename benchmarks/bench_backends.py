"""The same training steps on the torch and tensorflow backends, so users know what they choose.

Keras reads KERAS_BACKEND once, at import, so each backend runs in its own subprocess
(`--child BACKEND`) and reports JSON back. In each, with the models as `seqattn` builds them
(default `compile` settings, whatever each backend makes of them):
- H-TAP: one `train_on_batch` step on 20-frame Moving MNIST clips, quick profile and batch;
- the hybrid forecaster: `--steps` `train_on_batch` steps on ETTh1 (L=96, H=96), quick profile.
Best of a few after a warm-up (which on tensorflow also traces the step function). The ratio is
tensorflow time / torch time per case. Torch runs with the project's thread policy
(`seqattn.backend.limit_torch_threads`: one thread), and once more with OMP_NUM_THREADS=2
(torch-2threads); tensorflow with its own defaults. Thread settings are recorded.

Run: `python -m benchmarks.bench_backends [--backends torch tensorflow torch-2threads] [--repeats 3]`.
"""

import argparse
import json
import os
import subprocess
import sys

from benchmarks.common import cases, write_results
from seqattn.progress import progress_write

BACKENDS = ("torch", "tensorflow")
# Variants: name -> (backend, OMP_NUM_THREADS or None to keep the environment's). torch-2threads
# shows what the one-thread policy costs or saves against tensorflow's use of every core.
VARIANTS = {"torch": ("torch", None), "tensorflow": ("tensorflow", None), "torch-2threads": ("torch", "2")}
CLIP_FRAMES = 20
LOOKBACK = HORIZON = 96


def child(backend: str, repeats: int, steps: int) -> dict:
    """Measure in this process; keras must not be imported yet."""
    from seqattn.backend import limit_torch_threads, select_backend

    select_backend(backend)
    limit_torch_threads()
    import keras

    from benchmarks.common import best_time, machine_info
    from seqattn.data.mnist import load_mnist, split_pools
    from seqattn.data.moving_mnist import generate
    from seqattn.data.windows import make_windows
    from seqattn.experiments import forecast, video

    info = machine_info() | {"omp_num_threads": os.environ.get("OMP_NUM_THREADS") or None,
                             "thread_policy": "seqattn.backend.limit_torch_threads"}
    if backend == "tensorflow":
        import tensorflow as tf

        info["tf_intra_op_threads"] = tf.config.threading.get_intra_op_parallelism_threads()  # 0: TF's default
        info["tf_inter_op_threads"] = tf.config.threading.get_inter_op_parallelism_threads()
    rows = []

    config = video.PROFILES["quick"]
    pool, _ = split_pools(load_mnist())
    x = generate(pool, config.batch_size, length=CLIP_FRAMES, seed=0)[..., None].astype("float32") / 255
    keras.utils.set_random_seed(0)
    model = video.build_model("htap", config)
    seconds = best_time(lambda: model.train_on_batch(x, x[:, 1:]), repeats=repeats)
    rows.append({"case": f"H-TAP train step ({config.batch_size} clips x {CLIP_FRAMES} frames)",
                 "key": "htap_train_step", "seconds": seconds, "jit_compile": bool(model.jit_compile)})
    print(f"[{backend}] htap step: {seconds:.3f} s", file=sys.stderr, flush=True)

    fconfig = forecast.PROFILES["quick"]
    data = make_windows(forecast.load_series("etth1", fconfig.features, seed=0, n_samples=0), LOOKBACK, HORIZON)
    bs = fconfig.batch_size
    batches = [(data.x["train"][i * bs : (i + 1) * bs], data.y["train"][i * bs : (i + 1) * bs]) for i in range(steps)]
    keras.utils.set_random_seed(0)
    model = forecast.build_model("hybrid", fconfig, LOOKBACK, HORIZON)
    seconds = best_time(lambda: [model.train_on_batch(a, b) for a, b in batches], repeats=repeats)
    rows.append({"case": f"hybrid forecaster train step (ETTh1 L={LOOKBACK} H={HORIZON}, batch {bs})",
                 "key": "forecaster_train_step", "seconds": seconds / steps, "jit_compile": bool(model.jit_compile)})
    print(f"[{backend}] forecaster step: {seconds / steps:.4f} s", file=sys.stderr, flush=True)
    return {"machine": info, "rows": rows}


def run_child(variant: str, repeats: int, steps: int) -> dict:
    backend, threads = VARIANTS[variant]
    env = {k: v for k, v in os.environ.items() if k != "KERAS_BACKEND"}
    if threads is not None:
        env["OMP_NUM_THREADS"] = threads
    out = subprocess.run(
        [sys.executable, "-m", "benchmarks.bench_backends", "--child", backend,
         "--repeats", str(repeats), "--steps", str(steps)],
        capture_output=True, text=True, env=env,
    )
    if out.returncode:
        raise RuntimeError(f"{variant} benchmark failed:\n{out.stderr[-3000:]}")
    for line in out.stderr.splitlines():
        if line.startswith("["):
            progress_write(line, file=sys.stderr)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backends", nargs="+", choices=list(VARIANTS), default=list(VARIANTS))
    parser.add_argument("--repeats", type=int, default=3, help="timed repeats per case (after one warm-up)")
    parser.add_argument("--steps", type=int, default=10, help="forecaster batches per timed pass")
    parser.add_argument("--child", choices=BACKENDS, default=None, help=argparse.SUPPRESS)
    parser.add_argument("--name", default="backends", help="results file stem (benchmarks/results/<name>.json)")
    args = parser.parse_args(argv)

    if args.child:
        print(json.dumps(child(args.child, args.repeats, args.steps)))
        return
    per_backend = {b: run_child(b, args.repeats, args.steps) for b in cases(args.backends, "backends")}
    payload = {"machine": per_backend[args.backends[0]]["machine"],
               "machines": {b: r["machine"] for b, r in per_backend.items()}, "cases": []}
    for i, row in enumerate(per_backend[args.backends[0]]["rows"]):
        case = {"case": row["case"], "key": row["key"],
                "seconds": {b: per_backend[b]["rows"][i]["seconds"] for b in args.backends},
                "jit_compile": {b: per_backend[b]["rows"][i]["jit_compile"] for b in args.backends}}
        if {"torch", "tensorflow"} <= set(args.backends):
            case["tensorflow_over_torch"] = case["seconds"]["tensorflow"] / case["seconds"]["torch"]
            print(f"{row['key']}: tensorflow/torch = {case['tensorflow_over_torch']:.2f}", flush=True)
        if {"torch", "torch-2threads"} <= set(args.backends):
            case["torch_2threads_over_torch"] = case["seconds"]["torch-2threads"] / case["seconds"]["torch"]
        payload["cases"].append(case)
    print(f"wrote {write_results(args.name, payload)}")


if __name__ == "__main__":
    main()
