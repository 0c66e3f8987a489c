"""Part 2: build, train and evaluate one model; choose options on validation windows only; the
hybrid's Attention Span; the paired hybrid vs seq2seq comparison.

Two paths read the windows, and only one of them the test split:
- `select_options` (the choices: each case's key segment, loss, normalisation or channel mixing)
  is handed `validation_windows(data)`,
  which holds the training and validation windows and nothing else, and scores every candidate
  on the validation windows;
- `train_and_evaluate` (the table) trains on the training windows, stops early on the validation
  windows, and reads the test windows once, for the metrics it reports.
"""

import json
import math
from dataclasses import replace
from pathlib import Path

import keras
import numpy as np

from seqattn import tracking, training
from seqattn.data.windows import ForecastData
from seqattn.experiments.common import config_tag
from seqattn.io import atomic_path, write_json_atomic
from seqattn.metrics import forecast as fm
from seqattn.metrics.attention import span_metrics
from seqattn.metrics.paired import paired_bootstrap
from seqattn.models.baselines import DLinear, RepeatLast, seq2seq_rnn
from seqattn.models.forecaster import Forecaster
from seqattn.progress import progress

PART = "forecast"
CHAOTIC = ("mackey-glass", "lorenz")
TRAINING_SPLITS = ("train", "val")
_TRAINED_MODEL = "model.keras"  # a selection candidate's trained model, in its folder


# ----------------------------------------------------------------------------- models


def segments(config, lookback: int, horizon: int, overrides: dict) -> tuple[int, int]:
    """Output segment w = gcd(asked w, H) and key segment k = gcd(asked k, L): divisors of H and L."""
    segment = overrides.get("segment", config.segment)
    key_segment = overrides.get("key_segment", config.key_segment) or segment
    return math.gcd(segment, horizon), math.gcd(key_segment, lookback)


def build_model(name: str, config, lookback: int, horizon: int, **overrides):
    """A compiled model by name; `overrides` change hybrid/seq2seq options (ablations, selection)."""
    if name == "repeat":
        model = RepeatLast(horizon)
    elif name == "dlinear":
        model = DLinear(horizon)
    else:
        options = dict(rnn=config.rnn, units=config.units, num_heads=config.num_heads, decoding=config.decoding,
                       normalisation=config.normalisation, channel_independent=config.channel_independent,
                       dropout=config.dropout)
        options.update({k: v for k, v in overrides.items() if k not in ("segment", "key_segment", "loss")})
        options["segment"], options["key_segment"] = segments(config, lookback, horizon, overrides)
        model = seq2seq_rnn(horizon, **options) if name == "seq2seq" else Forecaster(horizon, **options)
    lr = config.dlinear_learning_rate if name == "dlinear" else config.learning_rate
    loss = overrides.get("loss", config.loss) if name in ("hybrid", "seq2seq") else "mse"
    model.compile(optimizer=keras.optimizers.Adam(lr), loss=loss)
    return model


def fit(model, name: str, data: ForecastData, config, seed: int, state_dir: Path, epochs: int,
        verbose) -> tuple[int, float]:
    """Train on the training windows, early stopping on the validation windows; the epochs run and
    the seconds they took, both counted over resumes."""
    if name == "repeat":
        return 0, 0.0
    batch_size, patience, callbacks = config.batch_size, config.patience, []
    if name == "dlinear":  # its own recipe; `epochs` is the recurrent models' budget
        epochs, batch_size, patience = config.dlinear_epochs, config.dlinear_batch_size, config.dlinear_patience
        rate = config.dlinear_learning_rate
        callbacks.append(keras.callbacks.LearningRateScheduler(lambda epoch: rate * 0.5**epoch))
    history = training.fit(
        model, data.x["train"], data.y["train"], epochs=epochs, state_dir=state_dir, seed=seed,
        batch_size=batch_size, shuffle=True, verbose=verbose,
        validation_data=(data.x["val"], data.y["val"]),
        callbacks=[keras.callbacks.EarlyStopping(patience=patience, restore_best_weights=True), *callbacks],
    )
    # history.epoch counts the epochs before a resume too; so does the clock of training.fit
    return history.epoch[-1] + 1, training.train_seconds(state_dir)


def predict(model, x: np.ndarray, desc: str, batch_size: int = 256) -> np.ndarray:
    """`model.predict` batch by batch under a progress bar (Keras's own bar would fill CI logs)."""
    starts = range(0, len(x), batch_size)
    return np.concatenate([model.predict_on_batch(x[i : i + batch_size]) for i in progress(starts, desc, unit="batch")])


# ----------------------------------------------------------------------------- choosing on validation


def validation_windows(data: ForecastData) -> ForecastData:
    """The same windows without the test split: what a choice may read."""
    return replace(data, x={s: data.x[s] for s in TRAINING_SPLITS}, y={s: data.y[s] for s in TRAINING_SPLITS},
                   rows={s: data.rows[s] for s in TRAINING_SPLITS})


def select_options(name: str, windows: ForecastData, candidates: dict[str, dict], config, seed: int,
                   state_dir: Path, verbose, refinements: dict[str, dict] | None = None) -> dict:
    """Train `name` once per candidate on the training windows and keep the candidate with the lowest
    validation MSE. `windows` must come from `validation_windows`: there is no test split to read.
    Each refinement (an option change) is then tried on the winning candidate alone, one run each
    rather than a grid over every candidate, and kept if its validation MSE is lower still.

    Returns {"chosen": label, "options": {...}, "metric": "val_mse", "scores": {label: val MSE}, ...};
    cached in `state_dir/selection.json`.
    """
    if "test" in windows.x or "test" in windows.y:
        raise ValueError("select_options is given the test windows; pass validation_windows(data)")
    done = state_dir / "selection.json"
    if done.is_file():
        return json.loads(done.read_text())
    tried = dict(candidates)
    scores = {label: _validation_mse(name, windows, options, config, seed, state_dir, verbose)
              for label, options in candidates.items()}
    best = min(scores, key=scores.get)
    for label, change in (refinements or {}).items():
        refined = f"{best} and {label}"
        tried[refined] = candidates[best] | change
        scores[refined] = _validation_mse(name, windows, tried[refined], config, seed, state_dir, verbose)
    chosen = min(scores, key=scores.get)
    selection = {"model": name, "chosen": chosen, "options": tried[chosen], "metric": "val_mse",
                 "scores": scores, "candidates": tried, "seed": seed,
                 "validation_windows": int(len(windows.x["val"]))}
    write_json_atomic(done, selection)
    return selection


def candidate_folder(state_dir: Path, options: dict) -> Path:
    """Where `select_options(..., state_dir=state_dir)` trained the candidate with `options`."""
    return state_dir / config_tag(options)


def _validation_mse(name: str, windows: ForecastData, options: dict, config, seed: int, state_dir: Path,
                    verbose) -> float:
    """Validation MSE of `name` trained with `options`; cached in a folder of `state_dir` per option set,
    beside the trained model and its epochs, which the table's run with the same options and seed reuses
    (`train_and_evaluate(..., trained=folder)`)."""
    folder = candidate_folder(state_dir, options)
    run_name = f"select-{windows.series.name}-L{windows.lookback}-H{windows.horizon}-{name}-{config_tag(options)}"
    record = folder / "score.json"
    if not record.is_file():
        keras.utils.set_random_seed(seed)
        config_log = {"model": name, "dataset": windows.series.name, "lookback": windows.lookback,
                      "horizon": windows.horizon, "purpose": "selection on validation", **options}
        with training.resumable_run(PART, run_name, folder, nested=True, config=config_log, seed=seed) as run:
            model = build_model(name, config, windows.lookback, windows.horizon, **options)
            epochs_run, _ = fit(model, name, windows, config, seed, folder, config.epochs, verbose)
            val_mse = fm.mse(predict(model, windows.x["val"], f"{run_name}: validation windows"), windows.y["val"])
            tracking.log_metrics({"val_mse": val_mse})
        with atomic_path(folder / _TRAINED_MODEL, suffix=".keras") as tmp:
            model.save(tmp)
        write_json_atomic(record, {"val_mse": val_mse, "seed": seed, "options": options, "epochs": config.epochs,
                                   "epochs_run": epochs_run, "mlflow_run_id": run.info.run_id})
    return json.loads(record.read_text())["val_mse"]


def trained_candidate(folder: Path, seed: int, options: dict, epochs: int):
    """The model a selection trained in `folder` with `seed`, `options` and at most `epochs` epochs,
    with its record (`score.json`: epochs run, MLflow run id); None when the folder holds no such
    model (a selection from before models were kept). The folder's tag (`candidate_folder` under a
    state folder tagged by the config) stands for the rest: data, lookback, horizon, recipe."""
    record = folder / "score.json"
    if not (record.is_file() and (folder / _TRAINED_MODEL).is_file()):
        return None
    score = json.loads(record.read_text())
    if (score.get("seed"), score.get("options"), score.get("epochs")) != (seed, options, epochs):
        return None
    return keras.models.load_model(folder / _TRAINED_MODEL), score


# ----------------------------------------------------------------------------- one run


def evaluate(pred: np.ndarray, data: ForecastData, chaotic_series: bool) -> dict:
    true = data.y["test"]
    metrics = {"mse": fm.mse(pred, true), "mae": fm.mae(pred, true)}
    steps = fm.per_step_errors(pred, true)
    metrics["mse_per_step"] = steps["mse"].tolist()
    metrics["mae_per_step"] = steps["mae"].tolist()
    if chaotic_series:
        # Normalised by each channel's std over the test rows (on the scale the model sees).
        start, end = data.rows["test"]
        scale = data.scaler.transform(data.series.values[start:end]).std(axis=0)
        per_window = fm.nrmse_per_step(pred, true, scale=scale, per_window=True)  # (N, H)
        metrics["nrmse_per_step"] = fm.nrmse_per_step(pred, true, scale=scale).tolist()
        metrics["valid_prediction_time"] = float(
            np.mean(fm.valid_prediction_time(per_window, dt=data.series.time_step))
        )
    return metrics


def log_evaluation(metrics: dict) -> None:
    """Test metrics of one run: scalars as `test_<name>`, per-step lists as curves over horizon steps 1..H."""
    tracking.log_metrics({f"test_{k}": v for k, v in metrics.items() if np.isscalar(v)})
    for name, curve in metrics.items():
        if name.endswith("_per_step"):
            tracking.log_curve(f"test_{name}", curve, first_step=1)


def log_attention(summary: dict) -> None:
    """The hybrid's Attention Span: scalars (steps, normalised, per head) and curves over segments."""
    tracking.log_metrics(summary["metrics"])
    tracking.log_curve("attention_span_per_decoder_segment", summary["span_per_decoder_step"], first_step=1)
    tracking.log_curve("attention_mass_per_lookback_segment", summary["mass_per_lookback_segment"], first_step=1)


def train_and_evaluate(name, data, config, seed, state_dir, run_name, epochs, verbose, trained=None,
                       **overrides) -> tuple:
    """Train one model for one seed inside a nested MLflow run; cached in `state_dir/run.json`.

    `trained`: a selection's candidate folder (`candidate_folder`) that trained this model, with these
    options, this seed and these epochs, on the same training windows; its model is evaluated instead of
    training the same one again (the record says `"trained_in": "selection"` with that run's MLflow id
    as `trained_in_run`, where its training curves are, and counts that training's seconds).
    The record holds the run's id, and for a hybrid with attention its Attention Span; the MSE of
    every test window is kept beside it (`window_mse.npy`) for the paired comparison.
    """
    done = state_dir / "run.json"
    model_file = state_dir / "model.keras"
    if done.is_file():
        record = json.loads(done.read_text())
        model = keras.models.load_model(model_file) if model_file.is_file() else None
        print(f"  {run_name}: finished earlier, read from {done}")
        return record, model
    keras.utils.set_random_seed(seed)
    reused = trained_candidate(trained, seed, overrides, epochs) if trained is not None else None
    trained_in = {"trained_in": "this run"}
    if reused is not None:  # its training curves are in the selection's MLflow run
        trained_in = {"trained_in": "selection", "trained_in_run": reused[1]["mlflow_run_id"]}
    run_config = {"model": name, "dataset": data.series.name, "lookback": data.lookback,
                  "horizon": data.horizon, "epochs": epochs, **overrides, **trained_in}
    with training.resumable_run(PART, run_name, state_dir, nested=True, config=run_config, seed=seed) as run:
        if reused is not None:
            model, epochs_run, train_time = reused[0], reused[1]["epochs_run"], training.train_seconds(trained)
        else:
            model = build_model(name, config, data.lookback, data.horizon, **overrides)
            epochs_run, train_time = fit(model, name, data, config, seed, state_dir, epochs, verbose)
        pred = predict(model, data.x["test"], f"{run_name}: test windows")
        metrics = evaluate(pred, data, data.series.name in CHAOTIC)
        np.save(state_dir / "window_mse.npy", np.mean((pred - data.y["test"]) ** 2, axis=(1, 2)))
        log_evaluation(metrics)
        tracking.log_metrics({"train_time_s": train_time, "epochs_run": epochs_run})
        span = {}
        if isinstance(model, Forecaster) and model.use_attention:
            attention = attention_summary(model, data)
            log_attention(attention)
            span = {"attention_span_steps": attention["span_steps"], "normalised_span": attention["normalised_span"],
                    "key_segment": attention["key_segment"]}
    record = {"model": name, "seed": seed, "options": overrides, "train_time_s": train_time, "epochs_run": epochs_run,
              **trained_in,
              "parameters": int(model.count_params()), "mlflow_run_id": run.info.run_id, **metrics, **span}
    if isinstance(model, Forecaster) and model.use_attention:
        model.save(model_file)
        tracking.log_artifact(model_file, run_id=run.info.run_id)
    write_json_atomic(done, record)
    return record, model


# ----------------------------------------------------------------------------- attention


def attention_summary(model: Forecaster, data: ForecastData, n_windows: int = 256) -> dict:
    """Attention over lookback (key) segments, averaged over the first `n_windows` test windows, heads
    and channels.

    Lag of decoder segment j to key segment i, in steps, centre to centre: L + (j + 1/2) w -
    (i + 1/2) k, with w steps per output segment and k per key. The Attention Span is the mean lag
    under the weights; normalised, it is divided by the span of uniform weights over the L/k keys
    (1: attention no more selective in lag than an average; below 1: nearer keys preferred).
    The normalised span is a ratio per decoder segment, then averaged: the uniform span grows with
    the segment's distance into the horizon (L=96, H=720, 24-step segments: from 60 to 756 steps),
    and a ratio of the means would be set by the far segments alone. `seqattn.metrics.attention`
    takes the ratio of the means instead, over a causal history where every query's keys start at
    the same frame.
    """
    x = data.x["test"][:n_windows]
    _, weights = model.attention_weights(x)  # (B, G, nh, N_out, N_in)
    w, k = model.segment, model.key_segment
    n_out, n_in = weights.shape[-2:]
    lags = data.lookback + (np.arange(n_out)[:, None] + 0.5) * w - (np.arange(n_in)[None, :] + 0.5) * k  # (N_out, N_in)
    weights = weights.astype(np.float64)
    span = np.sum(weights * lags, axis=-1)  # (B, G, nh, N_out)
    uniform_span = lags.mean(axis=-1)  # (N_out,)
    logs = np.log(np.where(weights > 0, weights, 1.0))
    entropy = -np.sum(weights * logs, axis=-1)  # (B, G, nh, N_out)
    per_head = {"span": span.mean(axis=(0, 1, 3)).tolist(),
                "normalised_span": (span / uniform_span).mean(axis=(0, 1, 3)).tolist(),
                "entropy": entropy.mean(axis=(0, 1, 3)).tolist()}
    report = {"layers": {"decoder": per_head}, "span": float(span.mean()),
              "normalised_span": float((span / uniform_span).mean()), "entropy": float(entropy.mean())}
    mean = weights.mean(axis=(0, 1, 2))  # (N_out, N_in)
    return {
        "segment": w,
        "key_segment": k,
        "keys": int(n_in),
        "span_steps": report["span"],
        "normalised_span": report["normalised_span"],
        "entropy_nats": report["entropy"],
        "uniform_entropy_nats": float(np.log(n_in)),
        "windows": int(len(x)),
        "span_per_decoder_step": span.mean(axis=(0, 1, 2)).tolist(),
        "uniform_span_per_decoder_step": uniform_span.tolist(),
        "mass_per_lookback_segment": mean.mean(axis=0).tolist(),
        "mean_weights": mean.tolist(),
        "metrics": span_metrics(report),  # for tracking: span in steps, normalised, per head
    }


# ----------------------------------------------------------------------------- paired comparison


def paired_comparison(a: dict[int, np.ndarray], b: dict[int, np.ndarray], horizon: int) -> dict:
    """Model A vs model B on the same test windows, seed by seed: a[seed], b[seed] are per-window MSE.

    Windows one step apart share all but one target step, so they are not independent samples:
    the bootstrap resamples blocks of at least H consecutive windows, whose targets do not overlap
    from one block start to the next, and seeds. Every window is in a block (the windows rarely
    divide into whole blocks of H: 2,545 at H=336 on ETTh1), and a block counts by its summed
    error, scaled so that the mean over blocks is the mean over windows that the tables report.
    """
    seeds = sorted(set(a) & set(b))
    windows = len(a[seeds[0]])
    n_blocks = max(windows // horizon, 1)

    def blocks(values):
        return np.array([block.sum() for block in np.array_split(np.asarray(values, float), n_blocks)]) * n_blocks / windows

    result = paired_bootstrap([blocks(a[s]) for s in seeds], [blocks(b[s]) for s in seeds])
    return {**result.__dict__, "seeds_compared": seeds, "block_windows": horizon}


def case_of(run: dict) -> tuple:
    return run["dataset"], run["features"], run["lookback"], run["horizon"]


def compare_hybrid_seq2seq(runs: list[dict], window_files: dict) -> list[dict]:
    """Hybrid vs seq2seq on the same windows and seeds, per (dataset, L, H), with the hybrid's span;
    `window_files` maps (case, model, seed) to the run's per-window test MSE (.npy)."""
    cases = {}
    for run in runs:
        if run["model"] in ("hybrid", "seq2seq"):
            errors = np.load(window_files[(case_of(run), run["model"], run["seed"])])
            cases.setdefault(case_of(run), {}).setdefault(run["model"], {})[run["seed"]] = (run, errors)
    paired = []
    for (dataset, features, lookback, horizon), models in cases.items():
        if len(models) < 2 or not set(models["hybrid"]) & set(models["seq2seq"]):
            continue
        errors = {name: {seed: e for seed, (_, e) in by_seed.items()} for name, by_seed in models.items()}
        hybrid = [r for r, _ in models["hybrid"].values()]
        paired.append({"dataset": dataset, "features": features, "lookback": lookback, "horizon": horizon,
                       "a": "hybrid", "b": "seq2seq", **paired_comparison(errors["hybrid"], errors["seq2seq"], horizon),
                       "keys": lookback // hybrid[0]["key_segment"],
                       "attention_span_steps": float(np.mean([r["attention_span_steps"] for r in hybrid])),
                       "normalised_span": float(np.mean([r["normalised_span"] for r in hybrid]))})
    return paired
