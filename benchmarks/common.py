"""What every benchmark shares: machine facts, best-of timing, peak-memory probes, JSON output,
and a progress bar over cases (drawn on a terminal only; print inside it with `progress_write`)."""

import json
import os
import platform
import resource
import sys
import time
from pathlib import Path

from seqattn.progress import progress

RESULTS_DIR = Path(__file__).resolve().parent / "results"


def machine_info() -> dict:
    import keras
    import numpy

    info = {
        "python": platform.python_version(),
        "platform": platform.platform(),
        "processor": platform.processor() or platform.machine(),
        "cpu_count": os.cpu_count(),
        "keras": keras.__version__,
        "numpy": numpy.__version__,
        "backend": keras.backend.backend(),
    }
    if info["backend"] == "torch":
        import torch

        info["torch"] = torch.__version__
        info["torch_threads"] = torch.get_num_threads()
    elif info["backend"] == "tensorflow":
        import tensorflow

        info["tensorflow"] = tensorflow.__version__
        # What the threading API was told, else the environment's (seqattn.backend's policy); 0:
        # TensorFlow's default, one per core.
        threading = tensorflow.config.threading
        info["tf_intra_op_threads"] = (threading.get_intra_op_parallelism_threads()
                                       or int(os.environ.get("TF_NUM_INTRAOP_THREADS", 0)))
        info["tf_inter_op_threads"] = (threading.get_inter_op_parallelism_threads()
                                       or int(os.environ.get("TF_NUM_INTEROP_THREADS", 0)))
    return info


def cases(items, desc: str):
    """Iterate over benchmark cases under a progress bar, left on screen when done."""
    return progress(list(items), desc, unit="case", leave=True)


def best_time(fn, repeats: int, warmup: int = 1) -> float:
    """Best wall time of `repeats` calls after `warmup` calls: the least disturbed by other load."""
    for _ in range(warmup):
        fn()
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - start)
    return best


def peak_rss_bytes() -> int:
    """High-water mark of this process's resident memory (Linux reports KiB)."""
    scale = 1 if sys.platform == "darwin" else 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * scale


def write_results(name: str, payload: dict) -> Path:
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    path = RESULTS_DIR / f"{name}.json"
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(payload, indent=2) + "\n")
    os.replace(tmp, path)
    return path
