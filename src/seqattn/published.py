"""Published numbers the study sets its own against, with their sources: one place for the
forecast report (Part 2), the paper, and OpenSTL's Moving MNIST row (Part 3).

Forecasting rows are multivariate ETT test MSE on standardised values under the standard split
(Informer's 12/4/4 months), as printed in the cited tables. A row belongs to the dataset and
lookback L it was measured at: the report sets it only beside our rows of the same dataset, and
beside our rows of the same L where it has one.
"""

from dataclasses import dataclass, field


@dataclass(frozen=True)
class PublishedForecast:
    """One model's published row: MSE per horizon H on one dataset at one lookback L.

    `key` names it in results.json and the paper; `cite` is its BibTeX key in paper/references.bib;
    `lookback` None where the paper's protocol has no fixed L for the row (Repeat needs none).
    """

    key: str
    label: str
    source: str
    cite: str
    dataset: str
    lookback: int | None
    mse: dict[int, float] = field(default_factory=dict)

    def as_dict(self) -> dict:
        return {"key": self.key, "label": self.label, "source": self.source, "cite": self.cite,
                "dataset": self.dataset, "lookback": self.lookback, "mse": dict(self.mse)}


FORECAST_ROWS = (
    PublishedForecast(
        "repeat", "Repeat",
        "Zeng et al. (2023), Are Transformers Effective for Time Series Forecasting?, AAAI, Table 2",
        "zeng2023transformers", "etth1", None, {96: 1.295, 192: 1.325, 336: 1.323, 720: 1.339}),
    # Informer's horizons are 24, 48, 168, 336, 720: only 336 and 720 coincide with ours.
    PublishedForecast(
        "lstma", "LSTMa", "Zhou et al. (2021), Informer, AAAI, Table 2", "zhou2021informer", "etth1", None,
        {336: 1.424, 720: 1.960}),
    # TimeMixer (Table 13, unified hyperparameters) and iTransformer (Table 10): their appendices' full
    # long-term results at the unified lookback L=96. Checked against transcriptions of those tables
    # (a TimeMixer reproduction's "paper MSE" column; the SegRNN README's L=96 table, whose other rows
    # come from iTransformer), which agree with each other and with both papers' averages (0.447, 0.454).
    PublishedForecast(
        "timemixer", "TimeMixer",
        "Wang et al. (2024), TimeMixer: Decomposable Multiscale Mixing for Time Series Forecasting, ICLR, "
        "Table 13 (L=96)",
        "wang2024timemixer", "etth1", 96, {96: 0.375, 192: 0.429, 336: 0.484, 720: 0.498}),
    PublishedForecast(
        "itransformer", "iTransformer",
        "Liu et al. (2024), iTransformer: Inverted Transformers Are Effective for Time Series Forecasting, ICLR, "
        "Table 10 (L=96)",
        "liu2024itransformer", "etth1", 96, {96: 0.386, 192: 0.441, 336: 0.487, 720: 0.503}),
    # DLinear (L=336) and PatchTST/64 (L=512) as also reprinted side by side in PatchTST's Table 3.
    PublishedForecast(
        "dlinear", "DLinear", "Zeng et al. (2023), AAAI, Table 2", "zeng2023transformers", "etth1", 336,
        {96: 0.375, 192: 0.405, 336: 0.439, 720: 0.472}),
    PublishedForecast(
        "patchtst", "PatchTST/64", "Nie et al. (2023), A Time Series is Worth 64 Words, ICLR, Table 3",
        "nie2023patchtst", "etth1", 512, {96: 0.370, 192: 0.413, 336: 0.422, 720: 0.447}),
    # SegRNN's main multivariate table (L=720) is an image in the paper and its repository, not read
    # here; these are the ETTh1 MSE values an independent reproduction quotes from it and matches by
    # rerunning the official ETTh1 script at L=720 (0.3510, 0.3925, 0.4233, 0.4657). The 0.392 at H=192
    # is the MSE there (the MAE at H=96 happens to be 0.392 too).
    PublishedForecast(
        "segrnn", "SegRNN",
        "Lin et al. (2023), SegRNN: Segment Recurrent Neural Network for Long-Term Time Series Forecasting, "
        "arXiv:2308.11200, Table 2 (L=720)", "lin2023segrnn", "etth1", 720,
        {96: 0.351, 192: 0.392, 336: 0.423, 720: 0.466}),
)


def forecast_rows(dataset: str, lookback: int | None = None) -> list[PublishedForecast]:
    """The rows measured on `dataset` (ETT names as the CLI spells them: etth1), at `lookback` if given."""
    return [row for row in FORECAST_ROWS
            if row.dataset == dataset and (lookback is None or row.lookback == lookback)]


def mse_by_key(dataset: str, keys: tuple[str, ...]) -> dict[str, dict]:
    """Rows by key as the paper's tables read them: {label, cite, mse[, lookback]}."""
    rows = {row.key: row for row in forecast_rows(dataset)}
    table = {}
    for key in keys:
        row = rows[key]
        table[key] = {"label": row.label, "cite": row.cite, "mse": dict(row.mse)}
        if row.lookback is not None:
            table[key]["lookback"] = row.lookback
    return table


# Every ETTh1 row, as the paper reads them (each has an entry in paper/references.bib).
PUBLISHED_ETTH1_MSE = mse_by_key("etth1", tuple(row.key for row in forecast_rows("etth1")))

# OpenSTL's ConvLSTM on Moving MNIST 10 -> 10, per-frame MSE after 200 epochs (Tan et al., 2023).
OPENSTL_CONVLSTM_MSE = 29.80
OPENSTL_CONVLSTM_EPOCHS = 200
