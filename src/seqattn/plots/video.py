"""Part 3 figures: H-TAP's attention over the latent history, error against horizon, and
ground truth against every model's rollout as a strip image and a GIF."""

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from matplotlib.colors import LogNorm  # noqa: E402
from PIL import Image, ImageDraw  # noqa: E402

from seqattn.io import atomic_path  # noqa: E402

MODEL_LABELS = {"tap": "TAP", "htap": "H-TAP", "convlstm": "ConvLSTM"}
BASELINE_LABELS = {"blank": "all-black frames", "last_frame": "last observed frame held",
                   "mean_frame": "mean training frame"}
BASELINE_STYLES = {"blank": "--", "last_frame": "-.", "mean_frame": (0, (1, 1))}
MODEL_COLORS = {"tap": "tab:blue", "htap": "tab:red", "convlstm": "tab:green"}


def _save(fig, path) -> Path:
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=120, bbox_inches="tight", format="png")
    plt.close(fig)
    return Path(path)


def plot_research_attention(mean_weights: np.ndarray, span_by_step: np.ndarray, mse_by_model: dict,
                            context: int, train_length: int, shown_frames: list[int], path,
                            far_start: int = 50, baselines: dict | None = None) -> Path:
    """Four panels on the long rollout.

    mean_weights (T-1, T-1): H-TAP's last-layer weights averaged over heads and sequences; row i is
    the input at frame i+1 predicting frame i+2. span_by_step (L, nh, T-1): per-query span.
    mse_by_model: name -> (mean (H,), std (H,)) per-frame MSE over seeds for frames context+1..T.
    shown_frames: predicted frame numbers whose attention rows are drawn.
    """
    n = mean_weights.shape[0]
    frames = np.arange(2, n + 2)  # frame predicted by each query row
    fig, axes = plt.subplots(2, 2, figsize=(13, 9.5))
    fig.subplots_adjust(hspace=0.32, wspace=0.25)

    ax = axes[0, 0]
    floor = 1e-4
    image = ax.imshow(np.maximum(mean_weights, floor), norm=LogNorm(vmin=floor, vmax=1.0), cmap="magma",
                      extent=(0.5, n + 0.5, n + 1.5, 1.5), aspect="auto")
    ax.axhline(context + 0.5, color="cyan", lw=1, ls="--")
    ax.axhline(train_length + 0.5, color="white", lw=1, ls=":")
    ax.set_xlabel("past frame read (key)")
    ax.set_ylabel("frame being predicted")
    ax.set_title("H-TAP last layer: attention over the latent history\n"
                 f"(heads and sequences averaged; cyan: rollout starts, white: training length {train_length})",
                 fontsize=9)
    fig.colorbar(image, ax=ax, label="attention weight (log scale)")

    ax = axes[0, 1]
    cmap = plt.get_cmap("viridis")
    for k, frame in enumerate(shown_frames):
        row = frame - 2
        ax.plot(np.arange(1, row + 2), mean_weights[row, : row + 1], marker=".", ms=3,
                color=cmap(k / max(1, len(shown_frames) - 1)), label=f"predicting frame {frame}")
    ax.axvline(context, color="gray", ls="--", lw=1)
    ax.text(context, ax.get_ylim()[1] * 0.95, " last observed", color="gray", fontsize=8, va="top")
    ax.set_xlabel("past frame read (key)")
    ax.set_ylabel("attention weight")
    ax.set_title("H-TAP last layer: weights over past frames for a few prediction steps", fontsize=9)
    ax.legend(fontsize=8)

    ax = axes[1, 0]
    layers = span_by_step.shape[0]
    for layer in range(layers):
        color = plt.get_cmap("tab10")(layer)
        for head in range(span_by_step.shape[1]):
            ax.plot(frames, span_by_step[layer, head], color=color, lw=0.6, alpha=0.35)
        ax.plot(frames, span_by_step[layer].mean(axis=0), color=color, lw=2, label=f"layer {layer + 1} (mean of heads)")
    ax.plot(frames, (frames - 2) / 2.0, color="black", ls="--", lw=1, label="uniform attention over history")
    ax.axvline(context + 1, color="gray", ls="--", lw=1)
    ax.axvline(train_length, color="gray", ls=":", lw=1)
    ax.set_xlabel("frame being predicted (dashed: rollout starts; dotted: training length)")
    ax.set_ylabel("attention span (frames back)")
    ax.set_title("H-TAP attention span versus prediction step (thin lines: single heads)", fontsize=9)
    ax.legend(fontsize=8)

    ax = axes[1, 1]
    for name, (mean, std) in mse_by_model.items():
        horizon_frames = np.arange(context + 1, context + 1 + len(mean))
        ax.plot(horizon_frames, mean, color=MODEL_COLORS.get(name), label=MODEL_LABELS.get(name, name))
        ax.fill_between(horizon_frames, mean - std, mean + std, color=MODEL_COLORS.get(name), alpha=0.2)
    for name, mse in (baselines or {}).items():
        ax.plot(np.arange(context + 1, context + 1 + len(mse)), mse, color="gray", ls=BASELINE_STYLES.get(name, "--"), lw=1,
                label=f"baseline: {BASELINE_LABELS.get(name, name)}")
    ax.axvline(train_length, color="gray", ls=":", lw=1)
    last = context + len(next(iter(mse_by_model.values()))[0])
    if last >= far_start:
        ax.axvspan(far_start, last, color="gray", alpha=0.08)
    ax.set_xlabel(f"frame (dotted: training length; shaded: far horizon {far_start}-{last})")
    ax.set_ylabel("MSE per frame (sum over 64x64 pixels)")
    ax.set_title("Per-frame MSE of the closed-loop rollout (mean ± std over seeds)", fontsize=9)
    ax.legend(fontsize=8)
    return _save(fig, path)


def plot_strip(truth: np.ndarray, predictions: dict, frames: list[int], context: int, path, title: str) -> Path:
    """truth (S, T, H, W), predictions name -> (S, T, H, W) aligned with truth (frame k at index k-1).

    One block of rows per example sequence: ground truth, then each model; columns are `frames`.
    """
    n_examples = truth.shape[0]
    rows = n_examples * (1 + len(predictions))
    fig, axes = plt.subplots(rows, len(frames), figsize=(1.55 * len(frames) + 1.2, 1.6 * rows), squeeze=False)
    for s in range(n_examples):
        block = [("ground truth", truth[s])] + [(MODEL_LABELS.get(k, k), v[s]) for k, v in predictions.items()]
        for r, (label, video) in enumerate(block):
            row = s * len(block) + r
            for c, frame in enumerate(frames):
                ax = axes[row, c]
                ax.imshow(video[frame - 1], cmap="gray", vmin=0, vmax=1)
                ax.set_xticks([])
                ax.set_yticks([])
                if row == 0:
                    note = " (observed)" if frame <= context else ""
                    ax.set_title(f"frame {frame}{note}", fontsize=9)
                if c == 0:
                    ax.set_ylabel(f"seq {s + 1}\n{label}", fontsize=8)
    fig.suptitle(title, fontsize=10)
    return _save(fig, path)


def write_rollout_gif(truth: np.ndarray, predictions: dict, context: int, path, scale: int = 2,
                      duration_ms: int = 90) -> Path:
    """A GIF of one sequence: ground truth and each model side by side, frame number on top.

    truth (T, H, W) and predictions name -> (T, H, W), frame k at index k-1; during the context
    every tile shows the observed frame.
    """
    tiles = [("ground truth", truth)] + [(MODEL_LABELS.get(k, k), v) for k, v in predictions.items()]
    t, h, w = truth.shape
    header = 28
    gap = 4
    width = len(tiles) * (w * scale + gap) - gap
    images = []
    for k in range(t):
        canvas = Image.new("L", (width, h * scale + header), color=40)
        draw = ImageDraw.Draw(canvas)
        phase = "observed" if k < context else "predicted"
        draw.text((4, 2), f"frame {k + 1}/{t} ({phase})", fill=255)
        for i, (label, video) in enumerate(tiles):
            frame = truth[k] if k < context else video[k]
            tile = Image.fromarray(np.clip(frame * 255, 0, 255).astype(np.uint8)).resize((w * scale, h * scale), Image.NEAREST)
            x = i * (w * scale + gap)
            canvas.paste(tile, (x, header))
            draw.text((x + 2, 15), label, fill=200)
        images.append(canvas)
    with atomic_path(path) as tmp:
        images[0].save(tmp, format="GIF", save_all=True, append_images=images[1:], duration=duration_ms, loop=0)
    return Path(path)


def plot_mse_by_horizon(mse_by_model: dict, context: int, path, title: str) -> Path:
    """MSE per predicted frame, name -> (H,) arrays; used by the evaluation of a checkpoint."""
    fig, ax = plt.subplots(figsize=(7, 4))
    for name, mse in mse_by_model.items():
        ax.plot(np.arange(context + 1, context + 1 + len(mse)), mse, label=name)
    ax.set_xlabel("frame")
    ax.set_ylabel("MSE per frame (sum over pixels)")
    ax.set_title(title, fontsize=10)
    ax.legend(fontsize=8)
    return _save(fig, path)


def plot_skill_by_horizon(skill_by_model: dict, context: int, path) -> Path:
    """Skill against all-black frames per predicted frame, name -> (H,): 0 is a blank prediction."""
    fig, ax = plt.subplots(figsize=(7, 4))
    for name, skill in skill_by_model.items():
        style = (dict(color="gray", ls=BASELINE_STYLES[name], lw=1) if name in BASELINE_LABELS
                 else dict(color=MODEL_COLORS.get(name)))
        label = f"baseline: {BASELINE_LABELS[name]}" if name in BASELINE_LABELS else MODEL_LABELS.get(name, name)
        ax.plot(np.arange(context + 1, context + 1 + len(skill)), skill, label=label, **style)
    ax.axhline(0.0, color="black", lw=0.8)
    ax.set_xlabel("frame")
    ax.set_ylabel("skill = 1 - MSE / MSE(all-black)")
    ax.set_title("Skill against blank frames per predicted frame (mean over seeds)", fontsize=10)
    ax.legend(fontsize=8)
    return _save(fig, path)


def plot_budget_curve(points: list[dict], blank_metrics: dict, path) -> Path:
    """Far-window MSE of TAP and H-TAP at stage checkpoints against training minutes, and the
    paired H-TAP vs TAP change with its 95% interval against updates."""
    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4))
    key = next(k for k in points[0]["metrics"]["tap"] if k.startswith("mse_"))
    for name in ("tap", "htap"):
        minutes = [p["train_seconds"][name]["mean"] / 60 for p in points]
        mean = np.array([p["metrics"][name][key]["mean"] for p in points])
        std = np.array([p["metrics"][name][key]["std"] for p in points])
        left.errorbar(minutes, mean, yerr=std, marker="o", capsize=3, color=MODEL_COLORS[name],
                      label=MODEL_LABELS[name])
    left.axhline(blank_metrics[key], color="gray", ls="--", lw=1, label=f"baseline: {BASELINE_LABELS['blank']}")
    left.set_xlabel("training minutes (transition, mean over seeds)")
    left.set_ylabel(f"MSE, {key.removeprefix('mse_')} window")
    left.set_title("Far-horizon MSE at stage checkpoints (± std over seeds)", fontsize=10)
    left.legend(fontsize=8)
    updates = [p["updates"] for p in points]
    change = np.array([100 * p["htap_vs_tap"]["relative"] for p in points])
    low = np.array([100 * p["htap_vs_tap"]["relative_low"] for p in points])
    high = np.array([100 * p["htap_vs_tap"]["relative_high"] for p in points])
    right.errorbar(updates, change, yerr=[change - low, high - change], marker="o", capsize=3, color="tab:purple")
    right.axhline(0.0, color="black", lw=0.8)
    right.set_xlabel("transition updates")
    right.set_ylabel("H-TAP vs TAP MSE change (%)")
    right.set_title("Paired change, 95% bootstrap interval over sequences and seeds", fontsize=10)
    return _save(fig, path)
