"""Writing results so that an interrupted run never leaves a half-written file behind, and
locks that keep two processes out of the same files."""

import fcntl
import functools
import json
import math
import os
import platform
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from seqattn.errors import ConfigError


def _new_file_mode() -> int:
    umask = os.umask(0)  # the only way to read the umask is to set it
    os.umask(umask)
    return 0o666 & ~umask


@contextmanager
def atomic_path(path: str | os.PathLike, suffix: str = ".tmp"):
    """Yield a temporary path beside `path`; rename it onto `path` only if the block succeeds.
    `suffix` ends the temporary name, for writers that check it (Keras: ".keras", ".weights.h5")."""
    path = Path(path)
    ensure_writable_dir(path.parent)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=suffix, dir=path.parent)
    os.close(fd)
    try:
        yield Path(tmp)
        # mkstemp makes the file private (0600); give the result the mode open() would.
        os.chmod(tmp, _new_file_mode())
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


_PID_WAIT_S = 2.0


class LockHeld(Exception):
    """`exclusive_lock(path, wait=False)`: another process holds `path`; `pid` is the holder's
    (None if it had not written it yet)."""

    def __init__(self, path: Path, pid: int | None):
        super().__init__(f"{path} is held by process {pid}")
        self.path, self.pid = path, pid


def _holds(handle, path: Path) -> bool:
    """Whether the locked `handle` is still the file at `path` (not one removed meanwhile)."""
    try:
        return os.stat(path).st_ino == os.fstat(handle.fileno()).st_ino
    except FileNotFoundError:
        return False


def _written_pid(handle) -> int | None:
    handle.seek(0)
    text = handle.read().strip()
    return int(text) if text.isdigit() else None


@contextmanager
def exclusive_lock(path: str | os.PathLike, *, wait: bool = True) -> Iterator[None]:
    """Hold an exclusive lock on the file `path` for the block; the file names the holder's pid.

    An OS lock (flock(2)): it ends with the process that holds it however that ends, kill -9
    included, so a lock file left behind never blocks anyone. The file is removed on release; a
    process that opened it just before finds, once it holds the lock, that `path` is no longer
    its file, and starts over, so two processes never both hold `path`. With wait=False, another
    holder raises `LockHeld` at once, or as soon as the holder has written its pid (it writes it
    right after locking; after _PID_WAIT_S the error has pid None).
    """
    path = Path(path)
    deadline = time.monotonic() + _PID_WAIT_S
    while True:
        handle = open(path, "a+")  # a+: create if missing, never truncate another holder's pid
        try:
            fcntl.flock(handle, fcntl.LOCK_EX if wait else fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            pid = _written_pid(handle)
            handle.close()
            if pid is not None or time.monotonic() > deadline:
                raise LockHeld(path, pid) from None
            time.sleep(0.05)
            continue
        except BaseException:
            handle.close()
            raise
        if _holds(handle, path):
            break
        handle.close()
    try:
        handle.truncate(0)
        handle.write(f"{os.getpid()}\n")
        handle.flush()
        yield
    finally:
        path.unlink(missing_ok=True)  # while still locked: a waiting process then starts over
        handle.close()


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
