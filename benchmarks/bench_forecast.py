"""Forecaster training throughput on ETTh1 (multivariate, L=96, H=96): the RNN + attention hybrid
against the plain seq2seq RNN (the same model without attention) and DLinear.

- train: training windows per second of `train_on_batch` over the first `--steps` batches of the
  training windows, quick-profile models and batch size (`seqattn.experiments.forecast`, built with
  its `build_model`), best of a few passes after a warm-up pass;
- cli: the wall time of `seqattn forecast --profile quick` in a subprocess (all four models
  trained with early stopping, evaluated, logged to a throw-away MLflow store), unless --no-cli.
Data: ETTh1 through `seqattn.data.ett` (set SEQATTN_DATA_DIR). It runs on KERAS_BACKEND or the
project's default backend, with the project's thread policy (`seqattn.backend`: torch one thread,
tensorflow its default, unless OMP_NUM_THREADS is set), as users get it.

Run: `python -m benchmarks.bench_forecast [--steps 20] [--repeats 3] [--no-cli]`.
"""

import argparse
import os
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

from seqattn.backend import limit_torch_threads, select_backend

select_backend()  # KERAS_BACKEND, or the project's default as users get it
limit_torch_threads()
# torch_threads in the machine record is what this policy left; OMP_NUM_THREADS overrides it
THREADS = {"omp_num_threads": os.environ.get("OMP_NUM_THREADS") or None,
           "thread_policy": "seqattn.backend (OMP_NUM_THREADS, else torch 1 thread, tensorflow its default)"}

import keras  # noqa: E402

from benchmarks.common import best_time, cases, machine_info, write_results  # noqa: E402
from seqattn.data.windows import make_windows  # noqa: E402
from seqattn.experiments.forecast import PROFILES, build_model, load_series  # noqa: E402
from seqattn.progress import progress_write  # noqa: E402

MODELS = ("hybrid", "seq2seq", "dlinear")
LOOKBACK = HORIZON = 96


def bench_train(steps: int, repeats: int) -> dict:
    config = PROFILES["quick"]
    data = make_windows(load_series("etth1", config.features, seed=0, n_samples=0), LOOKBACK, HORIZON)
    bs = config.batch_size
    batches = [(data.x["train"][i * bs : (i + 1) * bs], data.y["train"][i * bs : (i + 1) * bs]) for i in range(steps)]
    rows = []
    for name in cases(MODELS, "forecaster training"):
        keras.utils.set_random_seed(0)
        model = build_model(name, config, LOOKBACK, HORIZON)
        seconds = best_time(lambda: [model.train_on_batch(x, y) for x, y in batches], repeats=repeats)
        windows = steps * bs
        rows.append({"model": name, "batch_size": bs, "steps": steps, "seconds": seconds,
                     "windows_per_s": windows / seconds, "seconds_per_step": seconds / steps,
                     "parameters": int(model.count_params())})
        progress_write(f"train {name:8s}: {windows / seconds:8.0f} windows/s ({1e3 * seconds / steps:.1f} ms/step)")
    hybrid = rows[0]["windows_per_s"]
    for row in rows:
        row["speed_vs_hybrid"] = row["windows_per_s"] / hybrid  # > 1: faster than the hybrid
    return {"dataset": "etth1", "features": config.features, "lookback": LOOKBACK, "horizon": HORIZON,
            "train_windows": int(len(data.x["train"])), "channels": int(data.x["train"].shape[-1]),
            "rows": rows}


def bench_cli() -> dict:
    """Wall time of the quick profile from the command line, in a fresh process."""
    command = [shutil.which("seqattn") or "seqattn", "forecast", "--profile", "quick"]
    with tempfile.TemporaryDirectory() as folder:
        full = command + ["--out", str(Path(folder) / "out"),
                          "--tracking-uri", f"sqlite:///{Path(folder) / 'mlflow.db'}"]
        start = time.perf_counter()
        done = subprocess.run(full, capture_output=True, text=True, env=os.environ.copy())
        seconds = time.perf_counter() - start
    if done.returncode:
        raise RuntimeError(f"{' '.join(command)} failed:\n{done.stderr[-3000:]}")
    print(f"cli {' '.join(command)}: {seconds:.0f} s wall", flush=True)
    return {"command": " ".join(command), "wall_s": seconds,
            "omp_num_threads": os.environ.get("OMP_NUM_THREADS") or None}


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=20, help="training batches per timed pass")
    parser.add_argument("--repeats", type=int, default=3, help="timed passes (after one warm-up pass)")
    parser.add_argument("--no-cli", action="store_true", help="skip timing `seqattn forecast --profile quick`")
    parser.add_argument("--name", default="forecast", help="results file stem (benchmarks/results/<name>.json)")
    args = parser.parse_args(argv)

    payload = {"machine": machine_info() | THREADS, "profile": "quick", "train": bench_train(args.steps, args.repeats)}
    if not args.no_cli:
        payload["cli"] = bench_cli()
    print(f"wrote {write_results(args.name, payload)}")


if __name__ == "__main__":
    main()
