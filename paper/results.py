"""Reading the study's results: `<results>/{attention,forecast,video}/results.json` and the Part 3
ablations beside them, and the accessors of Parts 1 and 2 (Part 3's are in `video_results`).

Only the accessors know the results.json layouts; the claims, tables and figures ask them. A
missing file or key is one `DataError` naming the file and the key path, e.g.
`results/video/results.json: missing key 'models.htap.metrics.mse_far', which the paper needs`.
"""

import json
import sys
from dataclasses import dataclass
from pathlib import Path

from seqattn.errors import DataError

PARTS = ("attention", "forecast", "video")
ABLATIONS_DIR = "ablations"


@dataclass(frozen=True)
class Stat:
    """A measurement over seeds: mean, sample std and the number of seeds."""

    mean: float
    std: float
    n: int


@dataclass
class PartResults:
    """One part's results.json and where it came from (for error messages)."""

    data: dict
    path: Path

    def get(self, *keys):
        """data[k1][k2]...; a missing key is a DataError naming the file and the key path."""
        node = self.data
        for i, key in enumerate(keys):
            if isinstance(node, dict) and str(key) in node:
                node = node[str(key)]
            elif isinstance(node, list) and isinstance(key, int) and -len(node) <= key < len(node):
                node = node[key]
            else:
                path = ".".join(str(k) for k in keys[: i + 1])
                raise DataError(f"{self.path}: missing key {path!r}, which the paper needs")
        return node

    def has(self, *keys) -> bool:
        try:
            self.get(*keys)
        except DataError:
            return False
        return True

    def number(self, *keys) -> float:
        """A float at `keys`; anything else is a DataError naming the file and key path."""
        value = self.get(*keys)
        try:
            return float(value)
        except (TypeError, ValueError):
            path = ".".join(str(k) for k in keys)
            raise DataError(f"{self.path}: {path!r} is {value!r}, expected a number") from None

    def stat(self, *keys) -> Stat:
        """A {"mean", "std"} entry at `keys`, with n taken from the part's seeds."""
        return Stat(self.number(*keys, "mean"), self.number(*keys, "std"), len(self.get("seeds")))


def read_part(path: Path) -> PartResults:
    try:
        return PartResults(json.loads(path.read_text()), path)
    except json.JSONDecodeError as err:
        raise DataError(f"{path}: not valid JSON ({err.msg} at line {err.lineno})") from None


def load_results(results_dir: Path) -> dict[str, PartResults]:
    parts = {}
    for part in PARTS:
        path = results_dir / part / "results.json"
        if not path.is_file():
            raise DataError(
                f"{path} not found: the paper needs the results of every part; run "
                f"`python sequence_attention.py --profile paper --out {results_dir}` first"
            )
        parts[part] = read_part(path)
    if not (parts["forecast"].has("selection") and parts["forecast"].has("paired")):
        raise DataError(
            f"{parts['forecast'].path}: missing key 'paired', which the paper needs: this results.json predates "
            f"Part 2's validation-only selection and paired comparison; rerun Part 2 (`python sequence_attention.py "
            f"--profile paper --parts forecast --out {results_dir}`)"
        )
    if not parts["video"].has("windows"):
        raise DataError(
            f"{parts['video'].path}: missing key 'windows', which the paper needs: this results.json predates "
            f"Part 3's evaluation windows; rerun Part 3 (`python sequence_attention.py --profile paper "
            f"--parts video --out {results_dir}`)"
        )
    return parts


def load_video_ablations(results_dir: Path) -> dict[str, PartResults]:
    """Part 3 runs with one option changed, `<results>/ablations/<name>/video/results.json`
    (written by `make paper-results`); none is fine. A run in an older layout than the paper's
    (no `windows`) is left out, with a note on stderr naming it."""
    found = {}
    for path in sorted((results_dir / ABLATIONS_DIR).glob("*/video/results.json")):
        run = read_part(path)
        if not run.has("windows"):
            print(f"paper.build: note: {path} predates the evaluation windows of Part 3 (no 'windows' key); "
                  f"left out of the ablation paragraph until it is rerun", file=sys.stderr)
            continue
        found[path.parents[1].name] = run
    return found


# Part 1 ---------------------------------------------------------------------------------------


def retrieval_metric(attention: PartResults, name: str) -> Stat:
    """A held-out metric of Part 1 over seeds, e.g. "alignment_accuracy", "attention_span"."""
    return attention.stat("summary", name)


def retrieval_config(attention: PartResults, name: str):
    return attention.get("config", name)


# Part 2 ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ForecastRow:
    dataset: str
    features: str
    lookback: int
    horizon: int
    model: str
    mse: Stat
    mae: Stat


def forecast_rows(forecast: PartResults) -> list[ForecastRow]:
    """Every (dataset, features, lookback, horizon, model) the forecast part measured."""
    rows = []
    for i, row in enumerate(forecast.get("summary")):
        try:
            n = len(row["seeds"])
            rows.append(ForecastRow(
                dataset=str(row["dataset"]).lower(), features=str(row["features"]),
                lookback=int(row["lookback"]), horizon=int(row["horizon"]), model=str(row["model"]),
                mse=Stat(float(row["mse"]["mean"]), float(row["mse"]["std"]), n),
                mae=Stat(float(row["mae"]["mean"]), float(row["mae"]["std"]), n),
            ))
        except (KeyError, TypeError, ValueError) as err:
            raise DataError(f"{forecast.path}: summary[{i}] lacks or mangles {err}") from None
    return rows


def forecast_lookbacks(forecast: PartResults) -> list[int]:
    """The lookbacks of the ETT series, in the order the part ran them."""
    return [int(lookback) for lookback in forecast.get("config", "lookbacks")]


def forecast_seeds(forecast: PartResults) -> list:
    return list(forecast.get("config", "seeds"))


def forecast_config(forecast: PartResults, name: str):
    return forecast.get("config", name)


def forecast_valid_prediction_time(forecast: PartResults, dataset: str, model: str = "hybrid") -> Stat | None:
    """Valid prediction time (time units of the series) on a chaotic series, or None if not run."""
    for row in forecast.get("summary"):
        if row.get("dataset") == dataset and row.get("model") == model and "valid_prediction_time" in row:
            vpt = row["valid_prediction_time"]
            return Stat(float(vpt["mean"]), float(vpt["std"]), len(row["seeds"]))
    return None


def forecast_model_label(model: str) -> str:
    return {"repeat": "Repeat", "dlinear": "DLinear", "seq2seq": "RNN (no attention)",
            "hybrid": "RNN + attention"}.get(model, model)


def forecast_ablation(forecast: PartResults) -> list[tuple[str, int, float]]:
    """(variant, horizon, test MSE) of each one-seed ablation of the hybrid; empty if not run."""
    return [(str(a["variant"]), int(a["horizon"]), float(a["mse"])) for a in forecast.data.get("ablation") or []]


def etth1_table_rows(forecast: PartResults, lookback: int) -> tuple[list[str], list[int], dict]:
    """Our multivariate ETTh1 MSE by model and horizon at one lookback: (models, horizons, cells)."""
    rows = [r for r in forecast_rows(forecast) if r.dataset == "etth1" and r.features == "M"]
    if not rows:
        raise DataError(f"{forecast.path}: no multivariate ETTh1 rows (dataset 'etth1', features 'M')")
    rows = [r for r in rows if r.lookback == lookback]
    if not rows:
        raise DataError(f"{forecast.path}: no ETTh1 'M' rows at lookback {lookback}")
    preferred = ["repeat", "dlinear", "seq2seq", "rnn", "hybrid"]
    present = {r.model for r in rows}
    models = [m for m in preferred if m in present] + sorted(present - set(preferred))
    horizons = sorted({r.horizon for r in rows})
    cells = {(r.model, r.horizon): r for r in rows}
    return models, horizons, cells


def etth1_rows_of(forecast: PartResults, model: str = "hybrid") -> dict[int, dict[int, ForecastRow]]:
    """One model's multivariate ETTh1 rows by lookback, then horizon."""
    rows = {}
    for lookback in forecast_lookbacks(forecast):
        _, horizons, cells = etth1_table_rows(forecast, lookback)
        rows[lookback] = {h: cells[(model, h)] for h in horizons if (model, h) in cells}
        if not rows[lookback]:
            raise DataError(f"{forecast.path}: no ETTh1 'M' rows for model {model!r} at lookback {lookback}")
    return rows


@dataclass(frozen=True)
class ForecastPair:
    """The hybrid against the same RNN without attention at one (L, H): the relative change of the
    mean MSE in percent with its 95% bootstrap interval over seeds and `blocks` blocks of H test
    windows per seed, and the hybrid's Attention Span (steps and normalised, mean over seeds) over
    its `keys` encoder segments."""

    pct: float
    low: float
    high: float
    keys: int
    span: float
    normalised_span: float
    blocks: int


def forecast_pairs(forecast: PartResults) -> dict[tuple[int, int], ForecastPair]:
    """(lookback, horizon) -> the paired hybrid vs seq2seq comparison on multivariate ETTh1."""
    pairs = {}
    for i, p in enumerate(forecast.get("paired")):
        if (p.get("dataset"), p.get("features"), p.get("a"), p.get("b")) != ("etth1", "M", "hybrid", "seq2seq"):
            continue
        key = ("paired", i)
        pairs[(int(forecast.number(*key, "lookback")), int(forecast.number(*key, "horizon")))] = ForecastPair(
            100 * forecast.number(*key, "relative"), 100 * forecast.number(*key, "relative_low"),
            100 * forecast.number(*key, "relative_high"), int(forecast.number(*key, "keys")),
            forecast.number(*key, "attention_span_steps"), forecast.number(*key, "normalised_span"),
            int(forecast.number(*key, "sequences")))
    if not pairs:
        raise DataError(f"{forecast.path}: 'paired' holds no multivariate ETTh1 hybrid vs seq2seq comparison")
    return pairs


@dataclass(frozen=True)
class Selection:
    """The options chosen on validation windows for one lookback and horizon: the candidate with the
    lowest validation MSE of `model` (seed `seed`)."""

    chosen: str
    options: dict
    model: str
    seed: int


def forecast_selections(forecast: PartResults, dataset: str = "etth1") -> dict[tuple[int, int], Selection]:
    """(lookback, horizon) -> the validation-only choice of options on `dataset`; cases with a single
    candidate are absent (there was nothing to choose)."""
    chosen = {}
    for key, s in forecast.get("selection").items():
        if s.get("dataset") != dataset:
            continue
        try:
            case = int(s["lookback"]), int(s["horizon"])
            chosen[case] = Selection(str(s["chosen"]), dict(s["options"]), str(s["model"]), int(s["seed"]))
        except (KeyError, TypeError, ValueError) as err:
            raise DataError(f"{forecast.path}: selection[{key!r}] lacks or mangles {err}") from None
    return chosen


# Across parts ----------------------------------------------------------------------------------


def wall_time_s(part: PartResults) -> float:
    return part.number("wall_time_s")


def training_seconds(part: PartResults) -> float:
    """Time spent training a part's models, summed over models and seeds. A run that gathers models
    trained by other processes records only its own wall time, so Parts 2 and 3 sum what each model
    run recorded (Part 2: `train_time_s` per run; Part 3: each seed's codec and models); Part 1 trains
    in its own run."""
    if part.get("part") == "forecast":
        return float(sum(run["train_time_s"] for run in part.get("runs")))
    if part.get("part") == "video":
        models = part.get("models")
        codec = part.get("codec", "codec_seconds", "per_seed") if part.has("codec") else []
        return float(sum(codec) + sum(sum(m["train_seconds"]["per_seed"]) for m in models.values()))
    return wall_time_s(part)


def environment(part: PartResults, name: str) -> str:
    return str(part.get("environment", name))
