"""The paper's figures, drawn at print size from the numbers and frames the study saved
(results.json and strip.npz), never from pixels of the study's own PNGs.

- `fig_horizon.pdf`: skill per predicted frame of every video model, with the references (the
  codec floor, the last frame held; zero is all-black frames), and H-TAP's Attention Span per
  predicted frame against uniform attention.
- `fig_strip.pdf`: ground truth and every model's rollout of one test sequence at the shown frames.
- `fig_budget.pdf`: the budget curve: far-window skill of TAP and H-TAP at the stage checkpoints,
  and the paired H-TAP vs TAP change with its 95% interval.
"""

import math
from pathlib import Path

import numpy as np

from paper.results import PartResults
from paper.video_results import (
    LATENT_MODELS, Strip, video_baseline_per_frame_mse, video_baselines, video_budget_curve,
    video_codec_per_frame_mse, video_config, video_model_label, video_models, video_per_frame,
    video_predicted_frames, video_span_per_step, video_window,
)
from seqattn.io import atomic_path

COLOURS = {"tap": "tab:blue", "htap": "tab:red", "convlstm": "tab:green"}
TEXT_WIDTH_IN = 5.5  # the NeurIPS text width


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    plt.rcParams.update({"font.size": 8, "font.family": "serif", "pdf.fonttype": 42, "axes.titlesize": 8,
                         "legend.fontsize": 7})
    return plt


def _save(fig, path: Path) -> Path:
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="pdf", dpi=200)
    _pyplot().close(fig)
    return path


def figure_horizon(video: PartResults, path: Path) -> Path:
    """Left: skill per predicted frame (line: mean, band: std over seeds); right: H-TAP's span."""
    plt = _pyplot()
    frames = video_predicted_frames(video)
    fig, (left, right) = plt.subplots(1, 2, figsize=(TEXT_WIDTH_IN, 1.6), gridspec_kw={"width_ratios": [1.35, 1]})
    blank = video_baseline_per_frame_mse(video, "blank")
    for model in video_models(video):
        mean, std = video_per_frame(video, model, "skill")
        colour = COLOURS.get(model)
        left.plot(frames, mean, color=colour, lw=1.2, label=video_model_label(video, model))
        left.fill_between(frames, mean - std, mean + std, color=colour, alpha=0.2, lw=0)
    # Skill of the references from their per-frame MSE: 1 - MSE / MSE(all-black), as the part defines it.
    if video.has("codec"):
        left.plot(frames, 1 - video_codec_per_frame_mse(video) / blank, color="k", ls=":", lw=0.9,
                  label="codec floor")
    left.plot(frames, 1 - video_baseline_per_frame_mse(video, "last_frame") / blank, color="k", ls="--", lw=0.8,
              label="last frame held")
    if "mean_frame" in video_baselines(video):  # results written before this baseline lack it
        left.plot(frames, 1 - video_baseline_per_frame_mse(video, "mean_frame") / blank, color="k", ls=(0, (1, 1)),
                  lw=0.8, label="mean training frame")
    left.axhline(0.0, color="k", lw=0.6)
    far_first, far_last = video_window(video, "far")
    left.axvspan(far_first, far_last, color="0.92", zorder=0)
    train_frames = int(video_config(video, "train_frames"))
    if frames[0] < train_frames < frames[-1]:
        left.axvline(train_frames, color="0.4", lw=0.8)
    left.set_xlabel(f"predicted frame (context: frames 1-{int(video_config(video, 'context'))})")
    left.set_ylabel("skill")
    left.set_xlim(frames[0], frames[-1])

    span_frames, span, uniform = video_span_per_step(video)
    right.plot(span_frames, span, color="tab:red", lw=1.2, label="H-TAP span")
    right.plot(span_frames, uniform, color="0.5", ls="-.", lw=0.8, label="uniform span")
    right.set_xlabel("predicted frame")
    right.set_ylabel("span (frames)")
    right.set_xlim(span_frames[0], span_frames[-1])
    # The legend above both panels, so no curve is hidden whatever the numbers are; in two rows,
    # since one row of eight entries is wider than the page.
    handles = [h for ax in (left, right) for h in ax.get_legend_handles_labels()[0]]
    fig.legend(handles=handles, loc="upper center", ncol=math.ceil(len(handles) / 2), frameon=False, fontsize=6.3,
               handlelength=1.5, handletextpad=0.4, columnspacing=0.8, borderaxespad=0.1)
    fig.tight_layout(pad=0.3, w_pad=1.0, rect=(0, 0, 1, 0.8))
    return _save(fig, path)


def figure_strip(video: PartResults, strip: Strip, path: Path, tile: float = 0.23) -> Path:
    """Ground truth and every model at the shown frames; `tile` inches per frame on the page."""
    plt = _pyplot()
    models = [m for m in video_models(video) if m in strip.models]
    rows = [("ground truth", strip.truth)] + [(video_model_label(video, m), strip.models[m]) for m in models]
    label_w, title_h = 0.72, 0.22
    width, height = tile * len(strip.frames) + label_w, tile * len(rows) + title_h
    fig, axes = plt.subplots(len(rows), len(strip.frames), figsize=(width, height), squeeze=False,
                             gridspec_kw={"wspace": 0.04, "hspace": 0.04})
    for r, (label, frames) in enumerate(rows):
        for c, frame in enumerate(strip.frames):
            ax = axes[r, c]
            ax.imshow(frames[frame - 1], cmap="gray", vmin=0, vmax=1, interpolation="nearest")  # frame k at k - 1
            ax.set_xticks([])
            ax.set_yticks([])
            for spine in ax.spines.values():
                spine.set_visible(False)
            if r == 0:
                ax.set_title(str(frame), fontsize=7, pad=2)
            if c == 0:
                ax.set_ylabel(label, fontsize=7, rotation=0, ha="right", va="center")
    fig.subplots_adjust(left=label_w / width, right=0.995, top=1 - title_h / height, bottom=0.01)
    return _save(fig, path)


def figure_budget(video: PartResults, path: Path, width: float = 2.95, height: float = 1.1) -> Path:
    """Left: skill of TAP and H-TAP on the far window at each stage checkpoint (± std over seeds, the
    colours of `figure_horizon`); right: the paired H-TAP vs TAP MSE change with its 95% interval,
    against transition updates."""
    plt = _pyplot()
    points = video_budget_curve(video)
    updates = np.array([p.updates for p in points])
    fig, (left, right) = plt.subplots(1, 2, figsize=(width, height))
    for model in LATENT_MODELS:
        mean = np.array([p.skill[model].mean for p in points])
        std = np.array([p.skill[model].std for p in points])
        left.errorbar(updates, mean, yerr=std, marker="o", ms=2.5, capsize=2, lw=1.0, color=COLOURS[model])
    left.axhline(0.0, color="k", lw=0.6)
    left.set_ylabel("skill")
    change = np.array([p.change.pct for p in points])
    low = np.array([p.change.low for p in points])
    high = np.array([p.change.high for p in points])
    right.errorbar(updates, change, yerr=[change - low, high - change], marker="o", ms=2.5, capsize=2, lw=1.0,
                   color="tab:purple")
    right.axhline(0.0, color="k", lw=0.6)
    right.set_ylabel("change (%)")
    for ax in (left, right):
        ax.margins(y=0.15)  # keeps the zero line off the frame
        # The checkpoints are fractions of the budget (1/4, 1/2, 1 in the study): a log axis spaces them evenly.
        ax.set_xscale("log", base=2)
        ax.set_xticks(updates, [f"{u:,}" for u in updates])
        ax.minorticks_off()
        ax.set_xlim(updates[0] / 1.4, updates[-1] * 1.4)
        ax.set_xlabel("transition updates")
        ax.tick_params(labelsize=6.5)
    fig.tight_layout(pad=0.3, w_pad=0.8)
    return _save(fig, path)
