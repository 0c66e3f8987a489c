"""Accessors of Part 3's results (`results/video/results.json` and `strip.npz`), written by
`seqattn.experiments.video_report`. The evaluation windows are read from `windows` (1-based,
inclusive frame numbers), never re-derived from the training horizon.
"""

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from paper.results import PartResults, Stat
from seqattn.errors import DataError
from seqattn.metrics.attention import per_query_span

VIDEO_MODEL_ORDER = ("tap", "htap", "convlstm")
LATENT_MODELS = ("tap", "htap")
FRAME_SIZE = 64  # Moving MNIST frames are 64 x 64
# The predictions that need no latent rollout, in the order the table prints them.
REFERENCE_LABELS = {"codec": "codec reconstruction (floor)", "blank": "all-black frames",
                    "last_frame": "last frame held", "mean_frame": "mean frame"}


@dataclass(frozen=True)
class Change:
    """H-TAP vs TAP: the relative change of the mean MSE, (H-TAP - TAP) / TAP, in percent, with
    its 95% bootstrap interval, paired over `sequences` test sequences and `seeds` seeds."""

    pct: float
    low: float
    high: float
    seeds: int
    sequences: int


@dataclass(frozen=True)
class BudgetPoint:
    """One stage checkpoint of the budget curve: TAP and H-TAP evaluated after `updates` updates."""

    stage: int
    updates: int
    minutes: dict[str, float]  # model -> mean training minutes of its transition so far
    mse: dict[str, Stat]  # model -> MSE on the curve's window
    skill: dict[str, Stat]
    change: Change


@dataclass(frozen=True)
class Strip:
    """One test sequence as strip.npz saved it: (T, H, W) frames, frame k at index k - 1."""

    frames: list[int]  # the frames shown, 1-based
    context: int
    truth: np.ndarray
    models: dict[str, np.ndarray]  # model -> its video: observed frames, then its rollout


def video_config(video: PartResults, name: str):
    """Config values; the paper's names for derived ones: long_frames, train_frames (context plus
    the longest closed-loop training rollout), latent_grid, codec_updates."""
    if name == "long_frames":
        return int(video.get("config", "eval_length"))
    if name == "train_frames":
        return int(video.get("config", "context")) + int(video.get("config", "max_rollout"))
    if name == "latent_grid":
        return FRAME_SIZE // 2 ** len(video.get("config", "codec_widths"))
    if name == "codec_updates":
        return int(video.get("config", "codec_epochs")) * int(video.get("config", "codec_steps_per_epoch"))
    return video.get("config", name)


def video_window(video: PartResults, name: str) -> tuple[int, int]:
    """First and last frame (1-based, inclusive) of an evaluation window: "short", "rollout", "far"."""
    window = video.get("windows", name)
    try:
        first, last = (int(f) for f in window)
    except (TypeError, ValueError):
        raise DataError(f"{video.path}: windows.{name} is {window!r}, expected [first, last]") from None
    if not 1 <= first <= last:
        raise DataError(f"{video.path}: windows.{name} is {window!r}, expected 1 <= first <= last")
    return first, last


def video_models(video: PartResults) -> list[str]:
    """Model keys: TAP, H-TAP, ConvLSTM first, then any other model the part ran."""
    names = list(video.get("models"))
    known = [m for m in VIDEO_MODEL_ORDER if m in names]
    return known + sorted(m for m in names if m not in VIDEO_MODEL_ORDER)


def video_model_label(video: PartResults, model: str) -> str:
    if model == "tap":
        return f"TAP ({str(video_config(video, 'rnn')).upper()})"
    return {"htap": "H-TAP", "convlstm": "ConvLSTM"}.get(model, model)


def video_params(video: PartResults, model: str, which: str = "total") -> int:
    """Parameter count: "total", or "transition" (latent models only)."""
    return int(video.number("models", model, "parameters", which))


def video_metric(video: PartResults, model: str, metric: str, window: str) -> Stat:
    """A window metric over seeds, e.g. ("tap", "mse", "far"): mse, mae, ssim, psnr, f1, skill."""
    return video.stat("models", model, "metrics", f"{metric}_{window}")


def video_seed_metric(video: PartResults, model: str, metric: str, window: str, seed: int) -> float:
    """One seed's window metric, e.g. the far-window MSE of TAP for seed 0."""
    seeds = [int(s) for s in video.get("seeds")]
    if seed not in seeds:
        raise DataError(f"{video.path}: no seed {seed} (seeds {seeds}), which the ablation paragraph compares")
    return video.number("models", model, "metrics", f"{metric}_{window}", "per_seed", seeds.index(seed))


def video_baselines(video: PartResults) -> list[str]:
    """The trivial predictions the part evaluated: "blank", "last_frame", "mean_frame"."""
    names = list(video.get("baselines"))
    return [n for n in REFERENCE_LABELS if n in names] + sorted(n for n in names if n not in REFERENCE_LABELS)


def video_baseline_metric(video: PartResults, name: str, metric: str, window: str) -> float:
    """A trivial prediction's window metric (one number: it has no seeds)."""
    return video.number("baselines", name, "metrics", f"{metric}_{window}")


def video_tracking_ladder(video: PartResults, window: str) -> list[tuple[float, float]]:
    """(direction error in degrees, window MSE) of each observer of the tracking ladder, by error."""
    rungs = [(video.number("tracking_ladder", i, "direction_noise_deg"),
              video.number("tracking_ladder", i, "metrics", f"mse_{window}"))
             for i in range(len(video.get("tracking_ladder")))]
    return sorted(rungs)


def video_codec_metric(video: PartResults, metric: str, window: str) -> Stat:
    """The codec's reconstruction of the true frames: the floor no latent rollout decodes below."""
    return video.stat("codec", "metrics", f"{metric}_{window}")


def _change(video: PartResults, *keys) -> Change:
    return Change(100 * video.number(*keys, "relative"), 100 * video.number(*keys, "relative_low"),
                  100 * video.number(*keys, "relative_high"), int(video.number(*keys, "seeds")),
                  int(video.number(*keys, "sequences")))


def video_change(video: PartResults, window: str) -> Change:
    """H-TAP vs TAP MSE on a window, paired over test sequences and seeds."""
    return _change(video, "htap_vs_tap", window)


def video_predicted_frames(video: PartResults) -> np.ndarray:
    """1-based frame numbers of the rollout window, e.g. 11..100."""
    first, last = video_window(video, "rollout")
    return np.arange(first, last + 1)


def _curve(video: PartResults, *keys) -> np.ndarray:
    values = np.asarray(video.get(*keys), dtype=np.float64)
    frames = video_predicted_frames(video)
    if values.shape != frames.shape:
        raise DataError(f"{video.path}: {'.'.join(keys)} has {values.size} values, expected one per "
                        f"frame {frames[0]}..{frames[-1]} ({frames.size})")
    return values


def video_per_frame(video: PartResults, model: str, metric: str) -> tuple[np.ndarray, np.ndarray]:
    """A per-frame curve over the rollout window, mean and std over seeds: two (frames,) arrays."""
    return (_curve(video, "models", model, "per_frame", metric, "mean"),
            _curve(video, "models", model, "per_frame", metric, "std"))


def video_baseline_per_frame_mse(video: PartResults, name: str) -> np.ndarray:
    return _curve(video, "baselines", name, "per_frame_mse")


def video_codec_per_frame_mse(video: PartResults) -> np.ndarray:
    return _curve(video, "codec", "per_frame_mse", "mean")


def video_budget_window(video: PartResults) -> str:
    """The window the budget curve measures: far when the run has one, else the whole rollout."""
    return "far" if video.has("windows", "far") else "rollout"


def video_budget_curve(video: PartResults) -> list[BudgetPoint]:
    """TAP and H-TAP at each stage checkpoint, in training order."""
    window = video_budget_window(video)
    points = []
    for i in range(len(video.get("budget_curve"))):
        key = ("budget_curve", i)
        points.append(BudgetPoint(
            stage=int(video.number(*key, "stage")), updates=int(video.number(*key, "updates")),
            minutes={m: video.number(*key, "train_seconds", m, "mean") / 60 for m in LATENT_MODELS},
            mse={m: video.stat(*key, "metrics", m, f"mse_{window}") for m in LATENT_MODELS},
            skill={m: video.stat(*key, "metrics", m, f"skill_{window}") for m in LATENT_MODELS},
            change=_change(video, *key, "htap_vs_tap"),
        ))
    if not points:
        raise DataError(f"{video.path}: budget_curve is empty")
    return sorted(points, key=lambda p: p.updates)


def video_span_per_step(video: PartResults) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """H-TAP Attention Span over the rollout, mean over layers and heads, per predicted frame.

    Returns (frames, span, uniform): query q of the (layers, T-1) array reads frames 1..q+1 and
    predicts frame q+2; `uniform` is the span of uniform attention over that history, by the
    project's own metric, so span / uniform is the normalised span.
    """
    by_step = np.asarray(video.get("htap_attention", "span_by_step_mean_over_heads"), dtype=np.float64)
    if by_step.ndim != 2:
        raise DataError(f"{video.path}: htap_attention.span_by_step_mean_over_heads must be (layers, steps)")
    n = by_step.shape[1]
    causal = np.tril(np.ones((n, n)))
    uniform = per_query_span(causal / causal.sum(axis=1, keepdims=True))  # (n,)
    frames = np.arange(2, n + 2)
    rollout = frames > int(video_config(video, "context"))
    return frames[rollout], by_step.mean(axis=0)[rollout], uniform[rollout]


def video_span_per_head(video: PartResults) -> np.ndarray:
    """H-TAP Attention Span of each layer and head over the rollout queries: (layers, heads)."""
    layers = video.get("htap_attention", "rollout", "layers")
    return np.array([layers[name]["span"] for name in sorted(layers)], dtype=np.float64)


def video_config_changes(base: PartResults, variant: PartResults) -> dict:
    """Training options of `variant` that differ from `base` (seeds, models and test size aside).

    An option only one of the two records was added to the code between the runs, at its default.
    """
    # pool_length follows max_rollout (the pool's clips are lengthened to fit the longest rollout);
    # a budget reads as transition_updates, which steps_per_epoch and train_sequences only restate
    ignored = {"seeds", "models", "test_sequences", "eval_batch_size", "attention_sequences", "pool_length",
               "steps_per_epoch", "train_sequences"}
    base_config, variant_config = base.get("config"), variant.get("config")
    return {k: v for k, v in variant_config.items()
            if k not in ignored and k in base_config and base_config[k] != v}


def video_mnist_fallback(video: PartResults) -> bool:
    """True when the digits were scikit-learn's 8x8 set, not MNIST."""
    return video.get("mnist_source") == "sklearn-digits-fallback"


def video_strip(path: Path, models: list[str], sequence: int = 0) -> Strip:
    """Sequence `sequence` of strip.npz (keys truth, frames, context, model_<name>: (S, T, H, W))."""
    if not path.is_file():
        raise DataError(f"{path} not found: the paper draws its strip figure from it")
    with np.load(path) as saved:
        def array(key):
            if key not in saved.files:
                raise DataError(f"{path}: missing key {key!r}, which the paper needs (has {sorted(saved.files)})")
            return saved[key]

        truth = array("truth")
        frames = [int(f) for f in np.atleast_1d(array("frames"))]
        context = int(array("context"))
        videos = {m: array(f"model_{m}") for m in models}
    for name, video in {"truth": truth, **{f"model_{m}": v for m, v in videos.items()}}.items():
        if video.ndim != 4 or video.shape[0] <= sequence or video.shape[1] < max(frames):
            raise DataError(f"{path}: {name} has shape {video.shape}, expected (sequences > {sequence}, "
                            f"frames >= {max(frames)}, H, W)")
    return Strip(frames, context, truth[sequence].astype(np.float64),
                 {m: v[sequence].astype(np.float64) for m, v in videos.items()})
