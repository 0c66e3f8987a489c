"""The generated LaTeX tables (booktabs) and the Part 3 ablation paragraph."""

from seqattn.published import PUBLISHED_ETTH1_MSE
from paper.results import (
    PartResults, Stat, etth1_table_rows, forecast_lookbacks, forecast_model_label, forecast_pairs, retrieval_metric,
)
from paper.text import latex_escape, num, pm, signed
from paper.video_results import (
    REFERENCE_LABELS, video_baseline_metric, video_baselines, video_codec_metric, video_config,
    video_change, video_config_changes, video_metric, video_model_label, video_models, video_seed_metric,
    video_window,
)

# Part 3 table columns: (metric key, header, decimals).
VIDEO_COLUMNS = (("mse", "MSE", 1), ("skill", "skill", 3), ("f1", "F1", 3), ("ssim", "SSIM", 3))
VIDEO_TABLE_WINDOWS = ("short", "far")
# Row labels of the references, short enough for a table two windows wide (the caption says more).
TABLE_LABELS = {**REFERENCE_LABELS, "codec": "codec (floor)"}


def table_retrieval(attention: PartResults) -> str:
    """One row: the held-out metrics of Part 1, mean and std over seeds."""
    uniform_entropy = retrieval_metric(attention, "uniform_attention_entropy").mean
    columns = [
        ("answer", "accuracy", "answer_accuracy"),
        ("alignment", "accuracy", "alignment_accuracy"),
        ("Attention Span,", "learned", "attention_span"),
        ("Attention Span,", "correct", "correct_attention_span"),
        ("entropy (nats;", f"uniform {num(uniform_entropy, 3)})", "attention_entropy"),
    ]
    lines = [
        "\\begin{tabular}{" + "c" * len(columns) + "}",
        "\\toprule",
        " & ".join(top for top, _, _ in columns) + " \\\\",
        " & ".join(bottom for _, bottom, _ in columns) + " \\\\",
        "\\midrule",
        " & ".join(pm(retrieval_metric(attention, key), 3) for _, _, key in columns) + " \\\\",
        "\\bottomrule",
        "\\end{tabular}",
    ]
    return "\n".join(lines) + "\n"


def published_row(row: dict, horizons: list[int], lookback: str) -> str:
    cells = [num(row["mse"][h], 3) if h in row["mse"] else "--" for h in horizons]
    return " & ".join([lookback, f"{row['label']}~\\cite{{{row['cite']}}}", *cells]) + " \\\\"


def table_etth1(forecast: PartResults) -> str:
    """One block per lookback L: the hybrid (mean and std over seeds), its change against the same
    RNN without attention with its interval, and the published rows measured at that L; then the
    published rows at lookbacks not run here. Our other models are in the part's results.md; the
    rows without a lookback (Repeat, LSTMa) are in the prose: the Repeat check, the background."""
    lookbacks = forecast_lookbacks(forecast)
    pairs = forecast_pairs(forecast)
    horizons = etth1_table_rows(forecast, lookbacks[0])[1]
    lines = [
        f"\\begin{{tabular}}{{ll{'c' * len(horizons)}}}",
        "\\toprule",
        "$L$ & model & " + " & ".join(f"$H={h}$" for h in horizons) + " \\\\",
    ]
    for lookback in lookbacks:
        cells = etth1_table_rows(forecast, lookback)[2]
        ours = [cells.get(("hybrid", h)) for h in horizons]
        ours = ["--" if c is None else cell(c.mse, 3) if c.mse.n > 1 else num(c.mse.mean, 3) for c in ours]
        lines += ["\\midrule", " & ".join([str(lookback), forecast_model_label("hybrid"), *ours]) + " \\\\"]
        changes = [pairs.get((lookback, h)) for h in horizons]
        if any(changes):
            row = ["", "\\quad vs no attention (\\%)"]
            row += ["--" if c is None else
                    f"{signed(c.pct, 1)} {{\\scriptsize[{signed(c.low, 1)},\\,{signed(c.high, 1)}]}}" for c in changes]
            lines.append(" & ".join(row) + " \\\\")
        lines += [published_row(p, horizons, "") for p in PUBLISHED_ETTH1_MSE.values() if p.get("lookback") == lookback]
    other = [p for p in PUBLISHED_ETTH1_MSE.values() if p.get("lookback") not in (None, *lookbacks)]
    if other:
        lines.append("\\midrule")
        lines += [published_row(p, horizons, str(p["lookback"])) for p in other]
    lines += ["\\bottomrule", "\\end{tabular}"]
    return "\n".join(lines) + "\n"


def video_window_title(video: PartResults, window: str) -> str:
    """"10 -> 10 (frames 11--20)" for the short window, "frames 50--100" otherwise."""
    first, last = video_window(video, window)
    if window == "short":
        return f"{int(video_config(video, 'context'))}\\,$\\to$\\,{last - first + 1} (frames {first}--{last})"
    return f"frames {first}--{last}"


def cell(stat: Stat, decimals: int) -> str:
    """Mean with the std over seeds as a subscript, without its leading zero (0.468$_{\\pm.009}$):
    the table is two windows wide."""
    std = num(stat.std, decimals)
    return f"{num(stat.mean, decimals)}$_{{\\pm{std[1:] if std.startswith('0.') else std}}}$"


def table_video(video: PartResults) -> str:
    """One row per predictor (models, the codec floor, the trivial predictions), one column block
    per window."""
    k = len(VIDEO_COLUMNS)
    header = [f"\\multicolumn{{{k}}}{{c}}{{{video_window_title(video, w)}}}" for w in VIDEO_TABLE_WINDOWS]
    rules = "".join(f"\\cmidrule(lr){{{2 + i * k}-{1 + (i + 1) * k}}}" for i in range(len(VIDEO_TABLE_WINDOWS)))
    lines = [f"\\begin{{tabular}}{{l{'c' * k * len(VIDEO_TABLE_WINDOWS)}}}", "\\toprule",
             " & ".join([""] + header) + " \\\\", rules,
             " & ".join(["predictor"] + [h for _ in VIDEO_TABLE_WINDOWS for _, h, _ in VIDEO_COLUMNS]) + " \\\\",
             "\\midrule"]
    for model in video_models(video):
        cells = [cell(video_metric(video, model, key, w), digits) for w in VIDEO_TABLE_WINDOWS
                 for key, _, digits in VIDEO_COLUMNS]
        lines.append(" & ".join([latex_escape(video_model_label(video, model))] + cells) + " \\\\")
    lines.append("\\midrule")
    if video.has("codec"):
        cells = [cell(video_codec_metric(video, key, w), digits) for w in VIDEO_TABLE_WINDOWS
                 for key, _, digits in VIDEO_COLUMNS]
        lines.append(" & ".join([TABLE_LABELS["codec"]] + cells) + " \\\\")
    for name in video_baselines(video):
        cells = [num(video_baseline_metric(video, name, key, w), digits) for w in VIDEO_TABLE_WINDOWS
                 for key, _, digits in VIDEO_COLUMNS]
        lines.append(" & ".join([TABLE_LABELS.get(name, latex_escape(name))] + cells) + " \\\\")
    lines += ["\\bottomrule", "\\end{tabular}"]
    return "\n".join(lines) + "\n"


ABLATION_WORDS = {
    "max_rollout": lambda v: f"rollouts of up to {v} frames",
    "rnn": lambda v: f"TAP with a convolutional {str(v).upper()} cell",
    "token_patch": lambda v: f"tokens of ${v}\\times{v}$ latent cells",
    "transition_updates": lambda v: f"{v} transition updates",
}


def ablation_label(changes: dict) -> str:
    return " and ".join(ABLATION_WORDS.get(k, lambda v, k=k: f"{latex_escape(k)} = {latex_escape(str(v))}")(v)
                     for k, v in changes.items()) or "no change"


def video_ablation(video: PartResults, ablations: dict[str, PartResults]) -> str:
    """A paragraph setting seed 0 of the paper run against each one-option variant of it."""
    if not ablations:
        return "% No Part 3 ablation in the results folder.\n"
    seed = 0

    def numbers(run: PartResults, over_seeds: bool) -> str:
        """Seed 0's MSEs and far change; with `over_seeds`, also the paired far change over all of the
        run's seeds (the paper run's is in the text already)."""
        short = {m: video_seed_metric(run, m, "mse", "short", seed) for m in ("tap", "htap")}
        far = {m: video_seed_metric(run, m, "mse", "far", seed) for m in ("tap", "htap")}
        change = 100 * (far["htap"] - far["tap"]) / far["tap"]
        paired = video_change(run, "far")
        over_seeds = (f"; over {paired.seeds} seeds {signed(paired.pct, 1)}\\%, 95\\% CI [{signed(paired.low, 1)}, "
                      f"{signed(paired.high, 1)}]" if over_seeds and len(run.get("seeds")) > 1 else "")
        return (f"TAP {num(short['tap'], 1)} and {num(far['tap'], 1)}, H-TAP {num(short['htap'], 1)} and "
                f"{num(far['htap'], 1)} ({signed(change, 1)}\\%{over_seeds})")

    variants = "; ".join(f"{ablation_label(video_config_changes(video, run))}: {numbers(run, over_seeds=True)}"
                         for run in ablations.values())
    short_first, short_last = video_window(video, "short")
    far_first, far_last = video_window(video, "far")
    paper_run = ablation_label({k: video_config(video, k) for k in ("max_rollout", "transition_updates")})
    return (
        f"\\paragraph{{Ablation.}} Seed {seed} rerun with one option changed; MSE on frames "
        f"{short_first}--{short_last} and {far_first}--{far_last} (H-TAP vs TAP on the latter). Paper run, "
        f"{paper_run}: {numbers(video, over_seeds=False)}; {variants}.\n"
    )
