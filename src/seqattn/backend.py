"""Choosing the Keras backend.

Keras reads KERAS_BACKEND once, when it is first imported, so the choice must be made before any
module that imports keras. The command line calls `select_backend` before importing experiments.
"""

import os
import sys

from seqattn.errors import ConfigError

BACKENDS = ("torch", "tensorflow", "jax")
DEFAULT_BACKEND = "torch"


def select_backend(name: str | None = None) -> str:
    """Set KERAS_BACKEND to `name` (or the environment's, or torch) and return it."""
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
    if name != "tensorflow":
        # keras.utils.set_random_seed imports TensorFlow whenever it is installed, only to seed it,
        # and its oneDNN notice then lands above a user's one-line error; TF computes nothing here.
        os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "0")
    return name


def limit_torch_threads() -> None:
    """One intra-op thread for torch unless OMP_NUM_THREADS says otherwise.

    The study's models are small and step through time: on 2 CPU cores shared with other jobs,
    Part 2's quick profile took 342 s wall (338 s CPU) with torch's default two threads and 39 s
    with one, and a TAP training step 4.6 s against 0.86 s; the threads wait on each other over
    tiny matrix products. Set OMP_NUM_THREADS to choose otherwise (e.g. on a large machine).
    """
    if os.environ.get("KERAS_BACKEND") == "torch" and not os.environ.get("OMP_NUM_THREADS"):
        import torch

        torch.set_num_threads(1)
