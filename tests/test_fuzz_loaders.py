"""Fuzz the data loaders: whatever bytes a user hands them, only the documented error comes out.

Each loader promises DataError (a bad file) or ConfigError (an option it cannot infer, such as
the layout of a sequence file); any other exception (IndexError, zlib.error, a pickle error...)
would reach the user as a traceback instead of one line. Property tests via hypothesis.
"""

import gzip
import pickle
import shutil
import struct
import tempfile
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from seqattn.data import ett, mnist, moving_mnist
from seqattn.data.retrieval import make_retrieval_task
from seqattn.errors import ConfigError, DataError

FUZZ = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])

_TMP = Path(tempfile.mkdtemp(prefix="seqattn-fuzz-"))


@pytest.fixture(autouse=True, scope="module")
def _remove_fuzz_files():
    yield
    shutil.rmtree(_TMP, ignore_errors=True)


def _write(name: str, data: bytes | str) -> Path:
    """Write one fuzz case to a fresh file (hypothesis reruns a test body many times per fixture)."""
    path = Path(tempfile.mkdtemp(dir=_TMP)) / name
    if isinstance(data, str):
        path.write_text(data, encoding="utf-8", newline="")
    else:
        path.write_bytes(data)
    return path


# --- ETT / user CSV -----------------------------------------------------------------------------


def _read_csv_or_data_error(path: Path) -> None:
    """read_csv and load_csv either return finite, consistent values or raise DataError."""
    for load in (ett.read_csv, ett.load_csv):
        try:
            result = load(path)
        except DataError as err:
            assert str(path) in str(err) or path.name in str(err)
            continue
        values, columns = result if load is ett.read_csv else (result.values, result.columns)
        assert values.ndim == 2 and values.shape[1] == len(columns) >= 1
        assert np.isfinite(values).all()


@FUZZ
@given(text=st.text())
def test_read_csv_random_text(text):
    _read_csv_or_data_error(_write("user.csv", text))


@FUZZ
@given(data=st.binary(max_size=512))
def test_read_csv_random_bytes(data):
    _read_csv_or_data_error(_write("user.csv", data))


_CELLS = st.one_of(
    st.sampled_from(["", "nan", "NaN", "inf", "-inf", " ", "1e400", "0x10", "1,5", "  2.5 ", "abc"]),
    st.floats(allow_nan=True, allow_infinity=True).map(repr),
    st.integers(-10**30, 10**30).map(str),
    st.text(max_size=6),
)
_DATES = st.one_of(
    st.datetimes().map(lambda d: d.strftime("%Y-%m-%d %H:%M:%S")),
    st.sampled_from(["", "nan", "2016-07-01", "2016-13-45", "0000-00-00", "yesterday", "1e9", "99999-01-01"]),
    st.text(max_size=12),
)


@st.composite
def _csv_like(draw):
    columns = draw(st.lists(st.text(min_size=0, max_size=5).filter(lambda c: "\n" not in c and "\r" not in c),
                            max_size=4))
    header = columns[:]
    header.insert(draw(st.integers(0, len(columns))), "date")
    n_rows = draw(st.integers(0, 6))
    lines = [",".join(header)]
    for _ in range(n_rows):
        width = draw(st.sampled_from([len(header), len(header), len(header) - 1, len(header) + 1]))
        row = [draw(_CELLS) for _ in range(max(width, 0))]
        if row:
            row[min(header.index("date"), len(row) - 1)] = draw(_DATES)
        lines.append(",".join(cell.replace(",", ";").replace("\n", " ").replace("\r", " ") for cell in row))
    return "\n".join(lines) + draw(st.sampled_from(["", "\n", "\n\n"]))


@FUZZ
@given(text=_csv_like())
def test_read_csv_structured(text):
    _read_csv_or_data_error(_write("user.csv", text))


@FUZZ
@given(values=st.lists(st.floats(-1e6, 1e6), min_size=1, max_size=8), order=st.permutations(range(8)))
def test_read_csv_valid_rows_round_trip_or_out_of_order_error(values, order):
    """Well-formed numeric rows read back exactly; dates out of order are a DataError naming the line."""
    days = [order[i] for i in range(len(values))]
    text = "date,OT\n" + "".join(f"2016-07-{d + 1:02d},{v!r}\n" for d, v in zip(days, values))
    path = _write("user.csv", text)
    if all(a < b for a, b in zip(days, days[1:])):
        got, columns = ett.read_csv(path)
        assert columns == ("OT",)
        np.testing.assert_array_equal(got[:, 0], values)
    else:
        with pytest.raises(DataError, match="strictly increasing"):
            ett.read_csv(path)


# --- MNIST IDX ----------------------------------------------------------------------------------


def _idx_or_data_error(path: Path, magic: int) -> None:
    try:
        array = mnist.read_idx(path, magic)
    except DataError as err:
        assert str(path) in str(err)
        return
    assert array.dtype == np.uint8 and array.ndim == (3 if magic == mnist.IMAGES_MAGIC else 1)


_MAGICS = st.sampled_from([mnist.IMAGES_MAGIC, mnist.LABELS_MAGIC])


@FUZZ
@given(data=st.binary(max_size=256), magic=_MAGICS)
def test_read_idx_random_bytes(data, magic):
    _idx_or_data_error(_write("x-images-idx3-ubyte", data), magic)


@FUZZ
@example(  # dims whose product is 2**64: an int64 product wraps to 0 and matched the empty payload
    file_magic=mnist.IMAGES_MAGIC,
    magic=mnist.IMAGES_MAGIC,
    dims=[2**22, 2**21, 2**21],
    payload=b"",
    gzipped=False,
)
@given(
    file_magic=_MAGICS,
    magic=_MAGICS,
    dims=st.lists(st.one_of(st.integers(0, 8), st.integers(0, 2**32 - 1)), min_size=0, max_size=4),
    payload=st.binary(max_size=128),
    gzipped=st.booleans(),
)
def test_read_idx_truncated_headers(file_magic, magic, dims, payload, gzipped):
    """Real magic numbers followed by random dims (huge ones included) and a short payload."""
    data = struct.pack(">I", file_magic) + b"".join(struct.pack(">I", d) for d in dims) + payload
    _idx_or_data_error(_write("x-idx", gzip.compress(data) if gzipped else data), magic)


@FUZZ
@given(data=st.binary(max_size=256), magic=_MAGICS, cut=st.integers(0, 64))
def test_read_idx_corrupt_gzip(data, magic, cut):
    """Gzip magic then random bytes, and a valid gzip stream cut short."""
    _idx_or_data_error(_write("a.gz", b"\x1f\x8b" + data), magic)
    valid_header = b"\x1f\x8b\x08\x00" + bytes(6)  # deflate, no flags: the body is random deflate data
    _idx_or_data_error(_write("c.gz", valid_header + data), magic)
    whole = gzip.compress(struct.pack(">II", mnist.LABELS_MAGIC, 3) + b"\x01\x02\x03")
    _idx_or_data_error(_write("b.gz", whole[: min(cut, len(whole) - 1)]), magic)


@FUZZ
@given(images=st.binary(max_size=128), labels=st.binary(max_size=64), gzipped=st.booleans())
def test_load_mnist_folder_of_garbage(images, labels, gzipped):
    folder = Path(tempfile.mkdtemp(dir=_TMP))
    image_name, label_name = mnist._idx_names("t10k")
    pack = gzip.compress if gzipped else (lambda b: b)
    (folder / image_name).write_bytes(pack(images))
    (folder / label_name).write_bytes(pack(labels))
    with pytest.raises(DataError, match="MNIST"):
        mnist.load_mnist(str(folder))


# --- Moving MNIST sequence files ----------------------------------------------------------------

UNPICKLED = []


class _Tripwire:
    """Records it was unpickled: a loader with allow_pickle=False must never get here."""

    def __setstate__(self, state):
        UNPICKLED.append(state)


def _sequences_or_documented_error(path: Path, layout) -> None:
    try:
        out = moving_mnist.load_sequences(path, layout=layout)
    except (DataError, ConfigError) as err:
        assert str(path) in str(err)
        return
    finally:
        assert not UNPICKLED, "load_sequences unpickled a file"
    assert out.dtype == np.float32 and out.ndim == 4
    assert np.isfinite(out).all() and out.min() >= 0.0 and out.max() <= 1.0


_DTYPES = st.sampled_from(
    [np.uint8, np.int8, np.int32, np.int64, np.float16, np.float32, np.float64, np.bool_, np.complex64, "U3"]
)
_LAYOUT = st.sampled_from([None, "tnhw", "nthw"])


@FUZZ
@given(
    shape=st.lists(st.integers(0, 3), min_size=0, max_size=6),
    dtype=_DTYPES,
    fill=st.sampled_from(["unit", "nan", "big", "negative"]),
    layout=_LAYOUT,
)
def test_load_sequences_random_arrays(shape, dtype, fill, layout):
    rng = np.random.default_rng(0)
    base = {"unit": rng.random(shape), "nan": np.full(shape, np.nan), "big": rng.random(shape) * 300,
            "negative": -rng.random(shape)}[fill]
    with np.errstate(invalid="ignore"):
        array = base.astype(dtype)
    path = Path(tempfile.mkdtemp(dir=_TMP)) / "seq.npy"
    np.save(path, array, allow_pickle=False)
    _sequences_or_documented_error(path, layout)


@FUZZ
@given(shape=st.lists(st.integers(1, 2), min_size=1, max_size=5), layout=_LAYOUT, raw=st.booleans())
def test_load_sequences_never_unpickles(shape, layout, raw):
    """Object arrays (np.save with pickle) and a bare pickle named .npy: refused, never loaded."""
    array = np.empty(shape, dtype=object)
    array.flat[:] = [_Tripwire() for _ in range(array.size)]
    path = Path(tempfile.mkdtemp(dir=_TMP)) / "seq.npy"
    if raw:
        path.write_bytes(pickle.dumps(array))
    else:
        np.save(path, array, allow_pickle=True)
    _sequences_or_documented_error(path, layout)
    with pytest.raises(DataError):
        moving_mnist.load_sequences(path, layout="nthw")


@FUZZ
@given(
    data=st.binary(max_size=256),
    prefix=st.sampled_from([b"", b"\x93NUMPY\x01\x00", b"\x93NUMPY\x02\x00", b"PK\x03\x04", b"PK\x05\x06"]),
    layout=_LAYOUT,
)
def test_load_sequences_random_bytes(data, prefix, layout):
    _sequences_or_documented_error(_write("seq.npy", prefix + data), layout)


@FUZZ
@given(shape=st.tuples(*(st.integers(1, n) for n in (2, 3, 4, 4))), cut=st.integers(0, 200))
def test_load_sequences_truncated_npy(shape, cut):
    """A valid .npy header whose data was cut short (an interrupted copy)."""
    path = Path(tempfile.mkdtemp(dir=_TMP)) / "seq.npy"
    np.save(path, np.zeros(shape, np.uint8))
    whole = path.read_bytes()
    path.write_bytes(whole[: min(cut, len(whole) - 1)])
    _sequences_or_documented_error(path, "nthw")


# --- Generators are reproducible ----------------------------------------------------------------


def test_generators_same_seed_same_arrays_other_seed_other_arrays():
    def task(seed):
        return make_retrieval_task(n_samples=16, n_pairs=5, n_keys=12, n_values=7, seed=seed)

    a, b, c = task(3), task(3), task(4)
    for field in ("keys", "values", "queries", "targets", "alignment"):
        np.testing.assert_array_equal(getattr(a, field), getattr(b, field))
    assert any(not np.array_equal(getattr(a, f), getattr(c, f)) for f in ("keys", "values", "alignment"))

    pool = (np.random.default_rng(0).random((5, 8, 8)) * 255).astype(np.uint8)

    def video(seed):
        return moving_mnist.generate(pool, n_sequences=3, length=6, canvas=24, seed=seed)

    first, again, other = video(11), video(11), video(12)
    assert first.shape == (3, 6, 24, 24) and first.dtype == np.uint8
    np.testing.assert_array_equal(first, again)
    assert not np.array_equal(first, other)
