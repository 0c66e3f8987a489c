"""Moving MNIST: bouncing digits on a canvas, generated in vectorised numpy.

The recipe of N. Srivastava, E. Mansimov, R. Salakhutdinov, "Unsupervised Learning of Video
Representations using LSTMs" (ICML 2015): 28x28 digits on a 64x64 canvas, each with a random start
and a random direction, moving 0.1 of the free range (64 - 28 = 36 px, so 3.6 px) per frame,
reflected at the edges, and overlapping by pixel-wise max. One difference from their script: it
clamps a digit that overshoots an edge to the edge before reversing it; here the overshoot is
mirrored back (an elastic bounce), which gives every frame in closed form, p(t) = fold(p0 + v t),
so a whole batch is computed without a loop over frames. Positions are floored to whole pixels.

Also: the cached fixed test set, reading sequence files a user brings (the official
`mnist_test_seq.npy` is (20, 10000, 64, 64) = time, sequence, height, width), and a Keras
`PyDataset` that draws fresh training sequences every epoch, deterministically from (seed, epoch).
"""

import hashlib
import json
import os
import warnings
import zipfile
from dataclasses import dataclass
from pathlib import Path

import keras
import numpy as np
from numpy.lib.stride_tricks import as_strided

from seqattn.data import files
from seqattn.data.batches import EpochSync
from seqattn.errors import ConfigError, DataError
from seqattn.io import atomic_path

DIGIT_SPEED_FRACTION = 0.1  # of the free range per frame, as in Srivastava et al.
LAYOUTS = ("tnhw", "nthw")
# The official test file's leading axes; any other shape is ambiguous (is (100, 100, 64, 64) a
# hundred 100-frame sequences in either order?), so it needs an explicit layout.
OFFICIAL_TNHW = (20, 10000)
_CHUNK = 512  # sequences rendered at once: bounds the temporary index arrays


def _positive_int(name: str, value) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise ConfigError(f"{name} must be a positive integer, got {value!r}")
    return int(value)


def _digit_pool(digits) -> np.ndarray:
    digits = getattr(digits, "images", digits)  # accept MnistDigits too
    digits = np.asarray(digits)
    if digits.ndim != 3 or len(digits) == 0 or digits.dtype != np.uint8:
        raise ConfigError(
            f"digits must be a non-empty (P, h, w) uint8 array, got shape {digits.shape} dtype {digits.dtype}"
        )
    return digits


@dataclass(frozen=True)
class Layout:
    """What decides N sequences besides the digit images: which digit of the pool each of the D
    digits is (N, D), its top-left start in units of the free range (N, D, 2) and its direction
    of motion in radians (N, D). With the speed, every frame follows in closed form."""

    chosen: np.ndarray
    start: np.ndarray
    theta: np.ndarray


def sample_layout(rng: np.random.Generator, n: int, n_digits: int, pool_size: int) -> Layout:
    """Digits, starts and directions, drawn from `rng` in the order `generate` draws them."""
    chosen = rng.integers(0, pool_size, (n, n_digits))
    start = rng.random((n, n_digits, 2))
    theta = rng.random((n, n_digits)) * 2 * np.pi
    return Layout(chosen, start, theta)


def trajectories(start: np.ndarray, theta: np.ndarray, length: int, free: int, speed: float) -> np.ndarray:
    """Top-left corners of every digit in frames 1..length: (N, T, D, 2) int, within [0, free]."""
    velocity = np.stack([np.sin(theta), np.cos(theta)], axis=-1) * (speed / max(free, 1))  # (N, D, 2)
    steps = np.arange(1, length + 1, dtype=np.float64)[None, :, None, None]  # (1, T, 1, 1)
    unfolded = start[:, None] + steps * velocity[:, None]  # (N, T, D, 2)
    folded = np.abs(np.mod(unfolded + 1.0, 2.0) - 1.0)  # triangle wave: mirror at 0 and 1
    # the epsilon keeps a position that is a whole pixel up to rounding (0.85 + 3 * 0.1) on that pixel
    return np.floor(folded * free + 1e-9).astype(np.intp)  # (N, T, D, 2)


def _render(frames: np.ndarray, pool: np.ndarray, chosen: np.ndarray, corners: np.ndarray) -> None:
    """Paste the chosen digits at their corners into `frames` (N, T, C, C), by pixel-wise max."""
    n, t, c, _ = frames.shape
    h, w = pool.shape[1:]
    s0, s1, s2, s3 = frames.strides
    # A writable view of every h x w window of every frame: (N, T, C-h+1, C-w+1, h, w).
    windows = as_strided(frames, (n, t, c - h + 1, c - w + 1, h, w), (s0, s1, s2, s3, s2, s3))
    seq = np.arange(n)[:, None]  # (N, 1)
    step = np.arange(t)[None, :]  # (1, T)
    for d in range(chosen.shape[1]):
        # One digit per frame in this pass, so no two writes hit the same pixel.
        y, x = corners[:, :, d, 0], corners[:, :, d, 1]  # (N, T)
        digit = pool[chosen[:, d]][:, None]  # (N, 1, h, w)
        windows[seq, step, y, x] = np.maximum(windows[seq, step, y, x], digit)


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
    pool = _digit_pool(digits)
    n_sequences = _positive_int("n_sequences", n_sequences)
    length = _positive_int("length", length)
    n_digits = _positive_int("n_digits", n_digits)
    canvas = _positive_int("canvas", canvas)
    if max(pool.shape[1:]) > canvas:
        raise ConfigError(f"digits of size {pool.shape[1:]} do not fit on a canvas of {canvas}x{canvas}")
    if pool.shape[1] != pool.shape[2]:
        raise ConfigError(f"digits must be square, got {pool.shape[1:]}")
    free = canvas - pool.shape[1]
    speed = DIGIT_SPEED_FRACTION * free if speed is None else float(speed)
    if not np.isfinite(speed) or speed < 0:
        raise ConfigError(f"speed must be a non-negative number of pixels per frame, got {speed}")

    layout = layout_of(n_sequences, n_digits, len(pool), seed)
    return render(pool, layout, length, canvas, speed)


def layout_of(n_sequences: int, n_digits: int, pool_size: int, seed: int) -> Layout:
    """The layout `generate` (and so `fixed_test_set`) renders for these arguments and seed."""
    return sample_layout(np.random.default_rng(seed), n_sequences, n_digits, pool_size)


def render(pool: np.ndarray, layout: Layout, length: int, canvas: int = 64, speed: float | None = None) -> np.ndarray:
    """The (N, T, canvas, canvas) uint8 frames of a layout's sequences (speed as in `generate`)."""
    free = canvas - pool.shape[1]
    speed = DIGIT_SPEED_FRACTION * free if speed is None else float(speed)
    corners = trajectories(layout.start, layout.theta, length, free, speed)  # (N, T, D, 2)
    frames = np.zeros((len(layout.chosen), length, canvas, canvas), np.uint8)
    for lo in range(0, len(frames), _CHUNK):
        hi = lo + _CHUNK
        _render(frames[lo:hi], pool, layout.chosen[lo:hi], corners[lo:hi])
    return frames


def pool_hash(pool: np.ndarray) -> str:
    """16 hex digits naming a digit pool (or any array) by its contents."""
    digest = hashlib.sha256(repr(pool.shape).encode())
    digest.update(np.ascontiguousarray(pool).tobytes())
    return digest.hexdigest()[:16]


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

    The cache lives in `cache_dir` (default `seqattn.data.files.cache_dir() / "moving_mnist"`); the
    file name holds the parameters and a hash of the digit pool. A cached file that cannot be read
    or has the wrong shape or dtype is regenerated with a warning: the set is a deterministic
    function of its key, so regenerating loses nothing. (Flipped pixel values inside a well-formed
    file are not detected; delete the cache folder to rebuild.)
    """
    pool = _digit_pool(test_pool)
    key = dict(n=n_sequences, t=length, d=n_digits, c=canvas, v=speed, seed=seed, pool=pool_hash(pool))
    folder = Path(cache_dir) if cache_dir is not None else files.cache_dir() / "moving_mnist"
    tag = hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:12]
    path = folder / f"test_n{n_sequences}_t{length}_d{n_digits}_c{canvas}_s{seed}_{tag}.npy"
    expected = (n_sequences, length, canvas, canvas)
    if path.is_file():
        try:
            cached = np.load(path, allow_pickle=False)
            if cached.shape == expected and cached.dtype == np.uint8:
                return cached
            problem = f"shape {cached.shape} dtype {cached.dtype}, expected {expected} uint8"
        except (ValueError, OSError, EOFError) as err:
            problem = f"unreadable ({err})"
        warnings.warn(f"cached Moving MNIST test set {str(path)!r} is {problem}; regenerating it", stacklevel=2)
    frames = generate(pool, n_sequences, length, n_digits, canvas, speed, seed)
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as f:
            np.save(f, frames, allow_pickle=False)
    return frames


def _detect_layout(shape: tuple, path: Path) -> str:
    if shape[:2] == OFFICIAL_TNHW:
        return "tnhw"
    if shape[:2] == OFFICIAL_TNHW[::-1]:
        return "nthw"
    raise ConfigError(
        f"cannot tell the layout of {str(path)!r} with shape {shape}: pass --layout tnhw "
        f"(time, sequence, height, width; the official mnist_test_seq.npy) or --layout nthw"
    )


def _check_float_range(array: np.ndarray, path: Path) -> None:
    """Floats must lie in [0, 1]; checked in slices so a memory-mapped file is read once, in pieces."""
    step = max(1, (1 << 26) // max(1, array[0].size))
    for lo in range(0, len(array), step):
        block = array[lo : lo + step]
        low, high = float(np.min(block)), float(np.max(block))
        if not (np.isfinite(low) and np.isfinite(high) and 0.0 <= low and high <= 1.0):
            raise DataError(
                f"sequence file {str(path)!r} holds float values in [{low}, {high}] (or NaN), "
                f"expected [0, 1] (or uint8 0-255)"
            )


def load_sequences(
    path: str | os.PathLike,
    layout: str | None = None,
    *,
    min_length: int | None = None,
    frame_size: tuple[int, int] | None = None,
) -> np.ndarray:
    """Read a sequence file a user brings: (N, T, H, W) float32 in [0, 1].

    layout: "tnhw" (the official `mnist_test_seq.npy`) or "nthw"; None detects it where the shape
    is unambiguous (the official (20, 10000, ...) or its transpose), else ConfigError asking for
    --layout. A trailing channel axis of size 1 is dropped. Values: uint8 0-255 or float in [0, 1],
    anything else is a DataError. The file is memory-mapped, so only the float32 result is held in
    memory. min_length / frame_size: when given, a shorter file or another frame size is a DataError.
    """
    path = Path(path)
    if layout is not None and layout not in LAYOUTS:
        raise ConfigError(f"layout must be one of {', '.join(LAYOUTS)}, got {layout!r}")
    if not path.is_file():
        raise DataError(f"sequence file {str(path)!r} does not exist")
    try:
        array = np.load(path, mmap_mode="r", allow_pickle=False)
    except ValueError as err:
        raise DataError(
            f"sequence file {str(path)!r} cannot be read without pickle ({err}); expected a plain "
            f"numeric .npy array"
        ) from None
    except (OSError, EOFError, zipfile.BadZipFile) as err:  # PK magic: np.load tries a zip archive
        raise DataError(f"sequence file {str(path)!r} is not a readable .npy file ({err})") from None
    if not isinstance(array, np.ndarray):  # np.load returns an NpzFile for .npz archives
        raise DataError(f"sequence file {str(path)!r} is not a .npy array")
    if array.ndim == 5 and array.shape[-1] == 1:
        array = array[..., 0]
    if array.ndim != 4:
        raise DataError(
            f"sequence file {str(path)!r} has shape {array.shape}, expected 4 axes "
            f"(time, sequence, height, width) or (sequence, time, height, width)"
        )
    layout = layout or _detect_layout(array.shape, path)
    if layout == "tnhw":
        array = array.transpose(1, 0, 2, 3)  # (T, N, H, W) -> (N, T, H, W), still a view
    n, t, h, w = array.shape
    if min(array.shape) == 0:
        raise DataError(f"sequence file {str(path)!r} is empty: shape (N, T, H, W) = {array.shape}")
    if frame_size is not None and (h, w) != tuple(frame_size):
        raise DataError(
            f"sequence file {str(path)!r} has {h}x{w} frames, the model expects "
            f"{frame_size[0]}x{frame_size[1]} (frames are never resized)"
        )
    if min_length is not None and t < min_length:
        raise DataError(
            f"sequence file {str(path)!r} has sequences of {t} frames, at least {min_length} needed"
        )
    if array.dtype == np.uint8:
        out = np.empty((n, t, h, w), np.float32)
        np.multiply(array, np.float32(1 / 255), out=out)
        return out
    if np.issubdtype(array.dtype, np.floating):
        _check_float_range(array, path)
        return np.ascontiguousarray(array, dtype=np.float32)
    raise DataError(
        f"sequence file {str(path)!r} has dtype {array.dtype}, expected uint8 (0-255) or float in [0, 1]"
    )


class SequenceBatches(keras.utils.PyDataset):
    """Fresh Moving MNIST training batches every epoch: float32 (B, T, canvas, canvas, 1) in [0, 1].

    Batch i of epoch e is generated from (seed, e, i) alone, so an interrupted run that resumes at
    epoch e sees exactly the batches it would have seen, provided that
    - `batches.epoch_callback()` is among `model.fit`'s callbacks: it sets `epoch` to the trainer's
      epoch, which BackupAndRestore resumes; without it the dataset counts epochs itself (fresh
      data every epoch, but Keras's first shape-inference pass already advances the count);
    - `model.fit(..., shuffle=False)`: Keras otherwise shuffles the batch order with its own random
      state, and the batches are random already.
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
        self.pool = _digit_pool(pool)
        self.batch_size = _positive_int("batch_size", batch_size)
        self.steps_per_epoch = _positive_int("steps_per_epoch", steps_per_epoch)
        self.length = _positive_int("length", length)
        if context is not None and not 0 < context < self.length:
            raise ConfigError(f"context must be shorter than the sequence: context={context}, length={length}")
        self.n_digits, self.canvas, self.speed, self.seed, self.context = n_digits, canvas, speed, seed, context
        self.epoch = 0
        generate(self.pool, 1, self.length, n_digits, canvas, speed)  # validate the options now

    def __len__(self) -> int:
        return self.steps_per_epoch

    def batch_seed(self, epoch: int, index: int) -> int:
        return int(np.random.SeedSequence([self.seed, epoch, index]).generate_state(1)[0])

    def __getitem__(self, index: int):
        if not 0 <= index < self.steps_per_epoch:
            raise IndexError(f"batch {index} out of range for {self.steps_per_epoch} steps per epoch")
        frames = generate(
            self.pool, self.batch_size, self.length, self.n_digits, self.canvas, self.speed,
            seed=self.batch_seed(self.epoch, index),
        )  # (B, T, C, C) uint8
        x = (frames.astype(np.float32) / 255.0)[..., None]  # (B, T, C, C, 1)
        if self.context is None:
            return x, x
        return x[:, : self.context], x[:, self.context :]

    def on_epoch_end(self):
        self.epoch += 1

    def epoch_callback(self) -> keras.callbacks.Callback:
        """A callback that sets `self.epoch` to the trainer's epoch at the start of every epoch."""
        return EpochSync(self)
