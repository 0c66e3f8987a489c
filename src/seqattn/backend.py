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
    return name
