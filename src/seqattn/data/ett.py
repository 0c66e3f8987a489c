"""ETT hourly (ETTh1, ETTh2) and a user's own CSV, read and validated into a `Series`.

ETT: Electricity Transformer Temperature (Zhou et al., 2021, Informer), from the ETDataset
repository (github.com/zhouhaoyi/ETDataset). Columns `date,HUFL,HULL,MUFL,MULL,LUFL,LULL,OT`,
hourly; the target is OT. Borders of the standard protocol: 12/4/4 months of 30 days, i.e.
train [0, 8640), val up to 11520, test up to 14400 (see `seqattn.data.windows`).

A user's CSV (`csv:PATH`) needs a `date` column, in increasing order, and numeric columns; it is
split 70/10/20 like Time-Series-Library's custom datasets, and its target is `OT` when present,
otherwise the last column. Any bad cell is reported once, naming file, line and column.
"""

import csv
from pathlib import Path

import numpy as np
import pandas as pd

from seqattn.data.files import fetch
from seqattn.data.windows import Series, fraction_borders
from seqattn.errors import DataError

ETT_COLUMNS = ("HUFL", "HULL", "MUFL", "MULL", "LUFL", "LULL", "OT")
ETT_TARGET = "OT"
ETT_HOUR_BORDERS = (12 * 30 * 24, 16 * 30 * 24, 20 * 30 * 24)  # 8640, 11520, 14400
_ETT_URL = "https://raw.githubusercontent.com/zhouhaoyi/ETDataset/main/ETT-small/{name}.csv"
ETT_SHA256 = {
    "ETTh1": "c69fb1663c451b032ae24f677ecf4e37431d02d28b30970c8733b06b296acefb",
    "ETTh2": None,  # no verified copy at hand to take a checksum from
}
FEATURES = ("M", "S")


def read_csv(path: str | Path, required: tuple[str, ...] = ()) -> tuple[np.ndarray, tuple[str, ...]]:
    """Read a dated numeric CSV: (T, C) float64 values and the C column names (date excluded).

    Raises DataError naming file, line (1 = header) and column for: a missing `date` or required
    column, a short row, an empty/NaN or non-numeric cell, an unparseable or non-increasing date.
    """
    path = Path(path)
    try:
        with open(path, newline="") as f:
            rows = list(csv.reader(f))
    except OSError as err:
        raise DataError(f"{path}: cannot be read ({err.strerror})") from None
    except (csv.Error, UnicodeDecodeError) as err:
        raise DataError(f"{path}: not a readable CSV ({err})") from None
    if not rows:
        raise DataError(f"{path}: empty file")
    header = [name.strip() for name in rows[0]]
    missing = [c for c in ("date", *required) if c not in header]
    if missing:
        raise DataError(f"{path}: line 1: missing column(s) {missing}; header is {header}")
    body = [(line, row) for line, row in enumerate(rows[1:], start=2) if row]  # blank lines skipped
    date_index = header.index("date")
    columns = tuple(c for c in header if c != "date")
    if not columns:
        raise DataError(f"{path}: line 1: no value column besides 'date'")
    values = np.empty((len(body), len(columns)))
    for n, (line, row) in enumerate(body):
        if len(row) != len(header):
            raise DataError(f"{path}: line {line}: {len(row)} fields, the header has {len(header)}")
        cells = row[:date_index] + row[date_index + 1 :]
        for c, (column, cell) in enumerate(zip(columns, cells)):
            try:
                value = float(cell)
            except ValueError:
                what = "empty cell" if not cell.strip() else f"non-numeric value {cell!r}"
                raise DataError(f"{path}: line {line}, column {column!r}: {what}") from None
            if not np.isfinite(value):
                raise DataError(f"{path}: line {line}, column {column!r}: {cell!r} is not a finite number")
            values[n, c] = value
    dates = pd.to_datetime(pd.Series([row[date_index] for _, row in body]), errors="coerce", format="mixed")
    bad_dates = np.flatnonzero(dates.isna().to_numpy())
    if bad_dates.size:
        line, row = body[bad_dates[0]]
        raise DataError(f"{path}: line {line}, column 'date': cannot parse {row[date_index]!r} as a date")
    stamps = dates.to_numpy()
    unordered = np.flatnonzero(stamps[1:] <= stamps[:-1])
    if unordered.size:
        n = unordered[0] + 1
        line, row = body[n]
        raise DataError(
            f"{path}: line {line}, column 'date': {row[date_index]!r} does not come after "
            f"{body[n - 1][1][date_index]!r}; dates must be strictly increasing"
        )
    return values, columns


def _select_features(series: Series, features: str, target: str) -> Series:
    if features not in FEATURES:
        raise DataError(f"features must be one of {FEATURES}; got {features!r}")
    return series if features == "M" else series.select([target])


def load_ett(name: str = "ETTh1", features: str = "M", path: str | Path | None = None) -> Series:
    """ETTh1 or ETTh2 from `path`, the data folder, the cache or its public URL."""
    if name not in ETT_SHA256:
        raise DataError(f"unknown ETT dataset {name!r}; choose one of {sorted(ETT_SHA256)}")
    if path is None:
        path = fetch(f"{name}.csv", url=_ETT_URL.format(name=name), expected_sha256=ETT_SHA256[name])
    values, columns = read_csv(path, required=ETT_COLUMNS)
    index = [columns.index(c) for c in ETT_COLUMNS]
    if len(values) < ETT_HOUR_BORDERS[-1]:
        raise DataError(
            f"{path}: {len(values)} data rows; the ETT-hour protocol needs {ETT_HOUR_BORDERS[-1]}"
        )
    series = Series(name, values[:, index], ETT_COLUMNS, ETT_HOUR_BORDERS, time_step=1.0)
    return _select_features(series, features, ETT_TARGET)


def load_csv(path: str | Path, features: str = "M") -> Series:
    """A user's own dated CSV, split 70/10/20; target OT if present, else the last column."""
    values, columns = read_csv(path)
    target = ETT_TARGET if ETT_TARGET in columns else columns[-1]
    series = Series(Path(path).name, values, columns, fraction_borders(len(values)), time_step=1.0)
    return _select_features(series, features, target)
