"""Moving MNIST: the generator (determinism, bounds, bounce, overlap), the cached test set, user files."""

import pickle

import keras
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from seqattn.data import moving_mnist
from seqattn.data.moving_mnist import SequenceBatches, fixed_test_set, generate, load_sequences
from seqattn.errors import ConfigError, DataError


def _block_pool(values=(255,), size=28) -> np.ndarray:
    """Solid square digits, one per value: a frame then shows exactly where each digit sits."""
    return np.stack([np.full((size, size), v, np.uint8) for v in values])


def _corners(frames: np.ndarray, value: int = 255) -> np.ndarray:
    """Top-left corner (y, x) of the single solid block in each frame: (..., H, W) -> (..., 2)."""
    mask = frames == value
    rows = np.argmax(mask.any(axis=-1), axis=-1)
    cols = np.argmax(mask.any(axis=-2), axis=-1)
    return np.stack([rows, cols], axis=-1)


class _ScriptedRng:
    """Stands in for numpy's Generator: digit choices, starts and directions chosen by the test."""

    def __init__(self, chosen, start, theta_fraction):
        self._chosen = np.asarray(chosen)
        self._random = [np.asarray(start, float), np.asarray(theta_fraction, float)]

    def integers(self, low, high, size):
        return self._chosen.reshape(size)

    def random(self, size):
        return self._random.pop(0).reshape(size)


def test_generate_is_deterministic_for_a_seed():
    pool = np.random.default_rng(0).integers(0, 256, (20, 28, 28), dtype=np.uint8)
    first = generate(pool, 6, length=12, seed=5)
    assert first.shape == (6, 12, 64, 64) and first.dtype == np.uint8
    np.testing.assert_array_equal(first, generate(pool, 6, length=12, seed=5))
    assert not np.array_equal(first, generate(pool, 6, length=12, seed=6))


def test_a_layout_renders_the_sequences_generate_draws_for_its_seed():
    pool = np.random.default_rng(0).integers(0, 256, (20, 28, 28), dtype=np.uint8)
    layout = moving_mnist.layout_of(6, 2, len(pool), seed=5)
    assert layout.chosen.shape == (6, 2) and layout.start.shape == (6, 2, 2) and layout.theta.shape == (6, 2)
    np.testing.assert_array_equal(moving_mnist.render(pool, layout, 12), generate(pool, 6, length=12, seed=5))


def test_digits_stay_on_the_canvas_and_move_at_the_set_speed():
    frames = generate(_block_pool(), 50, length=100, n_digits=1, seed=1)  # (N, T, 64, 64)
    # the whole 28x28 block is on the canvas in every frame: nothing is cut at an edge
    assert ((frames == 255).sum(axis=(2, 3)) == 28 * 28).all()
    corners = _corners(frames)  # (N, T, 2)
    assert corners.min() == 0 and corners.max() == 35  # 100 frames reach every edge, never past 36
    step = np.diff(corners, axis=1)  # (N, T-1, 2)
    assert np.abs(step).max() <= 4  # 3.6 px per frame, floored to whole pixels
    # a typical step is 3.6 px long (e.g. (2, 3) px, 3.61); steps that bounce are shorter
    assert np.median(np.hypot(step[..., 0], step[..., 1])) == pytest.approx(3.6, abs=0.1)


@settings(max_examples=25, deadline=None)
@given(
    canvas=st.integers(28, 72),
    speed=st.floats(0, 12),
    length=st.integers(1, 40),
    seed=st.integers(0, 2**32 - 1),
)
def test_a_digit_is_never_cut_by_the_edge(canvas, speed, length, seed):
    frames = generate(_block_pool(), 3, length=length, n_digits=1, canvas=canvas, speed=speed, seed=seed)
    assert frames.shape == (3, length, canvas, canvas)
    assert ((frames == 255).sum(axis=(2, 3)) == 28 * 28).all()


def test_a_digit_moving_toward_an_edge_is_reflected(monkeypatch):
    # start at 0.85 of the free range (30.6 px) in x, 0.5 in y, moving straight right (theta = 0)
    scripted = _ScriptedRng([0], [[[0.5, 0.85]]], [[0.0]])
    monkeypatch.setattr(moving_mnist.np.random, "default_rng", lambda seed: scripted)
    frames = generate(_block_pool(), 1, length=6, n_digits=1)
    x = _corners(frames[0])[:, 1]
    y = _corners(frames[0])[:, 0]
    # unfolded x: 30.6 + 3.6 t = 34.2, 37.8, 41.4, 45.0, 48.6, 52.2; mirrored at 36: 34.2, 34.2,
    # 30.6, 27.0, 23.4, 19.8; floored
    assert x.tolist() == [34, 34, 30, 27, 23, 19]
    assert y.tolist() == [18] * 6  # floor(0.5 * 36)


def test_a_bounce_off_the_top_edge(monkeypatch):
    # start at y = 0.15 (5.4 px) moving straight up: theta = 3/4 of a turn, sin = -1
    scripted = _ScriptedRng([0], [[[0.15, 0.0]]], [[0.75]])
    monkeypatch.setattr(moving_mnist.np.random, "default_rng", lambda seed: scripted)
    y = _corners(generate(_block_pool(), 1, length=4, n_digits=1)[0])[:, 0]
    assert y.tolist() == [1, 1, 5, 9]  # 1.8, -1.8 -> 1.8, -5.4 -> 5.4, 9.0; floored


def test_overlapping_digits_combine_by_pixel_wise_max(monkeypatch):
    pool = np.zeros((2, 28, 28), np.uint8)
    pool[0, :, :14] = 200  # left half
    pool[1, :14, :] = 100  # top half
    scripted = _ScriptedRng([[0, 1]], [[[0.0, 0.0], [0.0, 0.0]]], [[0.125, 0.125]])  # same path
    monkeypatch.setattr(moving_mnist.np.random, "default_rng", lambda seed: scripted)
    frame = generate(pool, 1, length=1, n_digits=2)[0, 0]
    y, x = 2, 2  # floor(36 * 0.1 * sin(pi/4)) = floor(2.55)
    np.testing.assert_array_equal(frame[y : y + 28, x : x + 28], np.maximum(pool[0], pool[1]))
    assert frame.sum() == np.maximum(pool[0], pool[1]).sum()  # nothing anywhere else


def test_digits_come_only_from_the_given_pool():
    pool = _block_pool(values=(11, 22, 33))
    frames = generate(pool, 40, length=3, n_digits=1, seed=2)
    assert set(np.unique(frames)) <= {0, 11, 22, 33}
    assert set(np.unique(frames)) == {0, 11, 22, 33}  # 40 draws from 3 digits use them all
    # a digit keeps its identity through the sequence
    assert (frames.max(axis=(2, 3)) == frames.max(axis=(2, 3))[:, :1]).all()


def test_any_length_digit_count_and_canvas():
    frames = generate(_block_pool(), 3, length=100, n_digits=3, canvas=40, speed=1.5)
    assert frames.shape == (3, 100, 40, 40)
    frozen = generate(_block_pool(), 2, length=5, n_digits=1, speed=0)
    assert (frozen == frozen[:, :1]).all()


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(n_sequences=0), "n_sequences must be a positive integer"),
        (dict(length=0), "length must be a positive integer"),
        (dict(length=-3), "length must be a positive integer"),
        (dict(n_digits=0), "n_digits must be a positive integer"),
        (dict(canvas=20), "do not fit on a canvas of 20x20"),
        (dict(speed=-1.0), "speed must be a non-negative"),
    ],
)
def test_bad_generator_options_are_config_errors(kwargs, message):
    args = dict(n_sequences=2, length=3) | kwargs
    with pytest.raises(ConfigError, match=message):
        generate(_block_pool(), **args)


def test_bad_pool_is_a_config_error():
    with pytest.raises(ConfigError, match="uint8"):
        generate(np.zeros((3, 28, 28), np.float32), 1)
    with pytest.raises(ConfigError, match="non-empty"):
        generate(np.zeros((0, 28, 28), np.uint8), 1)


def test_fixed_test_set_round_trips_through_the_cache(tmp_path, monkeypatch):
    pool = np.random.default_rng(0).integers(0, 256, (10, 28, 28), dtype=np.uint8)
    first = fixed_test_set(pool, 4, length=5, n_digits=2, seed=3, cache_dir=tmp_path)
    cached = list(tmp_path.glob("*.npy"))
    assert len(cached) == 1 and cached[0].name.startswith("test_n4_t5_d2_c64_s3_")
    np.testing.assert_array_equal(first, generate(pool, 4, length=5, n_digits=2, seed=3))

    def must_not_generate(*args, **kwargs):
        raise AssertionError("the cached set should have been read")

    monkeypatch.setattr(moving_mnist, "generate", must_not_generate)
    np.testing.assert_array_equal(fixed_test_set(pool, 4, length=5, n_digits=2, seed=3, cache_dir=tmp_path), first)


def test_fixed_test_set_cache_is_keyed_by_parameters_and_pool(tmp_path):
    pool = _block_pool(values=(255, 128))
    fixed_test_set(pool, 2, length=3, seed=0, cache_dir=tmp_path)
    fixed_test_set(pool, 2, length=3, seed=1, cache_dir=tmp_path)
    fixed_test_set(pool, 2, length=4, seed=0, cache_dir=tmp_path)
    fixed_test_set(pool[::-1].copy(), 2, length=3, seed=0, cache_dir=tmp_path)
    assert len(list(tmp_path.glob("*.npy"))) == 4
    assert not list(tmp_path.glob(".*"))  # no temporary file left behind


def test_fixed_test_set_defaults_to_the_project_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("SEQATTN_CACHE_DIR", str(tmp_path))
    fixed_test_set(_block_pool(), 1, length=2, seed=0)
    assert len(list((tmp_path / "moving_mnist").glob("*.npy"))) == 1


@pytest.mark.parametrize("damage", ["truncate", "wrong_shape", "garbage"])
def test_corrupt_cache_is_regenerated_with_a_warning(tmp_path, damage):
    pool = _block_pool(values=(255, 128))
    expected = fixed_test_set(pool, 3, length=4, seed=0, cache_dir=tmp_path)
    (path,) = tmp_path.glob("*.npy")
    if damage == "truncate":
        path.write_bytes(path.read_bytes()[:200])
    elif damage == "wrong_shape":
        np.save(path, expected[:1])
    else:
        path.write_bytes(b"not an npy file at all")
    with pytest.warns(UserWarning, match="regenerating"):
        again = fixed_test_set(pool, 3, length=4, seed=0, cache_dir=tmp_path)
    np.testing.assert_array_equal(again, expected)
    np.testing.assert_array_equal(np.load(path, allow_pickle=False), expected)  # repaired on disk


def _sequences(n=3, t=5, size=8) -> np.ndarray:
    return np.random.default_rng(0).integers(0, 256, (n, t, size, size), dtype=np.uint8)  # (N, T, H, W)


def test_load_sequences_nthw_uint8(tmp_path):
    data = _sequences()
    np.save(tmp_path / "seq.npy", data)
    loaded = load_sequences(tmp_path / "seq.npy", layout="nthw")
    assert loaded.dtype == np.float32 and loaded.shape == (3, 5, 8, 8)
    np.testing.assert_allclose(loaded, data / 255.0, rtol=1e-6)


def test_load_sequences_tnhw_like_the_official_file(tmp_path):
    data = _sequences()
    np.save(tmp_path / "seq.npy", data.transpose(1, 0, 2, 3))  # (T, N, H, W)
    loaded = load_sequences(tmp_path / "seq.npy", layout="tnhw")
    np.testing.assert_allclose(loaded, data / 255.0, rtol=1e-6)


def test_layout_of_the_official_shape_is_detected(tmp_path):
    official = np.zeros((20, 10000, 2, 2), np.uint8)  # the official leading axes, tiny frames
    official[3, 7] = 255  # frame 3 of sequence 7
    np.save(tmp_path / "official.npy", official)
    loaded = load_sequences(tmp_path / "official.npy")
    assert loaded.shape == (10000, 20, 2, 2) and loaded[7, 3].min() == 1.0 and loaded.sum() == 4
    np.save(tmp_path / "transposed.npy", official.transpose(1, 0, 2, 3))
    assert load_sequences(tmp_path / "transposed.npy")[7, 3].min() == 1.0


def test_ambiguous_layout_asks_for_it(tmp_path):
    np.save(tmp_path / "seq.npy", _sequences())
    with pytest.raises(ConfigError, match="--layout"):
        load_sequences(tmp_path / "seq.npy")
    with pytest.raises(ConfigError, match="layout must be one of"):
        load_sequences(tmp_path / "seq.npy", layout="ntwh")


def test_float_sequences_in_range_and_out_of_range(tmp_path):
    data = _sequences() / 255.0
    np.save(tmp_path / "ok.npy", data)
    np.testing.assert_allclose(load_sequences(tmp_path / "ok.npy", layout="nthw"), data, rtol=1e-6)
    np.save(tmp_path / "bad.npy", data * 255.0)
    with pytest.raises(DataError, match=r"bad\.npy.*expected \[0, 1\]"):
        load_sequences(tmp_path / "bad.npy", layout="nthw")
    nan = data.copy()
    nan[0, 0, 0, 0] = np.nan
    np.save(tmp_path / "nan.npy", nan)
    with pytest.raises(DataError, match="NaN"):
        load_sequences(tmp_path / "nan.npy", layout="nthw")


def test_wrong_dtype_is_a_data_error(tmp_path):
    np.save(tmp_path / "int.npy", _sequences().astype(np.int16))
    with pytest.raises(DataError, match=r"int\.npy.*dtype int16, expected uint8"):
        load_sequences(tmp_path / "int.npy", layout="nthw")


def test_pickled_object_array_is_refused(tmp_path):
    objects = np.empty((2, 2, 2, 2), dtype=object)
    np.save(tmp_path / "objects.npy", objects, allow_pickle=True)
    with pytest.raises(DataError, match=r"objects\.npy.*without pickle"):
        load_sequences(tmp_path / "objects.npy", layout="nthw")
    (tmp_path / "pickle.npy").write_bytes(pickle.dumps(_sequences()))
    with pytest.raises(DataError, match=r"pickle\.npy"):
        load_sequences(tmp_path / "pickle.npy", layout="nthw")


def test_frame_size_length_and_shape_checks(tmp_path):
    np.save(tmp_path / "seq.npy", _sequences(t=5, size=8))
    with pytest.raises(DataError, match="8x8 frames, the model expects 64x64"):
        load_sequences(tmp_path / "seq.npy", layout="nthw", frame_size=(64, 64))
    with pytest.raises(DataError, match="sequences of 5 frames, at least 11 needed"):
        load_sequences(tmp_path / "seq.npy", layout="nthw", min_length=11)
    np.save(tmp_path / "flat.npy", np.zeros((3, 8, 8), np.uint8))
    with pytest.raises(DataError, match="expected 4 axes"):
        load_sequences(tmp_path / "flat.npy", layout="nthw")
    np.save(tmp_path / "channel.npy", _sequences()[..., None])  # (N, T, H, W, 1)
    assert load_sequences(tmp_path / "channel.npy", layout="nthw").shape == (3, 5, 8, 8)
    with pytest.raises(DataError, match="does not exist"):
        load_sequences(tmp_path / "missing.npy", layout="nthw")


def test_sequence_batches_are_fresh_per_epoch_and_reproducible():
    pool = np.random.default_rng(0).integers(0, 256, (10, 28, 28), dtype=np.uint8)
    batches = SequenceBatches(pool, batch_size=4, steps_per_epoch=3, length=6, seed=7)
    x, y = batches[0]
    assert x.shape == (4, 6, 64, 64, 1) and x.dtype == np.float32 and x is y
    assert 0.0 <= x.min() and x.max() <= 1.0
    np.testing.assert_array_equal(batches[0][0], x)  # pure function of (seed, epoch, index)
    assert not np.array_equal(batches[1][0], x)
    epoch0 = [batches[i][0] for i in range(len(batches))]
    batches.on_epoch_end()
    assert not np.array_equal(batches[0][0], epoch0[0])  # fresh sequences in epoch 1
    resumed = SequenceBatches(pool, batch_size=4, steps_per_epoch=3, length=6, seed=7)
    resumed.epoch = 1  # what epoch_callback does when training resumes at epoch 1
    np.testing.assert_array_equal(resumed[2][0], batches[2][0])


def test_sequence_batches_context_split_and_bad_options():
    pool = _block_pool()
    x, y = SequenceBatches(pool, batch_size=2, steps_per_epoch=1, length=6, canvas=32, context=4)[0]
    assert x.shape == (2, 4, 32, 32, 1) and y.shape == (2, 2, 32, 32, 1)
    with pytest.raises(ConfigError, match="context must be shorter"):
        SequenceBatches(pool, batch_size=2, steps_per_epoch=1, length=6, context=6)
    with pytest.raises(ConfigError, match="batch_size"):
        SequenceBatches(pool, batch_size=0, steps_per_epoch=1)
    with pytest.raises(ConfigError, match="do not fit"):
        SequenceBatches(pool, batch_size=1, steps_per_epoch=1, canvas=16)


class _RecordingBatches(SequenceBatches):
    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.requested = []

    def __getitem__(self, index):
        self.requested.append((self.epoch, index))
        return super().__getitem__(index)


@pytest.mark.backend
@pytest.mark.filterwarnings("ignore:The model does not have any trainable weights")
def test_epoch_callback_keeps_batches_in_step_with_a_resumed_fit():
    batches = _RecordingBatches(_block_pool(), batch_size=2, steps_per_epoch=2, length=3, canvas=28, context=2)
    model = keras.Sequential([keras.Input((2, 28, 28, 1)), keras.layers.Lambda(lambda x: x[:, -1:] * 1.0)])
    model.compile(loss="mse")
    # initial_epoch=2 is how BackupAndRestore resumes an interrupted fit
    model.fit(batches, epochs=4, initial_epoch=2, shuffle=False, verbose=0, callbacks=[batches.epoch_callback()])
    trained = [pair for pair in batches.requested if pair[0] >= 2]
    assert trained == [(2, 0), (2, 1), (3, 0), (3, 1)]
