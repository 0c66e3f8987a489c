"""Choosing the Keras backend.

Keras reads KERAS_BACKEND once, when it is first imported, so the choice must be made before any
module that imports keras. The command line calls `select_backend` before importing experiments.
"""

import importlib.util
import os
import sys
import tempfile

from seqattn.errors import ConfigError

BACKENDS = ("torch", "tensorflow", "jax")
# The fastest backend on the study's training steps (Parts 1-3, geometric mean), measured by
# `benchmarks/bench_backends.py` ("Backends" in benchmarks/RESULTS.md).
DEFAULT_BACKEND = "tensorflow"


def select_backend(name: str | None = None) -> str:
    """Set KERAS_BACKEND to `name` (or the environment's, or DEFAULT_BACKEND) and return it.

    On tensorflow this also sets its thread policy (`limit_tensorflow_threads`), which TensorFlow
    reads only when it starts. Nothing is imported: `import_quietly` loads the backend when a
    command is about to use keras (`seqattn ui` never does).
    """
    name = name or os.environ.get("KERAS_BACKEND") or DEFAULT_BACKEND
    if name not in BACKENDS:
        raise ConfigError(f"unknown backend {name!r}; choose one of {', '.join(BACKENDS)}")
    if "keras" in sys.modules:
        import keras

        if keras.backend.backend() != name:
            raise ConfigError(
                f"keras is already imported with backend {keras.backend.backend()!r}; "
                f"cannot switch to {name!r} in the same process"
            )
    os.environ["KERAS_BACKEND"] = name
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # TensorFlow's C++ start-up chatter
    if name == "tensorflow":
        limit_tensorflow_threads()
    else:
        # keras.utils.set_random_seed imports TensorFlow whenever it is installed, only to seed it,
        # and its oneDNN notice then lands above a user's one-line error; TF computes nothing here.
        os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "0")
    return name


# What TensorFlow's C++ prints when it loads, before its logging starts, so TF_CPP_MIN_LOG_LEVEL
# cannot hold it back (and TF_ENABLE_ONEDNN_OPTS=0 would silence the oneDNN notice only by turning
# oneDNN off).
_TENSORFLOW_LOAD_NOTICES = ("All log messages before absl::InitializeLog() is called",
                            "oneDNN custom operations are on")


def import_quietly() -> None:
    """On tensorflow, import it with its load notices filtered out of stderr; anything else it
    prints stays.

    Otherwise four lines of them would come before a one-line user error (keras imports TensorFlow
    when the command line loads a part). Call it after `select_backend`, before importing keras.
    """
    if os.environ.get("KERAS_BACKEND") != "tensorflow" or "tensorflow" in sys.modules or importlib.util.find_spec("tensorflow") is None:
        return
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile() as captured:
        os.dup2(captured.fileno(), 2)
        try:
            import tensorflow  # noqa: F401
        finally:
            os.dup2(saved, 2)
            os.close(saved)
            captured.seek(0)
            lines = captured.read().decode(errors="replace").splitlines(keepends=True)
            sys.stderr.write("".join(line for line in lines if not any(n in line for n in _TENSORFLOW_LOAD_NOTICES)))


def limit_torch_threads() -> None:
    """One intra-op thread for torch unless OMP_NUM_THREADS says otherwise.

    The study's models are small and step through time, so torch's threads mostly wait on each
    other over tiny matrix products: most training steps ran faster on one thread than on two
    ("Backends" in benchmarks/RESULTS.md). Set OMP_NUM_THREADS to choose otherwise.
    """
    if os.environ.get("KERAS_BACKEND") == "torch" and not os.environ.get("OMP_NUM_THREADS"):
        import torch

        torch.set_num_threads(1)


def limit_tensorflow_threads() -> None:
    """Pass OMP_NUM_THREADS on to tensorflow's intra- and inter-op thread counts when it is set.

    Unset, tensorflow keeps its own default (one thread per core): unlike torch, the study's
    training steps ran fastest that way on 2 cores ("Backends" in benchmarks/RESULTS.md). Parallel
    lanes, such as `make paper-results-video`, set one thread each. Environment variables, because
    TensorFlow reads them when it starts, and keras may start it on import.
    """
    threads = os.environ.get("OMP_NUM_THREADS")
    if threads:
        os.environ.setdefault("TF_NUM_INTRAOP_THREADS", threads)
        os.environ.setdefault("TF_NUM_INTEROP_THREADS", threads)
