"""Part 2's report: summaries over seeds, the markdown tables with the published rows of the same
dataset and lookback beside ours, the paired hybrid vs seq2seq account, and the attention figure."""

from pathlib import Path

import numpy as np

from seqattn import published
from seqattn.data.windows import ForecastData
from seqattn.io import atomic_path
from seqattn.models.forecaster import Forecaster
from seqattn.report import markdown_table, mean_std


def summarise(runs: list[dict]) -> list[dict]:
    """Mean and std over seeds per (dataset, features, L, H, model)."""
    groups = {}
    for run in runs:
        key = (run["dataset"], run["features"], run["lookback"], run["horizon"], run["model"])
        groups.setdefault(key, []).append(run)
    summary = []
    for (dataset, features, lookback, horizon, model), group in groups.items():
        row = {"dataset": dataset, "features": features, "lookback": lookback, "horizon": horizon,
               "model": model, "seeds": [r["seed"] for r in group],
               "mse": mean_std([r["mse"] for r in group]), "mae": mean_std([r["mae"] for r in group]),
               "train_time_s": mean_std([r["train_time_s"] for r in group])}
        if "valid_prediction_time" in group[0]:
            row["valid_prediction_time"] = mean_std([r["valid_prediction_time"] for r in group])
        if "normalised_span" in group[0]:
            row["attention_span_steps"] = mean_std([r["attention_span_steps"] for r in group])
            row["normalised_span"] = mean_std([r["normalised_span"] for r in group])
        summary.append(row)
    return summary


def published_for(dataset: str, features: str, lookbacks: list[int]) -> dict:
    """The published rows a report may show for our runs: measured on this dataset, multivariate
    (every published row is 'M'), split into those at one of our lookbacks and the others."""
    if features != "M":
        return {"same_lookback": [], "other": []}
    rows = published.forecast_rows(dataset)
    return {"same_lookback": [r.as_dict() for r in rows if r.lookback in lookbacks],
            "other": [r.as_dict() for r in rows if r.lookback not in lookbacks]}


def _pm(stat: dict) -> str:
    return f"{stat['mean']:.3f} ± {stat['std']:.3f}"


def _published_table(rows: list[dict], horizons: list[int]) -> str:
    def label(row):
        return row["label"] + (f" (L={row['lookback']})" if row["lookback"] else "")

    table = [[label(r), *(f"{r['mse'][h]:.3f}" if h in r["mse"] else "–" for h in horizons)] for r in rows]
    return markdown_table(["published MSE", *(f"H={h}" for h in horizons)], table)


def _paired_lines(paired: list[dict]) -> list[str]:
    lines = ["## Where attention helps: hybrid vs seq2seq, paired", "",
             "Same seeds, same test windows; relative change of the hybrid's MSE against seq2seq "
             "(negative: attention helps) with its 95% bootstrap interval over seeds and blocks of H "
             "windows. Attention Span: the mean lag, in steps, of the hybrid's attention; normalised, "
             "divided by the span of uniform attention over its keys (1: no preference in lag).", ""]
    table = [[p["dataset"], p["lookback"], p["horizon"], p["keys"], f"{p['mean_a']:.3f}", f"{p['mean_b']:.3f}",
              f"{100 * p['relative']:+.1f}% [{100 * p['relative_low']:+.1f}, {100 * p['relative_high']:+.1f}]",
              f"{p['attention_span_steps']:.0f}", f"{p['normalised_span']:.2f}"] for p in paired]
    headers = ["dataset", "L", "H", "keys", "hybrid MSE", "seq2seq MSE", "change [95% CI]", "span (steps)",
               "normalised span"]
    return lines + [markdown_table(headers, table), ""]


def results_markdown(summary: list[dict], ablation: list[dict], models: tuple[str, ...], context: str,
                     selections: dict, paired: list[dict]) -> str:
    lines = ["# Part 2: forecasting results", "",
             "Test split, errors on standardised values, mean ± std over seeds "
             f"(std 0 with one seed). Produced by `seqattn forecast`; {context}.", ""]
    blocks = {}
    for row in summary:
        blocks.setdefault((row["dataset"], row["features"], row["lookback"]), []).append(row)
    lookbacks = {}
    for dataset, features, lookback in blocks:
        lookbacks.setdefault((dataset, features), []).append(lookback)
    sources = {}
    for (dataset, features, lookback), rows in blocks.items():
        chaotic_block = "valid_prediction_time" in rows[0]
        lines += [f"## {dataset}, features {features}, lookback L={lookback}", ""]
        headers = ["H", "model", "MSE", "MAE"] + (["valid pred. time"] if chaotic_block else []) + ["train s", "seeds"]
        table = []
        for row in sorted(rows, key=lambda r: (r["horizon"], models.index(r["model"]))):
            cells = [row["horizon"], row["model"], _pm(row["mse"]), _pm(row["mae"])]
            if chaotic_block:
                cells.append(_pm(row["valid_prediction_time"]))
            cells += [f"{row['train_time_s']['mean']:.0f}", len(row["seeds"])]
            table.append(cells)
        lines += [markdown_table(headers, table), ""]
        chosen = [s for s in selections.values() if (s["dataset"], s["lookback"]) == (dataset, lookback)]
        for s in chosen:
            scores = ", ".join(f"{label} {value:.4f}" for label, value in s["scores"].items())
            lines += [f"Options of the hybrid and seq2seq chosen on the validation windows at H={s['horizon']} "
                      f"({s['validation_windows']} windows, {s['model']}, seed {s['seed']}, validation MSE): "
                      f"**{s['chosen']}** {s['options']}; candidates: {scores}.", ""]
        horizons = sorted({r["horizon"] for r in rows})
        same = published_for(dataset, features, [lookback])["same_lookback"]
        if same:
            lines += [f"Published at the same lookback (multivariate {dataset}, on the standard splits; not run here):", "",
                      _published_table(same, horizons), ""]
            sources.update({r["label"]: r["source"] for r in same})
    for (dataset, features), ours in lookbacks.items():
        other = published_for(dataset, features, ours)["other"]
        if other:
            horizons = sorted({r["horizon"] for r in summary if r["dataset"] == dataset})
            lines += [f"## Published at other lookbacks (multivariate {dataset}; not run here)", "",
                      _published_table(other, horizons), ""]
            sources.update({r["label"]: r["source"] for r in other})
    if sources:
        lines += ["Sources:", ""] + [f"- {name}: {source}" for name, source in sources.items()] + [""]
    if paired:
        lines += _paired_lines(paired)
    if ablation:
        lines += ["## Ablation of the hybrid's design choices (one seed, short training)", ""]
        table = [[a["variant"], a["dataset"], a["lookback"], a["horizon"], f"{a['mse']:.3f}", f"{a['mae']:.3f}",
                  a["epochs_run"], f"{a['train_time_s']:.0f}"] for a in ablation]
        lines += [markdown_table(["variant", "dataset", "L", "H", "MSE", "MAE", "epochs", "train s"], table), ""]
    return "\n".join(lines).rstrip("\n") + "\n"


def plot_forecast_attention(path: Path, model: Forecaster, data: ForecastData, summary: dict, window: int, title: str):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    x = data.x["test"][window : window + 1]
    pred, weights = model.attention_weights(x)  # (1, H, C), (1, G, nh, N_out, N_in)
    channel = data.channels - 1  # the target (OT) is the last column
    group = min(channel, weights.shape[1] - 1)
    heat = weights[0, group].mean(axis=0)  # (N_out, N_in), mean over heads
    w, k, lookback, horizon = model.segment, model.key_segment, data.lookback, data.horizon

    fig, axes = plt.subplots(2, 2, figsize=(13, 9))
    ax = axes[0, 0]
    im = ax.imshow(heat, aspect="auto", origin="lower", cmap="viridis",
                   extent=(0, lookback, 0, horizon))
    ax.set_xlabel("lookback position (step)")
    ax.set_ylabel("decoder step (forecast step)")
    ax.set_title(f"attention, test window {window}, channel {data.series.columns[channel]}\n"
                 f"(mean over {weights.shape[2]} heads; keys are segments of {k} steps)")
    fig.colorbar(im, ax=ax, label="attention weight")

    ax = axes[0, 1]
    mass = np.asarray(summary["mass_per_lookback_segment"])
    lag = lookback - (np.arange(len(mass)) + 0.5) * k  # centre of each key segment, steps before the origin
    ax.bar(lag, mass, width=0.8 * k, color="tab:blue")
    ax.set_xlim(lookback, 0)
    ax.set_xlabel("lag before the forecast origin (steps; segment centres)")
    ax.set_ylabel("mean attention weight")
    ax.set_title(f"attention over lags\n(mean over the first {summary['windows']} test windows, decoder steps, "
                 "heads, channels)")

    ax = axes[1, 0]
    span = np.asarray(summary["span_per_decoder_step"])
    steps = (np.arange(len(span)) + 0.5) * w  # centre of each decoder segment
    ax.plot(steps, span, "o-", label="attention span (mean lag to the attended segment)")
    ax.plot(steps, summary["uniform_span_per_decoder_step"], "--", color="grey", label="uniform attention")
    ax.set_xlim(0, horizon)
    ax.set_xlabel("decoder step (forecast step; segment centres)")
    ax.set_ylabel("span (steps)")
    ax.set_title(f"Attention Span per decoder step\n(overall {summary['span_steps']:.1f} steps, "
                 f"normalised {summary['normalised_span']:.2f})")
    ax.legend()

    ax = axes[1, 1]
    truth_past = x[0, :, channel]
    truth_future = data.y["test"][window, :, channel]
    t_past = np.arange(-lookback, 0)
    t_future = np.arange(horizon)
    ax.plot(t_past, truth_past, color="black", label="lookback")
    ax.plot(t_future, truth_future, color="black", alpha=0.5, label="truth")
    ax.plot(t_future, pred[0, :, channel], color="tab:red", label="hybrid forecast")
    ax.axvline(0, color="grey", lw=0.8)
    ax.set_xlabel("step relative to the forecast origin")
    ax.set_ylabel(f"{data.series.columns[channel]} (standardised)")
    ax.set_title("forecast vs truth")
    ax.legend()
    fig.suptitle(title)
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=110, format="png")
    plt.close(fig)
