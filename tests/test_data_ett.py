"""ETT protocol: exact split borders and window counts, train-only scaling, CSV validation, download.

The protocol tests run on a synthetic ETTh1 of the protocol's shape, written by the test: 14,400
hourly rows (the protocol's last border) with the ETT columns, so they never skip for want of the
real file; only the layout of the real file is checked on the real file.
"""

import os
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from seqattn.data import ett, files
from seqattn.data.windows import (
    StandardScaler, fraction_borders, make_windows, n_windows, sliding_windows, split_rows,
)
from seqattn.errors import DataError

SHARED_ETTH1 = Path(os.environ.get("SEQATTN_DATA_DIR", "../shared/data")) / "ETTh1.csv"
needs_etth1 = pytest.mark.skipif(not SHARED_ETTH1.is_file(), reason="ETTh1.csv not in SEQATTN_DATA_DIR")


ROWS = 14_400  # the ETT-hour protocol's last border: 20 months of 30 days


@pytest.fixture(scope="module")
def etth1_csv(tmp_path_factory) -> Path:
    """ETTh1.csv of the protocol's shape: hourly dates from 2016-07-01, the ETT columns in another
    order than the loader returns them, and values that drift over time, so that statistics of the
    training rows differ from those of all rows. Column k of row t is k + t / 1000 + a daily wave."""
    t = np.arange(ROWS)
    columns = ett.ETT_COLUMNS[::-1]  # OT first: the loader must pick columns by name
    dates = pd.date_range("2016-07-01", periods=ROWS, freq="h").strftime("%Y-%m-%d %H:%M:%S")
    values = [ett.ETT_COLUMNS.index(c) + t / 1000 + np.sin(2 * np.pi * t / 24) for c in columns]
    lines = ["date," + ",".join(columns)]
    lines += [f"{date}," + ",".join(f"{v[i]:.6f}" for v in values) for i, date in enumerate(dates)]
    path = tmp_path_factory.mktemp("ett") / "ETTh1.csv"
    path.write_text("\n".join(lines) + "\n")
    return path


@pytest.fixture(scope="module")
def etth1(etth1_csv):
    return ett.load_ett("ETTh1", "M", path=etth1_csv)


def test_ett_columns_borders_and_univariate_target(etth1, etth1_csv):
    assert etth1.values.shape == (ROWS, 7)
    assert etth1.columns == ett.ETT_COLUMNS
    assert etth1.borders == (8640, 11520, 14400)
    np.testing.assert_allclose(etth1.values[:, 6], 6 + np.arange(ROWS) / 1000 + np.sin(2 * np.pi * np.arange(ROWS) / 24),
                               atol=1e-6)  # OT, read by name from the CSV's first value column
    univariate = ett.load_ett("ETTh1", "S", path=etth1_csv)
    assert univariate.columns == ("OT",) and np.array_equal(univariate.values[:, 0], etth1.values[:, 6])


@needs_etth1
def test_real_etth1_layout():
    real = ett.load_ett("ETTh1", "M")
    assert real.values.shape == (17420, 7)
    assert real.columns == ett.ETT_COLUMNS
    assert real.borders == (8640, 11520, 14400)
    assert real.values[0, -1] == pytest.approx(30.53100014)  # OT of 2016-07-01 00:00


def test_split_rows_follow_the_informer_protocol():
    assert split_rows((8640, 11520, 14400), 96) == {"train": (0, 8640), "val": (8544, 11520), "test": (11424, 14400)}
    assert split_rows((8640, 11520, 14400), 336) == {"train": (0, 8640), "val": (8304, 11520), "test": (11184, 14400)}


@pytest.mark.parametrize(
    "lookback, horizon, counts",
    [
        (96, 96, (8449, 2785, 2785)),
        (96, 720, (7825, 2161, 2161)),
        (336, 96, (8209, 2785, 2785)),
        (336, 720, (7585, 2161, 2161)),
    ],
)
def test_window_counts_keep_every_window(etth1, lookback, horizon, counts):
    data = make_windows(etth1, lookback, horizon)
    assert tuple(len(data.x[s]) for s in ("train", "val", "test")) == counts
    assert data.x["test"].shape == (counts[2], lookback, 7) and data.y["test"].shape == (counts[2], horizon, 7)


def test_windows_hold_the_right_rows(etth1):
    data = make_windows(etth1, 96, 96)
    scaled = data.scaler.transform(etth1.values)
    # First test window: x = rows [11424, 11520), y = rows [11520, 11616); last y ends at row 14400.
    assert np.allclose(data.x["test"][0], scaled[11424:11520], atol=1e-5)
    assert np.allclose(data.y["test"][0], scaled[11520:11616], atol=1e-5)
    assert np.allclose(data.y["test"][-1], scaled[14304:14400], atol=1e-5)
    assert np.allclose(data.y["val"][0], scaled[8640:8736], atol=1e-5)  # val predicts val rows only
    assert np.allclose(data.y["train"][-1], scaled[8544:8640], atol=1e-5)


def test_scaler_is_fitted_on_train_rows_only(etth1):
    data = make_windows(etth1, 96, 96)
    assert np.allclose(data.scaler.mean, etth1.values[:8640].mean(axis=0))
    assert np.allclose(data.scaler.std, etth1.values[:8640].std(axis=0))
    assert not np.allclose(data.scaler.mean, etth1.values[:14400].mean(axis=0))
    train_rows = np.concatenate([data.x["train"][0], data.y["train"][0], data.y["train"][1:, -1]])  # rows 0..8639
    assert len(train_rows) == 8640
    assert np.allclose(train_rows.mean(axis=0), 0, atol=1e-4) and np.allclose(train_rows.std(axis=0), 1, atol=1e-4)


def test_standard_scaler_matches_hand_values():
    scaler = StandardScaler.fit(np.array([[1.0, 5.0], [3.0, 5.0]]))
    assert np.allclose(scaler.mean, [2.0, 5.0]) and np.allclose(scaler.std, [1.0, 1.0])  # constant column: std 1
    assert np.allclose(scaler.transform(np.array([[3.0, 6.0]])), [[1.0, 1.0]])
    assert np.allclose(scaler.inverse_transform(np.array([[1.0, 1.0]])), [[3.0, 6.0]])


def test_sliding_windows_by_hand():
    values = np.arange(10.0)[:, None]  # (10, 1)
    x, y = sliding_windows(values, 3, 2)
    assert n_windows(10, 3, 2) == 6 and x.shape == (6, 3, 1) and y.shape == (6, 2, 1)
    assert x[0, :, 0].tolist() == [0, 1, 2] and y[0, :, 0].tolist() == [3, 4]
    assert x[-1, :, 0].tolist() == [5, 6, 7] and y[-1, :, 0].tolist() == [8, 9]


def test_fraction_borders_like_time_series_library():
    assert fraction_borders(1000) == (700, 800, 1000)
    assert fraction_borders(17420) == (12194, 13936, 17420)


# ----------------------------------------------------------------------------- user CSVs


def _write(tmp_path, text, name="series.csv") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def _good_csv(n=60):
    lines = ["date,a,OT"] + [f"2020-01-01 {h // 60:02d}:{h % 60:02d}:00,{h},{2 * h}" for h in range(n)]
    return "\n".join(lines) + "\n"


def test_user_csv_loads_with_70_10_20_split(tmp_path):
    series = ett.load_csv(_write(tmp_path, _good_csv()), "M")
    assert series.columns == ("a", "OT") and series.values.shape == (60, 2) and series.borders == (42, 48, 60)
    assert ett.load_csv(tmp_path / "series.csv", "S").columns == ("OT",)
    data = make_windows(series, 4, 2)
    assert len(data.x["test"]) == 11  # rows [44, 60): 16 - 4 - 2 + 1


@pytest.mark.parametrize(
    "mutate, message",
    [
        (lambda lines: [lines[0].replace("a,", "")] + lines[1:], "line 2: 3 fields, the header has 2"),
        (lambda lines: ["time,a,OT"] + lines[1:], "line 1: missing column(s) ['date']"),
        (lambda lines: lines[:5] + [lines[5].replace(",4,", ",x4,")] + lines[6:],
         "line 6, column 'a': non-numeric value 'x4'"),
        (lambda lines: lines[:7] + [lines[7].rsplit(",", 1)[0] + ",nan"] + lines[8:], "line 8, column 'OT'"),
        (lambda lines: lines[:3] + [lines[3].rsplit(",", 1)[0] + ","] + lines[4:], "line 4, column 'OT': empty cell"),
        (lambda lines: lines[:10] + [lines[9]] + lines[11:], "line 11, column 'date'"),
        (lambda lines: lines[:4] + ["yesterday" + lines[4][19:]] + lines[5:], "line 5, column 'date': cannot parse"),
    ],
)
def test_bad_csv_names_file_line_and_column(tmp_path, mutate, message):
    lines = _good_csv().splitlines()
    path = _write(tmp_path, "\n".join(mutate(lines)) + "\n")
    with pytest.raises(DataError) as err:
        ett.load_csv(path)
    assert str(path) in str(err.value) and message in str(err.value)


def test_too_few_rows_for_lookback_plus_horizon(tmp_path):
    series = ett.load_csv(_write(tmp_path, _good_csv(40)))  # borders (28, 32, 40): val rows [20, 32)
    assert len(make_windows(series, 8, 4).x["val"]) == 1
    with pytest.raises(DataError, match=r"too few rows for L \+ H = 8 \+ 5: the val split"):
        make_windows(series, 8, 5)


def test_ett_needs_its_columns_and_rows(tmp_path):
    with pytest.raises(DataError, match=r"missing column\(s\) \['HUFL'"):
        ett.load_ett("ETTh1", path=_write(tmp_path, _good_csv()))
    header = "date," + ",".join(ett.ETT_COLUMNS)
    rows = [f"2020-01-01 {h // 60:02d}:{h % 60:02d}:00," + ",".join(["1.0"] * 7) for h in range(30)]
    with pytest.raises(DataError, match="30 data rows; the ETT-hour protocol needs 14400"):
        ett.load_ett("ETTh1", path=_write(tmp_path, "\n".join([header, *rows]) + "\n", "small.csv"))
    with pytest.raises(DataError, match="unknown ETT dataset"):
        ett.load_ett("ETTm9")
    with pytest.raises(DataError, match="features must be one of"):
        ett.load_csv(tmp_path / "series.csv", "MS")


def test_missing_file_is_a_data_error(tmp_path):
    with pytest.raises(DataError, match="cannot be read"):
        ett.load_csv(tmp_path / "nope.csv")


# ----------------------------------------------------------------------------- download


def test_download_into_cache_with_checksum(tmp_path, monkeypatch, etth1_csv):
    monkeypatch.delenv(files.DATA_DIR_ENV, raising=False)
    monkeypatch.setenv(files.CACHE_DIR_ENV, str(tmp_path / "cache"))
    monkeypatch.setattr(ett, "_ETT_URL", etth1_csv.resolve().as_uri().replace("ETTh1", "{name}"))
    monkeypatch.setitem(ett.ETT_SHA256, "ETTh1", files.sha256(etth1_csv))  # the real file's, for this one
    series = ett.load_ett("ETTh1", "S")
    assert (tmp_path / "cache" / "ETTh1.csv").read_bytes() == etth1_csv.read_bytes()
    assert series.values.shape == (ROWS, 1)


def test_download_with_wrong_checksum_is_refused(tmp_path, monkeypatch):
    source = _write(tmp_path, _good_csv(), "ETTh1.csv")
    monkeypatch.delenv(files.DATA_DIR_ENV, raising=False)
    monkeypatch.setenv(files.CACHE_DIR_ENV, str(tmp_path / "cache"))
    monkeypatch.setattr(ett, "_ETT_URL", source.resolve().as_uri().replace("ETTh1", "{name}"))
    with pytest.raises(DataError, match="sha256"):
        ett.load_ett("ETTh1")
    assert not (tmp_path / "cache" / "ETTh1.csv").exists()
