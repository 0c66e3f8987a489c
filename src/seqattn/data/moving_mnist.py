"""Moving MNIST: bouncing digits on a canvas, generated in vectorised numpy.

The recipe of N. Srivastava, E. Mansimov, R. Salakhutdinov, "Unsupervised Learning of Video
Representations using LSTMs" (ICML 2015): 28x28 digits on a 64x64 canvas, each with a random start
and a random direction, moving 0.1 of the free range (64 - 28 = 36 px, so 3.6 px) per frame,
reflected at the edges, and overlapping by pixel-wise max.

Also: the cached fixed test set, reading sequence files a user brings (the official
`mnist_test_seq.npy` is (20, 10000, 64, 64) = time, sequence, height, width), and a Keras
`PyDataset` that draws fresh training sequences every epoch, deterministically from (seed, epoch).
"""

import os

import keras
import numpy as np

DIGIT_SPEED_FRACTION = 0.1  # of the free range per frame, as in Srivastava et al.
LAYOUTS = ("tnhw", "nthw")


def generate(
    digits: np.ndarray,
    n_sequences: int,
    length: int = 20,
    n_digits: int = 2,
    canvas: int = 64,
    speed: float | None = None,
    seed: int = 0,
) -> np.ndarray:
    """Generate `n_sequences` Moving MNIST sequences: (N, T, canvas, canvas) uint8.

    digits: (P, h, w) uint8 pool to draw from. speed: pixels per frame; None means 0.1 of the free
    range (canvas - h), 3.6 px for 28x28 digits on 64x64. Deterministic for a seed.
    Raises ConfigError for digits larger than the canvas or non-positive counts and lengths.
    """
    raise NotImplementedError


def fixed_test_set(
    test_pool: np.ndarray,
    n_sequences: int,
    length: int = 20,
    n_digits: int = 2,
    seed: int = 0,
    cache_dir: str | os.PathLike | None = None,
    *,
    canvas: int = 64,
    speed: float | None = None,
) -> np.ndarray:
    """The fixed test set (N, T, canvas, canvas) uint8, cached as `.npy` keyed by every parameter.

    The cache lives in `cache_dir` (default `seqattn.data.files.cache_dir() / "moving_mnist"`); a
    cached file that cannot be read or has the wrong shape or dtype is regenerated with a warning.
    """
    raise NotImplementedError


def load_sequences(
    path: str | os.PathLike,
    layout: str | None = None,
    *,
    min_length: int | None = None,
    frame_size: tuple[int, int] | None = None,
) -> np.ndarray:
    """Read a sequence file a user brings: (N, T, H, W) float32 in [0, 1].

    layout: "tnhw" (the official `mnist_test_seq.npy`) or "nthw"; None detects it where the shape
    is unambiguous, else ConfigError asking for --layout. Values: uint8 0-255 or float in [0, 1].
    min_length / frame_size: when given, a shorter file or another frame size is a DataError.
    """
    raise NotImplementedError


class SequenceBatches(keras.utils.PyDataset):
    """Fresh Moving MNIST training batches every epoch: float32 (B, T, canvas, canvas, 1) in [0, 1].

    Batch i of epoch e is generated from (seed, e, i) alone, so an interrupted run that resumes at
    epoch e sees exactly the batches it would have seen. Keep `epoch` in step with the trainer by
    adding `batches.epoch_callback()` to `model.fit`'s callbacks (it matters after a resume).
    context=None yields (x, x); context=k yields (x[:, :k], x[:, k:]).
    """

    def __init__(
        self,
        pool: np.ndarray,
        batch_size: int,
        steps_per_epoch: int,
        length: int = 20,
        n_digits: int = 2,
        canvas: int = 64,
        speed: float | None = None,
        seed: int = 0,
        context: int | None = None,
        **kwargs,
    ):
        super().__init__(**kwargs)
        raise NotImplementedError

    def epoch_callback(self) -> keras.callbacks.Callback:
        """A callback that sets `self.epoch` to the trainer's epoch at the start of every epoch."""
        raise NotImplementedError
