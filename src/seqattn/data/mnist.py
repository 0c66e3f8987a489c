"""MNIST digits for Moving MNIST: IDX files, a Keras `mnist.npz`, a download, or an offline stand-in.

Where the digits come from, in order:
1. `path` when given: a folder holding the IDX `.gz` files (`t10k-images-idx3-ubyte.gz`,
   `t10k-labels-idx1-ubyte.gz`, and the `train-*` pair when present) or a `mnist.npz`, or one such
   file. A missing or corrupt explicit path is an error, never a silent fallback.
2. No path: the IDX files through `seqattn.data.files.fetch` (SEQATTN_DATA_DIR, then the cache).
3. The public Keras `mnist.npz`, downloaded into the cache and checked against its SHA-256.
4. Offline: scikit-learn's bundled 8x8 digits upscaled to 28x28, with a loud warning and
   `source="sklearn-digits-fallback"` so that runs can record it.
A corrupt file found in steps 2-3 is an error too: the fallback is for "no data", not "bad data".

IDX format: Y. LeCun, C. Cortes, C. Burges, "The MNIST database of handwritten digits"
(a big-endian magic number 2051 for images / 2049 for labels, the dimensions, then raw uint8).
"""

import gzip
import logging
import math
import warnings
import zipfile
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from seqattn.data import files
from seqattn.errors import ConfigError, DataError

logger = logging.getLogger(__name__)

SOURCES = ("idx", "npz", "keras-download", "sklearn-digits-fallback")
KERAS_MNIST_URL = "https://storage.googleapis.com/tensorflow/tf-keras-datasets/mnist.npz"
KERAS_MNIST_SHA256 = "731c5ac602752760c8e48fbffcf8c3b850d9dc2a2aedcf2cc48468fc17b673d1"
IMAGES_MAGIC, LABELS_MAGIC = 2051, 2049
SPLITS = ("train", "t10k")  # file order: training digits first, as in keras' (x_train, x_test)
DIGIT_SIZE = 28


@dataclass(frozen=True)
class MnistDigits:
    """Digits in file order (training images first when both sets are present)."""

    images: np.ndarray  # (N, 28, 28) uint8
    labels: np.ndarray  # (N,) int64
    source: str  # one of SOURCES

    def __len__(self) -> int:
        return len(self.images)


def _idx_names(split: str) -> tuple[str, str]:
    return f"{split}-images-idx3-ubyte.gz", f"{split}-labels-idx1-ubyte.gz"


def _read_bytes(path: Path) -> bytes:
    """The file's bytes, gunzipped when it starts with the gzip magic."""
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise DataError(f"MNIST file {str(path)!r} does not exist") from None
    except OSError as err:
        raise DataError(f"MNIST file {str(path)!r} cannot be read: {err.strerror}") from None
    if raw[:2] != b"\x1f\x8b":
        return raw
    try:
        return gzip.decompress(raw)
    except (OSError, EOFError, zlib.error) as err:  # zlib.error: a corrupt deflate stream
        raise DataError(f"MNIST file {str(path)!r} is not a complete gzip file ({err})") from None


def read_idx(path: str | Path, magic: int) -> np.ndarray:
    """Parse one IDX file of unsigned bytes: magic 2051 -> (N, rows, cols), 2049 -> (N,)."""
    path = Path(path)
    data = _read_bytes(path)
    n_dims = {IMAGES_MAGIC: 3, LABELS_MAGIC: 1}[magic]
    header = 4 + 4 * n_dims
    kind = "images" if magic == IMAGES_MAGIC else "labels"
    found = int.from_bytes(data[:4], "big") if len(data) >= 4 else None
    if found != magic:
        raise DataError(f"MNIST file {str(path)!r} has IDX magic number {found}, expected {magic} ({kind})")
    if len(data) < header:
        raise DataError(
            f"MNIST file {str(path)!r} has {len(data)} bytes, too short for an IDX {kind} header "
            f"({header} bytes)"
        )
    dims = tuple(int.from_bytes(data[4 + 4 * i : 8 + 4 * i], "big") for i in range(n_dims))
    expected = header + math.prod(dims)  # exact: np.prod wraps at 2**64 and let (2**22, 2**21, 2**21) pass
    if len(data) != expected:
        raise DataError(
            f"MNIST file {str(path)!r} has {len(data)} bytes, expected {expected} for {kind} of shape "
            f"{dims} (truncated or corrupt)"
        )
    return np.frombuffer(data, dtype=np.uint8, offset=header).reshape(dims)


def _checked(images: np.ndarray, labels: np.ndarray, where: str, source: str) -> MnistDigits:
    if images.ndim != 3 or images.shape[1:] != (DIGIT_SIZE, DIGIT_SIZE) or images.dtype != np.uint8:
        raise DataError(
            f"MNIST images in {where} have shape {images.shape} and dtype {images.dtype}, "
            f"expected (N, {DIGIT_SIZE}, {DIGIT_SIZE}) uint8"
        )
    if labels.ndim != 1 or len(labels) != len(images) or not np.issubdtype(labels.dtype, np.integer):
        raise DataError(
            f"MNIST labels in {where} have shape {labels.shape} and dtype {labels.dtype}, "
            f"expected ({len(images)},) integers, one per image"
        )
    return MnistDigits(np.ascontiguousarray(images), labels.astype(np.int64), source)


def _load_idx_pairs(pairs: list[tuple[Path, Path]], source: str = "idx") -> MnistDigits:
    images, labels = [], []
    for image_path, label_path in pairs:
        split_images = read_idx(image_path, IMAGES_MAGIC)
        split_labels = read_idx(label_path, LABELS_MAGIC)
        if len(split_labels) != len(split_images):
            raise DataError(
                f"MNIST labels {str(label_path)!r} hold {len(split_labels)} labels, expected "
                f"{len(split_images)}, one per image of {str(image_path)!r}"
            )
        images.append(split_images)
        labels.append(split_labels)
    where = ", ".join(str(p) for pair in pairs for p in pair)
    return _checked(np.concatenate(images), np.concatenate(labels), where, source)


def load_npz(path: str | Path, source: str = "npz") -> MnistDigits:
    """A Keras-layout `mnist.npz` (x_train, y_train, x_test, y_test), read without pickle."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"MNIST file {str(path)!r} does not exist")
    try:
        with np.load(path, allow_pickle=False) as npz:
            missing = {"x_test", "y_test"} - set(npz.files)
            if missing:
                raise DataError(
                    f"MNIST file {str(path)!r} holds arrays {sorted(npz.files)}, expected the Keras "
                    f"layout x_train, y_train, x_test, y_test"
                )
            has_train = {"x_train", "y_train"} <= set(npz.files)
            splits = (("x_train", "y_train"),) * has_train + (("x_test", "y_test"),)
            images = np.concatenate([npz[x] for x, _ in splits])
            labels = np.concatenate([npz[y] for _, y in splits])
    except (ValueError, OSError, EOFError, zipfile.BadZipFile) as err:
        if isinstance(err, DataError):
            raise
        raise DataError(f"MNIST file {str(path)!r} is not a readable .npz of plain arrays ({err})") from None
    return _checked(images, labels, str(path), source)


def _load_path(path: Path) -> MnistDigits:
    if path.is_dir():
        pairs = [
            (path / images, path / labels)
            for images, labels in map(_idx_names, SPLITS)
            if (path / images).exists() or (path / labels).exists()
        ]
        if pairs:
            return _load_idx_pairs(pairs)
        if (path / "mnist.npz").is_file():
            return load_npz(path / "mnist.npz")
        raise DataError(
            f"MNIST folder {str(path)!r} holds neither the IDX files {' / '.join(_idx_names('t10k'))} "
            f"(or train-*) nor mnist.npz"
        )
    if path.suffix == ".npz":
        return load_npz(path)
    if "images-idx3" in path.name:
        return _load_idx_pairs([(path, path.with_name(path.name.replace("images-idx3", "labels-idx1")))])
    if not path.exists():
        raise DataError(f"MNIST path {str(path)!r} does not exist")
    raise DataError(
        f"MNIST path {str(path)!r} is neither a folder, a *-images-idx3-ubyte[.gz] file nor a .npz"
    )


def _fetch_local_idx() -> MnistDigits:
    """The IDX files from SEQATTN_DATA_DIR or the cache (never downloaded: no official URL is stable)."""
    pairs = []
    for split in SPLITS:
        try:
            pairs.append(tuple(files.fetch(f"mnist/{name}") for name in _idx_names(split)))
        except files.DataUnavailable:
            continue
    if not pairs:
        raise files.DataUnavailable("no MNIST IDX files in the data folder or the cache")
    return _load_idx_pairs(pairs)


def _fetch_keras_npz() -> MnistDigits:
    path = files.fetch("mnist/mnist.npz", KERAS_MNIST_URL, KERAS_MNIST_SHA256)
    in_cache = path.resolve().is_relative_to(files.cache_dir().resolve())
    return load_npz(path, source="keras-download" if in_cache else "npz")


def sklearn_digits() -> MnistDigits:
    """scikit-learn's 1,797 bundled 8x8 digits, upscaled to MNIST's 20x20 box in a 28x28 frame."""
    from scipy.ndimage import zoom
    from sklearn.datasets import load_digits

    bunch = load_digits()
    small = bunch.images / 16.0  # (N, 8, 8) in [0, 1]
    box = zoom(small, (1, 20 / 8, 20 / 8), order=1)  # (N, 20, 20), like MNIST's size-normalised digits
    images = np.zeros((len(small), DIGIT_SIZE, DIGIT_SIZE), np.uint8)
    images[:, 4:24, 4:24] = np.clip(np.rint(box * 255), 0, 255).astype(np.uint8)
    return MnistDigits(images, bunch.target.astype(np.int64), "sklearn-digits-fallback")


def load_mnist(path: str | None = None) -> MnistDigits:
    """Load MNIST digits from `path`, the data folder or cache, a download, or the offline fallback.

    Raises DataError naming the file and what was expected when a file is missing or corrupt.
    """
    if path is not None:
        return _load_path(Path(path))
    try:
        return _fetch_local_idx()
    except files.DataUnavailable:
        pass
    try:
        return _fetch_keras_npz()
    except files.DataUnavailable as err:
        reason = str(err)
    message = (
        "MNIST is unavailable offline, so Moving MNIST uses scikit-learn's 8x8 digits upscaled to "
        f"28x28 (source='sklearn-digits-fallback'); numbers are NOT comparable to MNIST results. "
        f"Reason: {reason}"
    )
    warnings.warn(message, stacklevel=2)
    logger.warning(message)
    return sklearn_digits()


def split_pools(digits: MnistDigits | np.ndarray, test_fraction: float = 0.2) -> tuple[np.ndarray, np.ndarray]:
    """Disjoint digit pools (train_pool, test_pool), each (P, 28, 28) uint8.

    The split is contiguous in file order: the last round(N * test_fraction) digits form the test
    pool (for the 10,000 test digits: the first 8,000 train, the last 2,000 test).
    """
    images = digits.images if isinstance(digits, MnistDigits) else np.asarray(digits)
    if not 0 < test_fraction < 1:
        raise ConfigError(f"test_fraction must lie strictly between 0 and 1, got {test_fraction}")
    n_test = int(round(len(images) * test_fraction))
    if n_test < 1 or n_test >= len(images):
        raise ConfigError(
            f"test_fraction={test_fraction} of {len(images)} digits leaves an empty pool "
            f"({len(images) - n_test} train, {n_test} test)"
        )
    return images[:-n_test], images[-n_test:]
