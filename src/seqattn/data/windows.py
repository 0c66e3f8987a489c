"""The forecasting protocol, in one place for every dataset: splits, scaling, sliding windows.

Follows the ETT protocol of Informer (Zhou et al., 2021) and Time-Series-Library (Wu et al.,
2023): a series of T rows is cut at three borders (b_train, b_val, b_test); for lookback L

    train rows [0, b_train)      val rows [b_train - L, b_val)      test rows [b_val - L, b_test)

so the first validation/test window looks back into the previous split but predicts only rows of
its own. A StandardScaler (mean, population std) is fitted on the training rows only and applied
to all splits; errors are measured on the scaled values. Every window is kept (no drop_last): a
split of n rows gives n - L - H + 1 windows (x: rows [s, s+L), y: rows [s+L, s+L+H)).
"""

from dataclasses import dataclass

import numpy as np

from seqattn.errors import DataError

SPLITS = ("train", "val", "test")


@dataclass(frozen=True)
class Series:
    """A multichannel series with its split borders, before scaling.

    Attributes:
        name: what it is, for messages and tables.
        values: (T, C) raw values.
        columns: the C channel names.
        borders: ends (exclusive) of the train, val and test rows; rows after the last are unused.
        time_step: time units per row (valid prediction time is reported in time units).
    """

    name: str
    values: np.ndarray
    columns: tuple[str, ...]
    borders: tuple[int, int, int]
    time_step: float = 1.0

    def select(self, columns: list[str]) -> "Series":
        """The same series restricted to `columns` (e.g. the univariate target)."""
        missing = [c for c in columns if c not in self.columns]
        if missing:
            raise DataError(f"{self.name}: no column(s) {missing}; columns are {list(self.columns)}")
        index = [self.columns.index(c) for c in columns]
        return Series(self.name, self.values[:, index], tuple(columns), self.borders, self.time_step)


def fraction_borders(n_rows: int, train: float = 0.7, test: float = 0.2) -> tuple[int, int, int]:
    """Borders of a 70/10/20 split, as Time-Series-Library's custom-CSV loader cuts them."""
    n_train = int(n_rows * train)
    n_test = int(n_rows * test)
    return n_train, n_rows - n_test, n_rows


class StandardScaler:
    """(x - mean) / std per channel, fitted once; std uses ddof=0 like scikit-learn's."""

    def __init__(self, mean: np.ndarray, std: np.ndarray):
        self.mean = np.asarray(mean, dtype=np.float64)
        self.std = np.asarray(std, dtype=np.float64)

    @classmethod
    def fit(cls, values: np.ndarray) -> "StandardScaler":
        std = values.std(axis=0)
        return cls(values.mean(axis=0), np.where(std > 0, std, 1.0))  # a constant channel stays 0

    def transform(self, values: np.ndarray) -> np.ndarray:
        return (values - self.mean) / self.std

    def inverse_transform(self, values: np.ndarray) -> np.ndarray:
        return values * self.std + self.mean


def split_rows(borders: tuple[int, int, int], lookback: int) -> dict[str, tuple[int, int]]:
    """Row ranges [start, end) of each split for lookback L."""
    b_train, b_val, b_test = borders
    return {"train": (0, b_train), "val": (b_train - lookback, b_val), "test": (b_val - lookback, b_test)}


def n_windows(n_rows: int, lookback: int, horizon: int) -> int:
    return max(n_rows - lookback - horizon + 1, 0)


def sliding_windows(values: np.ndarray, lookback: int, horizon: int) -> tuple[np.ndarray, np.ndarray]:
    """All windows of a (T, C) array: x (N, L, C) and y (N, H, C), read-only views, N = T - L - H + 1."""
    n = n_windows(len(values), lookback, horizon)
    view = np.lib.stride_tricks.sliding_window_view(values, lookback + horizon, axis=0)  # (T-L-H+1, C, L+H)
    view = np.swapaxes(view[:n], 1, 2)  # (N, L+H, C)
    return view[:, :lookback], view[:, lookback:]


@dataclass
class ForecastData:
    """Scaled windows of every split. x[split]: (N, L, C), y[split]: (N, H, C), float32."""

    series: Series
    lookback: int
    horizon: int
    scaler: StandardScaler
    x: dict
    y: dict
    rows: dict  # split -> (start, end) rows of the series

    @property
    def channels(self) -> int:
        return self.series.values.shape[1]


def make_windows(series: Series, lookback: int, horizon: int) -> ForecastData:
    """Apply the protocol: fit the scaler on train rows, scale, cut every split into windows.

    A NaN or infinite value anywhere in the series is a DataError naming its row and column.
    """
    if lookback < 1 or horizon < 1:
        raise DataError(f"lookback and horizon must be positive; got L={lookback}, H={horizon}")
    rows = split_rows(series.borders, lookback)
    if len(series.values) < series.borders[-1]:
        raise DataError(
            f"{series.name}: {len(series.values)} rows, the split borders need {series.borders[-1]}"
        )
    for split, (start, end) in rows.items():
        if start < 0 or end - start < lookback + horizon:
            raise DataError(
                f"{series.name}: too few rows for L + H = {lookback} + {horizon}: the {split} split "
                f"has rows [{max(start, 0)}, {end}), it needs at least {lookback + horizon}"
            )
    bad = np.argwhere(~np.isfinite(series.values))  # a generator that diverged, or a caller's own array
    if bad.size:
        row, column = bad[0]
        raise DataError(f"{series.name}: row {row} (0-based), column {series.columns[column]!r}: "
                        f"{series.values[row, column]} is not a finite number")
    scaler = StandardScaler.fit(series.values[: series.borders[0]])
    scaled = scaler.transform(series.values).astype(np.float32)  # (T, C)
    x, y = {}, {}
    for split, (start, end) in rows.items():
        x[split], y[split] = sliding_windows(scaled[start:end], lookback, horizon)
    return ForecastData(series, lookback, horizon, scaler, x, y, rows)
