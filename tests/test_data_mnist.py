"""MNIST loading: IDX files, the Keras npz, corrupt files, the download and the fallback.

The loading paths run on small IDX files written by the tests, so they never skip for want of the
real files; only the contents of the real test set are checked on the real files."""

import gzip
import shutil
import warnings
from pathlib import Path

import numpy as np
import pytest

from seqattn.data import files, mnist
from seqattn.data.mnist import load_mnist, split_pools
from seqattn.errors import DataError

SHARED_MNIST = Path(__file__).resolve().parents[2] / "shared" / "data" / "mnist"
needs_shared = pytest.mark.skipif(not SHARED_MNIST.is_dir(), reason="shared MNIST copy not present")
CLASS_COUNTS = [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]


def _idx_bytes(array: np.ndarray, magic: int) -> bytes:
    header = magic.to_bytes(4, "big") + b"".join(d.to_bytes(4, "big") for d in array.shape)
    return header + array.astype(np.uint8).tobytes()


def _write_idx_pair(folder: Path, split: str, images: np.ndarray, labels: np.ndarray) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    image_name, label_name = mnist._idx_names(split)
    (folder / image_name).write_bytes(gzip.compress(_idx_bytes(images, 2051)))
    (folder / label_name).write_bytes(gzip.compress(_idx_bytes(labels, 2049)))


def _small_digits(n: int, offset: int = 0) -> tuple[np.ndarray, np.ndarray]:
    images = (np.arange(n * 28 * 28).reshape(n, 28, 28) + offset) % 256
    return images.astype(np.uint8), (np.arange(n) + offset) % 10


@pytest.fixture
def isolated(tmp_path, monkeypatch):
    """No data folder and an empty cache: nothing local to find."""
    monkeypatch.delenv(files.DATA_DIR_ENV, raising=False)
    monkeypatch.setenv(files.CACHE_DIR_ENV, str(tmp_path / "cache"))
    return tmp_path


@needs_shared
def test_real_idx_test_set_from_explicit_folder():
    digits = load_mnist(str(SHARED_MNIST))
    assert digits.source == "idx"
    assert digits.images.shape == (10000, 28, 28) and digits.images.dtype == np.uint8
    assert digits.labels.dtype == np.int64
    assert digits.labels[:10].tolist() == [7, 2, 1, 0, 4, 1, 4, 9, 5, 9]
    assert np.bincount(digits.labels).tolist() == CLASS_COUNTS


def test_no_path_finds_idx_through_the_data_folder(monkeypatch, tmp_path):
    images, labels = _small_digits(12, offset=3)
    _write_idx_pair(tmp_path / "data" / "mnist", "t10k", images, labels)  # the layout of ../shared/data
    monkeypatch.setenv(files.DATA_DIR_ENV, str(tmp_path / "data"))
    monkeypatch.setenv(files.CACHE_DIR_ENV, str(tmp_path / "cache"))
    digits = load_mnist()
    assert digits.source == "idx" and len(digits) == 12
    np.testing.assert_array_equal(digits.images, images)
    assert digits.labels.tolist() == labels.tolist() and digits.labels.dtype == np.int64


def test_single_images_file_path_finds_its_labels(tmp_path):
    images, labels = _small_digits(7, offset=5)
    _write_idx_pair(tmp_path, "t10k", images, labels)
    digits = load_mnist(str(tmp_path / "t10k-images-idx3-ubyte.gz"))
    np.testing.assert_array_equal(digits.images, images)
    assert digits.labels.tolist() == labels.tolist()


def test_train_and_test_idx_are_concatenated_train_first(tmp_path):
    train_images, train_labels = _small_digits(5, offset=0)
    test_images, test_labels = _small_digits(3, offset=100)
    _write_idx_pair(tmp_path, "train", train_images, train_labels)
    _write_idx_pair(tmp_path, "t10k", test_images, test_labels)
    digits = load_mnist(str(tmp_path))
    np.testing.assert_array_equal(digits.images, np.concatenate([train_images, test_images]))
    np.testing.assert_array_equal(digits.labels, np.concatenate([train_labels, test_labels]))


def test_uncompressed_idx_is_read(tmp_path):
    images, labels = _small_digits(4)
    (tmp_path / "t10k-images-idx3-ubyte.gz").write_bytes(_idx_bytes(images, 2051))  # raw, despite the name
    (tmp_path / "t10k-labels-idx1-ubyte.gz").write_bytes(_idx_bytes(labels, 2049))
    np.testing.assert_array_equal(load_mnist(str(tmp_path)).images, images)


def test_npz_path_keras_layout(tmp_path):
    train_images, train_labels = _small_digits(6)
    test_images, test_labels = _small_digits(2, offset=7)
    path = tmp_path / "mnist.npz"
    np.savez(path, x_train=train_images, y_train=train_labels, x_test=test_images, y_test=test_labels)
    for given in (path, tmp_path):  # the file, or a folder holding it
        digits = load_mnist(str(given))
        assert digits.source == "npz"
        np.testing.assert_array_equal(digits.images, np.concatenate([train_images, test_images]))
        assert digits.labels.dtype == np.int64
        assert digits.labels.tolist() == train_labels.tolist() + test_labels.tolist()


def test_npz_with_wrong_keys_or_pickled_arrays_is_a_data_error(tmp_path):
    wrong = tmp_path / "wrong.npz"
    np.savez(wrong, images=np.zeros((2, 28, 28), np.uint8))
    with pytest.raises(DataError, match="x_train, y_train, x_test, y_test"):
        load_mnist(str(wrong))
    pickled = tmp_path / "pickled.npz"
    objects = np.empty(2, dtype=object)
    np.savez(pickled, x_test=objects, y_test=np.zeros(2, np.int64))
    with pytest.raises(DataError, match="pickled.npz"):
        load_mnist(str(pickled))
    wrong_shape = tmp_path / "shape.npz"
    np.savez(wrong_shape, x_test=np.zeros((2, 32, 32), np.uint8), y_test=np.zeros(2, np.int64))
    with pytest.raises(DataError, match=r"expected \(N, 28, 28\) uint8"):
        load_mnist(str(wrong_shape))


def test_truncated_idx_is_a_data_error_naming_the_path(tmp_path):
    images, labels = _small_digits(4)
    _write_idx_pair(tmp_path, "t10k", images, labels)
    path = tmp_path / "t10k-images-idx3-ubyte.gz"
    path.write_bytes(gzip.compress(_idx_bytes(images, 2051)[:-100]))
    with pytest.raises(DataError, match=r"t10k-images-idx3-ubyte\.gz.*expected 3152 .*truncated"):
        load_mnist(str(tmp_path))


def test_cut_gzip_stream_is_a_data_error(tmp_path):
    images, labels = _small_digits(4)
    _write_idx_pair(tmp_path, "t10k", images, labels)
    path = tmp_path / "t10k-labels-idx1-ubyte.gz"
    path.write_bytes(path.read_bytes()[:15])
    with pytest.raises(DataError, match=r"t10k-labels-idx1-ubyte\.gz.*gzip"):
        load_mnist(str(tmp_path))


def test_wrong_magic_is_a_data_error(tmp_path):
    images, labels = _small_digits(4)
    _write_idx_pair(tmp_path, "t10k", images, labels)
    # labels written where the images belong: magic 2049, expected 2051
    shutil.copy(tmp_path / "t10k-labels-idx1-ubyte.gz", tmp_path / "t10k-images-idx3-ubyte.gz")
    with pytest.raises(DataError, match="magic number 2049, expected 2051"):
        load_mnist(str(tmp_path))


def test_label_count_mismatch_is_a_data_error(tmp_path):
    images, _ = _small_digits(4)
    _write_idx_pair(tmp_path, "t10k", images, np.zeros(3, np.uint8))
    with pytest.raises(DataError, match="hold 3 labels, expected 4"):
        load_mnist(str(tmp_path))


def test_explicit_missing_path_is_an_error_not_a_fallback(isolated):
    with pytest.raises(DataError, match="does not exist"):
        load_mnist(str(isolated / "nowhere" / "mnist.npz"))
    empty = isolated / "empty"
    empty.mkdir()
    with pytest.raises(DataError, match="holds neither"):
        load_mnist(str(empty))
    images, labels = _small_digits(2)
    _write_idx_pair(empty, "t10k", images, labels)
    (empty / "t10k-labels-idx1-ubyte.gz").unlink()  # half a pair
    with pytest.raises(DataError, match=r"t10k-labels-idx1-ubyte\.gz' does not exist"):
        load_mnist(str(empty))


def test_offline_without_path_falls_back_loudly(isolated, monkeypatch, caplog):
    def offline(relative_name, url=None, expected_sha256=None):
        raise files.DataUnavailable(f"{relative_name}: no network")

    monkeypatch.setattr(files, "fetch", offline)
    with pytest.warns(UserWarning, match="sklearn-digits-fallback"):
        digits = load_mnist()
    assert digits.source == "sklearn-digits-fallback"
    assert "NOT comparable" in caplog.text
    assert digits.images.shape == (1797, 28, 28) and digits.images.dtype == np.uint8
    assert digits.labels[:10].tolist() == list(range(10))  # sklearn's digits start 0..9
    # upscaled into MNIST's 20x20 box: the 4 px margin stays empty, the digit reaches full intensity
    assert digits.images[:, :4].max() == 0 and digits.images[:, 24:].max() == 0
    assert digits.images.max() == 255


def test_download_without_local_files_goes_into_the_cache(isolated, monkeypatch):
    images, labels = _small_digits(3)
    served = isolated / "served" / "mnist.npz"
    served.parent.mkdir()
    np.savez(served, x_train=images, y_train=labels, x_test=images[:1], y_test=labels[:1])
    monkeypatch.setattr(mnist, "KERAS_MNIST_URL", served.as_uri())
    monkeypatch.setattr(mnist, "KERAS_MNIST_SHA256", files.sha256(served))
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a real download must not warn about the fallback
        digits = load_mnist()
    assert digits.source == "keras-download" and len(digits) == 4
    assert (isolated / "cache" / "mnist" / "mnist.npz").is_file()
    served.unlink()  # the second load reads the cached copy
    assert load_mnist().source == "keras-download"


def test_download_with_wrong_checksum_is_an_error_not_a_fallback(isolated, monkeypatch):
    served = isolated / "mnist.npz"
    np.savez(served, x_test=np.zeros((1, 28, 28), np.uint8), y_test=np.zeros(1, np.int64))
    monkeypatch.setattr(mnist, "KERAS_MNIST_URL", served.as_uri())
    monkeypatch.setattr(mnist, "KERAS_MNIST_SHA256", "0" * 64)
    with pytest.raises(DataError, match="sha256"):
        load_mnist()


def test_split_pools_is_contiguous_and_disjoint():
    images = np.arange(10000, dtype=np.int64)[:, None, None] * np.ones((1, 28, 28), np.int64)
    digits = mnist.MnistDigits(images, np.zeros(10000, np.int64), "idx")
    train, test = split_pools(digits)
    assert len(train) == 8000 and len(test) == 2000
    assert train[:, 0, 0].tolist() == list(range(8000))
    assert test[:, 0, 0].tolist() == list(range(8000, 10000))
    train, test = split_pools(images[:10], test_fraction=0.3)
    assert train[:, 0, 0].tolist() == list(range(7)) and test[:, 0, 0].tolist() == [7, 8, 9]


@pytest.mark.parametrize("fraction", [0.0, 1.0, -0.1, 0.01])
def test_split_pools_rejects_empty_pools(fraction):
    from seqattn.errors import ConfigError

    with pytest.raises(ConfigError, match="test_fraction"):
        split_pools(np.zeros((10, 28, 28), np.uint8), test_fraction=fraction)
