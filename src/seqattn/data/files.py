"""Finding a data file: a path the user gives, the shared data folder, the cache, or a download.

One setting decides where data is read from: the environment variable SEQATTN_DATA_DIR (the
Makefile and CI point it at ../shared/data when that folder exists). Downloads go to
SEQATTN_CACHE_DIR (default ~/.cache/seqattn) and are checked against a SHA-256 before use.
"""

import hashlib
import os
import shutil
import tempfile
import urllib.error
import urllib.request
from pathlib import Path

from seqattn.errors import DataError

DATA_DIR_ENV = "SEQATTN_DATA_DIR"
CACHE_DIR_ENV = "SEQATTN_CACHE_DIR"
DOWNLOAD_TIMEOUT_S = 30


class DataUnavailable(DataError):
    """No local copy and the download failed: callers may fall back to embedded data."""


def data_dir() -> Path | None:
    value = os.environ.get(DATA_DIR_ENV)
    return Path(value) if value else None


def cache_dir() -> Path:
    value = os.environ.get(CACHE_DIR_ENV)
    return Path(value) if value else Path.home() / ".cache" / "seqattn"


def sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def fetch(relative_name: str, url: str | None = None, expected_sha256: str | None = None) -> Path:
    """Return a local path for `relative_name` (e.g. 'mnist/t10k-images-idx3-ubyte.gz').

    Looks in SEQATTN_DATA_DIR, then in the cache; otherwise downloads `url` into the cache,
    verifying `expected_sha256`. Raises DataUnavailable when there is no copy and no download.
    """
    base = data_dir()
    if base is not None and (base / relative_name).is_file():
        return base / relative_name
    cached = cache_dir() / relative_name
    if cached.is_file() and (expected_sha256 is None or sha256(cached) == expected_sha256):
        return cached
    if url is None:
        raise DataUnavailable(f"{relative_name} not found in {DATA_DIR_ENV} or {cached.parent}")
    return _download(url, cached, expected_sha256)


def _download(url: str, target: Path, expected_sha256: str | None) -> Path:
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", dir=target.parent)
    try:
        with os.fdopen(fd, "wb") as out, urllib.request.urlopen(url, timeout=DOWNLOAD_TIMEOUT_S) as resp:
            shutil.copyfileobj(resp, out)
        if expected_sha256 is not None and (actual := sha256(Path(tmp))) != expected_sha256:
            raise DataError(f"download of {url} has sha256 {actual}, expected {expected_sha256}")
        os.replace(tmp, target)
        return target
    except (urllib.error.URLError, OSError, TimeoutError) as err:
        raise DataUnavailable(
            f"could not download {url} ({err}); put a copy in {target} "
            f"or point {DATA_DIR_ENV} at a folder holding {target.name}"
        ) from None
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)
