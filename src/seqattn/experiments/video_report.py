"""Part 3's report: the contents of results.json and results.md, and the figures, from the
evaluations of every model and seed (`video.run_training`)."""

from dataclasses import asdict
from pathlib import Path

import keras
import numpy as np

from seqattn.experiments import video_eval
from seqattn.io import atomic_path, environment_info
from seqattn.metrics.paired import paired_bootstrap
from seqattn.plots.video import (
    plot_budget_curve, plot_mse_by_horizon, plot_research_attention, plot_skill_by_horizon, plot_strip,
    write_rollout_gif,
)
from seqattn.report import markdown_table, mean_std

STRIP_FRAMES = (10, 25, 50, 75, 100)
LABELS = {"tap": "TAP", "htap": "H-TAP", "convlstm": "ConvLSTM", "blank": "all-black frames",
          "last_frame": "last frame held", "mean_frame": "mean training frame",
          "codec": "codec reconstruction (floor)"}


def _stats(values) -> dict:
    return {**mean_std(values), "per_seed": np.asarray(values, np.float64).tolist()}


def _comparison(a_runs: list[dict], b_runs: list[dict], window: str) -> dict:
    """A (H-TAP) vs B (TAP) on one window, paired over the same test sequences and seeds."""
    a = np.stack([r["evaluation"]["per_sequence"][window]["mse"] for r in a_runs])  # (S, N)
    b = np.stack([r["evaluation"]["per_sequence"][window]["mse"] for r in b_runs])
    return asdict(paired_bootstrap(a, b))


def _budget_comparison(a_runs: list[dict], b_runs: list[dict], window: str) -> list[dict]:
    """The paired comparison at every stage checkpoint both models evaluated."""
    points = []
    for stage in a_runs[0]["train"].get("budget", {}):
        a_entries = [r["train"]["budget"][stage] for r in a_runs]
        b_entries = [r["train"]["budget"][stage] for r in b_runs]
        a = np.array([e["per_sequence_mse"][window] for e in a_entries])
        b = np.array([e["per_sequence_mse"][window] for e in b_entries])
        points.append({
            "stage": int(stage),
            "updates": a_entries[0]["updates"],
            "train_seconds": {"htap": _stats([e["train_seconds"] for e in a_entries]),
                              "tap": _stats([e["train_seconds"] for e in b_entries])},
            "metrics": {name: {key: _stats([e["metrics"][key] for e in entries])
                               for key in (f"mse_{window}", f"skill_{window}", f"f1_{window}")}
                        for name, entries in (("htap", a_entries), ("tap", b_entries))},
            "htap_vs_tap": asdict(paired_bootstrap(a, b)),
        })
    return points


def summarise(config, runs: dict, baselines: dict, floors: list[dict], attention: dict | None, profile: str,
              mnist_source: str, ladder: dict | None = None) -> dict:
    models = {}
    for name, outcomes in runs.items():
        keys = outcomes[0]["summary"].keys()
        train = [o["train"] for o in outcomes]
        models[name] = {
            "parameters": train[0]["parameters"],
            "train_seconds": _stats([t["train_seconds"] for t in train]),
            "metrics": {k: _stats([o["summary"][k] for o in outcomes]) for k in keys},
            "per_frame": {metric: mean_std([o["evaluation"]["per_frame"][metric] for o in outcomes])
                          for metric in video_eval.PER_FRAME},
        }
        if "stages" in train[0]:
            models[name]["stages"] = train[0]["stages"]
    wins = video_eval.windows(config.context, config.eval_length)
    if config.context == 10:  # the short window under the protocol's own name, OpenSTL's 10 -> 10
        for model in models.values():
            model["metrics"].update({k.replace("_short", "_10to10"): v for k, v in model["metrics"].items()
                                     if k.endswith("_short")})
    results = {
        "part": "video",
        "profile": profile,
        "config": {**asdict(config), "train_sequences": config.train_sequences,
                   "transition_updates": config.transition_updates},
        "seeds": list(config.seeds),
        "backend": keras.backend.backend(),
        "mnist_source": mnist_source,
        "windows": wins,
        "protocol": {
            "context": config.context,
            "test_sequences": config.test_sequences,
            "eval_length": config.eval_length,
            "test_set_seed": "fixed, from the test digit pool",
        },
        "models": models,
        # the window means also sit flat beside "metrics", where earlier results and tools read them
        "baselines": {name: {"metrics": video_eval.window_scores(ev, config.context),
                             **video_eval.window_scores(ev, config.context),
                             "per_frame_mse": ev["per_frame"]["mse"].tolist()}
                      for name, ev in baselines.items()},
        "environment": environment_info(),
    }
    if ladder:
        results["tracking_ladder"] = [{"direction_noise_deg": noise, "metrics": video_eval.window_scores(ev, config.context),
                                       "per_frame_mse": ev["per_frame"]["mse"].tolist()}
                                      for noise, ev in ladder.items()]
    if floors:
        results["codec"] = {
            "metrics": {k: _stats([f["summary"][k] for f in floors]) for k in floors[0]["summary"]},
            "codec_seconds": _stats([f["codec_seconds"] for f in floors]),
            "per_frame_mse": mean_std([f["per_frame_mse"] for f in floors]),
        }
    if "tap" in runs and "htap" in runs:
        results["htap_vs_tap"] = {window: _comparison(runs["htap"], runs["tap"], window) for window in wins}
        results["budget_curve"] = _budget_comparison(runs["htap"], runs["tap"], "far" if "far" in wins else "rollout")
        tap_p, htap_p = models["tap"]["parameters"], models["htap"]["parameters"]
        results["parameter_ratio_tap_over_htap"] = {
            "total": tap_p["total"] / htap_p["total"], "transition": tap_p["transition"] / htap_p["transition"],
        }
    if attention is not None:
        results["htap_attention"] = {
            **attention["report"],
            "span_by_step_mean_over_heads": attention["span_by_step"].mean(axis=1).tolist(),
            "analysed_sequences": config.attention_sequences,
        }
    return results


def flat_headline(results: dict) -> dict:
    flat = {}
    for name, model in results["models"].items():
        for key, stats in model["metrics"].items():
            flat[f"{name}_{key}"] = stats["mean"]
    for window, comparison in results.get("htap_vs_tap", {}).items():
        flat[f"htap_vs_tap_{window}_mse_change"] = comparison["relative"]
    return flat


def _window_label(results: dict, window: str) -> str:
    first, last = results["windows"][window]
    return f"frames {first}-{last}"


def results_table(results: dict) -> str:
    wins = [w for w in ("short", "far") if w in results["windows"]]

    def cell(stats, digits=1):
        return f"{stats['mean']:.{digits}f} ± {stats['std']:.{digits}f}"

    rows = []
    for name, model in results["models"].items():
        m = model["metrics"]
        row = [LABELS.get(name, name), model["parameters"]["total"], model["parameters"].get("transition", "-")]
        for w in wins:
            row += [cell(m[f"mse_{w}"]), f"{m[f'skill_{w}']['mean']:.3f}", f"{m[f'f1_{w}']['mean']:.3f}",
                    f"{m[f'ssim_{w}']['mean']:.3f}"]
        rows.append(row + [f"{model['train_seconds']['mean']:.0f}"])
    references = []
    if "codec" in results:
        references.append(("codec", {k: v["mean"] for k, v in results["codec"]["metrics"].items()}))
    references += [(name, b["metrics"]) for name, b in results["baselines"].items()]
    for name, m in references:
        row = [LABELS.get(name, name), "-", "-"]
        for w in wins:
            row += [f"{m[f'mse_{w}']:.1f}", f"{m[f'skill_{w}']:.3f}", f"{m[f'f1_{w}']:.3f}", f"{m[f'ssim_{w}']:.3f}"]
        rows.append(row + ["-"])
    headers = ["model", "params", "transition params"]
    for w in wins:
        label = _window_label(results, w)
        headers += [f"MSE {label}", f"skill {label}", f"F1 {label}", f"SSIM {label}"]
    return markdown_table(headers + ["train s"], rows)


def comparison_sentence(results: dict) -> str:
    parts = []
    for window, c in results["htap_vs_tap"].items():
        if window == "rollout":
            continue
        parts.append(f"{_window_label(results, window)}: {100 * c['relative']:+.1f}% "
                     f"[{100 * c['relative_low']:+.1f}%, {100 * c['relative_high']:+.1f}%]")
    c = next(iter(results["htap_vs_tap"].values()))
    return (f"H-TAP vs TAP, relative MSE change, paired over {c['sequences']} test sequences x {c['seeds']} seed(s), "
            f"95% bootstrap interval: " + "; ".join(parts))


def results_markdown(results: dict) -> str:
    config = results["config"]
    lines = [
        "# Part 3: Moving MNIST, TAP vs H-TAP (ConvLSTM anchor)",
        "",
        f"Profile `{results['profile']}`, backend {results['backend']}, seeds {results['seeds']}, "
        f"MNIST source `{results['mnist_source']}`. Test: {config['test_sequences']} sequences of "
        f"{config['eval_length']} frames, {config['context']} observed. Each latent model: one codec per seed "
        f"(shared by TAP and H-TAP), then {config['transition_updates']} transition updates of batch "
        f"{config['batch_size']} ({config['train_sequences']} latent windows) in {config['stages']} stages, "
        f"teacher-forced then closed-loop rollouts growing to {config['max_rollout']} frames. ConvLSTM: the same "
        f"number of updates, end to end in pixel space. MSE: sum over the 64x64 pixels (OpenSTL); skill: "
        "1 - MSE / MSE of all-black frames; F1: digit pixels (> 0.5); SSIM as OpenSTL. Mean ± std over seeds.",
        "",
        results_table(results),
        "",
    ]
    if "htap_vs_tap" in results:
        lines += [comparison_sentence(results) + ".", ""]
    if results.get("tracking_ladder"):
        lines += [ladder_markdown(results), ""]
    if results.get("budget_curve"):
        rows = []
        for point in results["budget_curve"]:
            c = point["htap_vs_tap"]
            key = next(k for k in point["metrics"]["tap"] if k.startswith("mse_"))
            rows.append([point["stage"], point["updates"],
                         f"{point['train_seconds']['tap']['mean'] / 60:.1f} / {point['train_seconds']['htap']['mean'] / 60:.1f}",
                         f"{point['metrics']['tap'][key]['mean']:.1f}", f"{point['metrics']['htap'][key]['mean']:.1f}",
                         f"{100 * c['relative']:+.1f}% [{100 * c['relative_low']:+.1f}, {100 * c['relative_high']:+.1f}]"])
        lines += ["Budget curve (the same runs evaluated at stage checkpoints; MSE on the far window):", "",
                  markdown_table(["stage", "updates", "train min TAP / H-TAP", "TAP MSE", "H-TAP MSE",
                                  "H-TAP vs TAP (95% CI)"], rows), ""]
    if "htap_attention" in results:
        att = results["htap_attention"]
        rows = [[layer, ", ".join(f"{s:.2f}" for s in v["span"]), ", ".join(f"{s:.2f}" for s in v["normalised_span"])]
                for layer, v in att["rollout"]["layers"].items()]
        lines += [
            f"H-TAP Attention Span over the rollout queries, per head, in frames and normalised by uniform "
            f"attention (1.0 = uniform over the history), averaged over latent cells of "
            f"{att['analysed_sequences']} test sequences:",
            "",
            markdown_table(["layer", "span per head", "normalised span per head"], rows),
            "",
        ]
    return "\n".join(lines)


def ladder_markdown(results: dict) -> str:
    wins = [w for w in ("short", "far") if w in results["windows"]]
    blank = results["baselines"]["blank"]["metrics"]
    rows = [[f"{entry['direction_noise_deg']:g}"] + [f"{entry['metrics'][f'mse_{w}']:.1f} "
                                                      f"({entry['metrics'][f'mse_{w}'] / blank[f'mse_{w}']:.2f})"
                                                      for w in wins]
            for entry in results["tracking_ladder"]]
    return "\n".join([
        "Tracking ladder: an observer told each test sequence's digits, their starts and speed and the bounce "
        "physics, and each direction up to a Gaussian error, predicting the mean of its renderings: the MSE "
        "(in brackets, x all-black frames) that tracking the digits that well reaches.",
        "",
        markdown_table(["direction error (deg)"] + [f"MSE {_window_label(results, w)}" for w in wins], rows),
    ])


def metrics_table(numbers: dict) -> str:
    return markdown_table(["metric", "value"], [[k, v] for k, v in numbers.items()
                                                if k.startswith(("mse", "ssim", "skill", "f1"))])


def _strip_frames(length: int) -> list[int]:
    """STRIP_FRAMES that exist in a sequence of `length` frames, and always its last frame."""
    return sorted({f for f in STRIP_FRAMES if f <= length} | {length})


def _full_video(truth: np.ndarray, predicted: np.ndarray, context: int) -> np.ndarray:
    """Observed frames 1..context followed by predicted frames: aligned with truth (frame k at k-1)."""
    return np.concatenate([truth[:, :context], predicted], axis=1)


def write_figures(config, results: dict, runs: dict, baselines: dict, attention: dict | None, examples: dict,
                  truth: np.ndarray, out: Path) -> list[Path]:
    figures = []
    if results.get("budget_curve"):
        figures.append(plot_budget_curve(results["budget_curve"], results["baselines"]["blank"]["metrics"],
                                         out / "budget_curve.png"))
    curves = {name: (np.mean([o["evaluation"]["per_frame"]["mse"] for o in outcomes], axis=0),
                     np.asarray(mean_std([o["evaluation"]["per_frame"]["mse"] for o in outcomes])["std"]))
              for name, outcomes in runs.items()}
    skills = {name: np.mean([o["evaluation"]["per_frame"]["skill"] for o in outcomes], axis=0)
              for name, outcomes in runs.items()}
    base_mse = {name: ev["per_frame"]["mse"] for name, ev in baselines.items()}
    train_length = config.context + config.max_rollout
    if attention is not None:
        last = config.eval_length
        shown = sorted({f for f in (config.context + 1, train_length, (config.context + last) // 2, last)
                        if config.context < f <= last})
        figures.append(plot_research_attention(
            attention["mean_weights_last_layer"], attention["span_by_step"], curves, config.context, train_length,
            shown, out / "research_attention_plot.png", far_start=video_eval.FAR_START, baselines=base_mse,
        ))
    else:
        figures.append(plot_mse_by_horizon({**{k: v[0] for k, v in curves.items()}, **base_mse}, config.context,
                                           out / "mse_by_horizon.png", "Per-frame MSE of the rollout"))
    trivial = {name: ev["per_frame"]["skill"] for name, ev in baselines.items() if name != "blank"}  # blank: skill 0
    figures.append(plot_skill_by_horizon({**skills, **trivial}, config.context, out / "skill_by_horizon.png"))
    strip_frames = _strip_frames(config.eval_length)
    videos = {name: _full_video(truth, pred, config.context) for name, pred in examples.items()}
    with atomic_path(out / "strip.npz") as tmp, open(tmp, "wb") as f:
        np.savez_compressed(f, truth=truth, frames=np.asarray(strip_frames), context=config.context,
                            **{f"model_{k}": v for k, v in videos.items()})
    figures.append(plot_strip(
        truth, videos, strip_frames, config.context, out / "strip.png",
        title=f"Ground truth vs closed-loop rollout from {config.context} observed frames (seed {config.seeds[0]})",
    ))
    figures.append(write_rollout_gif(truth[0], {k: v[0] for k, v in videos.items()}, config.context,
                                     out / "rollout.gif"))
    return figures


def write_evaluation_figures(name: str, evaluation: dict, truth: np.ndarray, context: int, test_name: str,
                             out: Path) -> list[Path]:
    figure = plot_mse_by_horizon({name: evaluation["per_frame"]["mse"]}, context, out / "mse_by_horizon.png",
                                 f"{name} on {test_name}")
    video = _full_video(truth, evaluation["examples"][:1], context)
    strip = plot_strip(truth, {name: video}, _strip_frames(truth.shape[1]), context, out / "strip.png",
                       title=f"{name} on {test_name}")
    return [figure, strip]
