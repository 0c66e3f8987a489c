"""Writing results so that an interrupted run never leaves a half-written file behind."""

import functools
import json
import math
import os
import platform
import subprocess
import tempfile
from contextlib import contextmanager
from pathlib import Path

from seqattn.errors import ConfigError


def _new_file_mode() -> int:
    umask = os.umask(0)  # the only way to read the umask is to set it
    os.umask(umask)
    return 0o666 & ~umask


@contextmanager
def atomic_path(path: str | os.PathLike):
    """Yield a temporary path beside `path`; rename it onto `path` only if the block succeeds."""
    path = Path(path)
    ensure_writable_dir(path.parent)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        yield Path(tmp)
        # mkstemp makes the file private (0600); give the result the mode open() would.
        os.chmod(tmp, _new_file_mode())
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


def _json_safe(value):
    """Replace non-finite floats by None: JSON has no NaN, and a reader must see the gap."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {str(k): _json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_safe(v) for v in value]
    if hasattr(value, "item") and getattr(value, "ndim", 1) == 0:  # numpy scalar
        return _json_safe(value.item())
    if hasattr(value, "tolist"):  # numpy array
        return _json_safe(value.tolist())
    return value


def write_json_atomic(path: str | os.PathLike, obj) -> Path:
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(_json_safe(obj), indent=2, sort_keys=True) + "\n")
    return Path(path)


def ensure_writable_dir(path: str | os.PathLike) -> Path:
    """Create `path` if needed; raise ConfigError naming it if it cannot be written."""
    path = Path(path)
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise ConfigError(f"output folder {str(path)!r} cannot be created: {err.strerror}") from None
    if not os.access(path, os.W_OK | os.X_OK):
        raise ConfigError(f"output folder {str(path)!r} is not writable")
    return path


@functools.cache
def source_state() -> dict:
    """The git commit of the source tree and whether tracked files differ from it.

    Read once per process, at the first call, which `cli.run_part` makes before any work: a long
    run then records the code it loaded, not whatever HEAD is when it finishes.
    """
    def git(*args):
        try:
            out = subprocess.run(["git", *args], cwd=Path(__file__).resolve().parent,
                                 capture_output=True, text=True, timeout=5)
        except (OSError, subprocess.TimeoutExpired):
            return None
        return out.stdout.strip() if out.returncode == 0 else None

    commit = git("rev-parse", "HEAD") or None
    changes = git("status", "--porcelain", "--untracked-files=no") if commit else None
    return {"git_commit": commit, "git_dirty": None if changes is None else bool(changes)}


def environment_info() -> dict:
    """Versions that decide the numbers: recorded with every run."""
    import keras
    import numpy

    info = {
        "python": platform.python_version(),
        "platform": platform.platform(),
        "keras": keras.__version__,
        "numpy": numpy.__version__,
        "backend": keras.backend.backend(),
        **source_state(),
    }
    backend_module = {"torch": "torch", "tensorflow": "tensorflow", "jax": "jax"}[info["backend"]]
    info[backend_module] = __import__(backend_module).__version__
    return info
