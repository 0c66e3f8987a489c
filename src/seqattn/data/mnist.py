"""MNIST digits for Moving MNIST: IDX files, a Keras `mnist.npz`, a download, or an offline stand-in.

Where the digits come from, in order:
1. `path` when given: a folder holding the IDX `.gz` files (`t10k-images-idx3-ubyte.gz`,
   `t10k-labels-idx1-ubyte.gz`, and the `train-*` pair when present) or a `mnist.npz`, or one such
   file. A missing or corrupt explicit path is an error, never a silent fallback.
2. No path: the IDX files through `seqattn.data.files.fetch` (SEQATTN_DATA_DIR, then the cache).
3. The public Keras `mnist.npz`, downloaded into the cache and checked against its SHA-256.
4. Offline: scikit-learn's bundled 8x8 digits upscaled to 28x28, with a loud warning and
   `source="sklearn-digits-fallback"` so that runs can record it.

IDX format: Y. LeCun, C. Cortes, C. Burges, "The MNIST database of handwritten digits"
(a big-endian magic number 2051 for images / 2049 for labels, the dimensions, then raw uint8).
"""

from dataclasses import dataclass

import numpy as np

SOURCES = ("idx", "npz", "keras-download", "sklearn-digits-fallback")


@dataclass(frozen=True)
class MnistDigits:
    """Digits in file order (training images first when both sets are present)."""

    images: np.ndarray  # (N, 28, 28) uint8
    labels: np.ndarray  # (N,) int64
    source: str  # one of SOURCES

    def __len__(self) -> int:
        return len(self.images)


def load_mnist(path: str | None = None) -> MnistDigits:
    """Load MNIST digits from `path`, the data folder or cache, a download, or the offline fallback.

    Raises DataError naming the file and what was expected when a file is missing or corrupt.
    """
    raise NotImplementedError


def split_pools(digits: MnistDigits | np.ndarray, test_fraction: float = 0.2) -> tuple[np.ndarray, np.ndarray]:
    """Disjoint digit pools (train_pool, test_pool), each (P, 28, 28) uint8.

    The split is contiguous in file order: the last round(N * test_fraction) digits form the test
    pool (for the 10,000 test digits: the first 8,000 train, the last 2,000 test).
    """
    raise NotImplementedError
