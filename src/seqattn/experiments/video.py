"""Part 3: latent video prediction on Moving MNIST, TAP (recurrent transition) against H-TAP
(causal temporal transformer over the latent history), with ConvLSTM as the pixel-space anchor.

Protocol:
- Training: every model sees the same clips, `context + train_horizon` frames drawn fresh each
  epoch from the training digit pool (`SequenceBatches`, deterministic from (seed, epoch)), the
  same number of steps and the same batch size. The loss is the pixel cross-entropy of all
  next-frame predictions: one-step predictions inside the context and the closed-loop rollout after it
  (`seqattn.models.video`). No curriculum and no scheduled sampling: the rollout part of every
  training clip is closed loop from the first epoch.
- Evaluation: one fixed test set of `eval_length` (100) frames from the disjoint test pool, the
  same for every model and seed. Each model observes frames 1..context and rolls out the rest.
  The rollout is causal, so its first 10 predicted frames are exactly the 10 -> 10 protocol's
  prediction: the 10 -> 10 numbers are frames 11-20 of the same rollout, the 10 -> 90 numbers
  frames 11-100, the far horizon frames 50-100. Metrics (`seqattn.metrics.video`): MSE and MAE
  summed over the pixels (OpenSTL), per pixel, PSNR, SSIM, per frame.
- The claim under test: H-TAP cuts far-horizon MSE by ~25% against TAP. Reported as the relative
  change per seed, (H-TAP - TAP) / TAP on frames 50-100, mean and std over seeds.
- H-TAP's Attention Span per layer and head, and per prediction step, on test sequences.

`seqattn video evaluate --checkpoint MODEL.keras --test-set FILE.npy` runs a saved model on a
sequence file a user brings (e.g. the official `mnist_test_seq.npy`) with the same metrics.
"""

import argparse
import hashlib
import json
import sys
import time
import zipfile
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import keras
import numpy as np

from seqattn import distributed, tracking, training
from seqattn.data import mnist, moving_mnist
from seqattn.errors import ConfigError
from seqattn.io import atomic_path, ensure_writable_dir, environment_info, write_json_atomic
from seqattn.metrics.attention import per_query_span, span_report
from seqattn.metrics.video import frame_metrics
from seqattn.models.video import (
    HTAP, RNN_CELLS, TAP, ConvLSTMPredictor, matched_rnn_units, transformer_transition_params,
)
from seqattn.plots.video import plot_mse_by_horizon, plot_research_attention, plot_strip, write_rollout_gif
from seqattn.report import markdown_table, mean_std

DESCRIPTION = "Part 3: Moving MNIST video prediction, TAP vs H-TAP (and ConvLSTM), 10 -> 10 and 10 -> 90"
MODEL_NAMES = ("tap", "htap", "convlstm")
TEST_SET_SEED = 20_260_401  # the fixed test set does not move with the training seeds
STRIP_FRAMES = (10, 25, 50, 75, 100)
FAR_START = 50  # far horizon: frames 50..eval_length (1-based, inclusive)
SHORT_HORIZON = 10  # the standard protocol predicts 10 frames


@dataclass(frozen=True)
class VideoConfig:
    models: tuple = MODEL_NAMES
    seeds: tuple = (0,)
    context: int = 10
    train_horizon: int = 10  # training clips are context + train_horizon frames
    eval_length: int = 100  # the long protocol: 10 -> 90
    n_digits: int = 2
    epochs: int = 2
    steps_per_epoch: int = 60
    batch_size: int = 16
    learning_rate: float = 2e-3
    # Cross-entropy on [0, 1] pixels, as Srivastava et al. (2015) trained on Moving MNIST: with
    # MSE, the quick budget ended with every model predicting blank frames (test MSE 190 against
    # 179 for an all-black prediction); the reported metrics are MSE all the same.
    loss: str = "binary_crossentropy"
    test_sequences: int = 100
    eval_batch_size: int = 20
    attention_sequences: int = 16  # test sequences whose H-TAP attention is analysed
    # codec shared by TAP and H-TAP
    latent_dim: int = 128
    codec_filters: tuple = (16, 32, 64, 64)
    skip_features: bool = False  # decoder also sees the last observed frame's encoder maps (SVG)
    # H-TAP transition; TAP's state size is chosen to match its parameter count
    d_model: int = 128
    num_layers: int = 2
    num_heads: int = 4
    ff_dim: int = 256
    rnn: str = "gru"
    # ConvLSTM anchor on 4x4-folded frames
    convlstm_filters: tuple = (32,)
    convlstm_kernel: int = 3

    @property
    def train_sequences(self) -> int:
        """Sequences each model sees in training (the matched budget)."""
        return self.epochs * self.steps_per_epoch * self.batch_size


PROFILES = {
    # Part 3 of `make run`: a few minutes for the three models on 2 CPU cores, torch, one intra-op
    # thread (seqattn.backend.limit_torch_threads); its wall time is in outputs/video/results.json.
    "quick": VideoConfig(),
    # Three seeds for the claim, sized to fit one CPU core for about an hour next to Part 2:
    # 800 steps of 16 fresh clips (12,800 sequences) per model and seed, 256 test sequences.
    # Step times measured by benchmarks/bench_video.py (20-frame clips, batch 16): TAP 0.33 s,
    # H-TAP 0.40 s, ConvLSTM 0.48 s; the measured wall time is in results/video/results.json.
    "paper": VideoConfig(seeds=(0, 1, 2), epochs=10, steps_per_epoch=80, test_sequences=256),
    # For a GPU: 200 epochs x 10,000 fresh sequences, the OpenSTL-sized ConvLSTM.
    "full": VideoConfig(seeds=(0, 1, 2), epochs=200, steps_per_epoch=625, batch_size=16, test_sequences=2000,
                        eval_batch_size=100, latent_dim=256, codec_filters=(32, 64, 128, 128), d_model=256,
                        num_layers=4, num_heads=8, ff_dim=512, convlstm_filters=(64, 64, 64, 64),
                        convlstm_kernel=5),
}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("mode", nargs="?", choices=("train", "evaluate"), default="train",
                        help="train: train and evaluate every model (default); evaluate: run a saved "
                             "model on --test-set")
    parser.add_argument("--models", nargs="+", choices=MODEL_NAMES, default=None, help="models to train")
    parser.add_argument("--rnn", choices=RNN_CELLS, default=None, help="TAP's recurrent cell (default gru)")
    parser.add_argument("--epochs", type=int, default=None, help="training epochs (default: the profile's)")
    parser.add_argument("--train-sequences", type=int, default=None,
                        help="fresh training sequences per epoch, the same for every model")
    parser.add_argument("--batch-size", type=int, default=None, help="training batch size")
    parser.add_argument("--test-sequences", type=int, default=None, help="sequences in the fixed test set")
    parser.add_argument("--context", type=int, default=None, help="observed frames (default 10)")
    parser.add_argument("--horizon", type=int, default=None,
                        help="frames rolled out in training (default 10: 10 -> 10 clips)")
    parser.add_argument("--eval-length", type=int, default=None,
                        help="frames per test sequence, context included (default 100: 10 -> 90)")
    parser.add_argument("--skip-features", action="store_true", default=None,
                        help="TAP and H-TAP decode with the encoder's feature maps of the last observed frame")
    parser.add_argument("--mnist", default=None, help="MNIST IDX folder/file or mnist.npz (default: data folder)")
    parser.add_argument("--checkpoint", default=None, help="evaluate: a saved TAP/H-TAP/ConvLSTM .keras model")
    parser.add_argument("--test-set", default=None, help="evaluate: a .npy sequence file")
    parser.add_argument("--layout", choices=moving_mnist.LAYOUTS, default=None,
                        help="evaluate: axes of --test-set, tnhw (official file) or nthw; detected when unambiguous")


def _positive(name: str, value) -> None:
    if value is not None and value < 1:
        raise ConfigError(f"--{name} must be a positive integer; got {value}")


def resolve_config(args: argparse.Namespace) -> VideoConfig:
    config = PROFILES[args.profile]
    for name in ("epochs", "train_sequences", "batch_size", "test_sequences", "context", "horizon", "eval_length"):
        _positive(name.replace("_", "-"), getattr(args, name, None))
    overrides = {
        "models": tuple(dict.fromkeys(args.models)) if args.models else None,
        "rnn": args.rnn,
        "epochs": args.epochs,
        "batch_size": args.batch_size,
        "test_sequences": args.test_sequences,
        "context": args.context,
        "train_horizon": args.horizon,
        "eval_length": args.eval_length,
        "seeds": tuple(args.seeds) if args.seeds else None,
        "skip_features": getattr(args, "skip_features", None),
    }
    config = replace(config, **{k: v for k, v in overrides.items() if v is not None})
    if args.train_sequences is not None:
        config = replace(config, steps_per_epoch=max(1, args.train_sequences // config.batch_size))
    if config.eval_length <= config.context:
        raise ConfigError(
            f"--eval-length {config.eval_length} must exceed --context {config.context}: nothing to predict"
        )
    config = replace(config, attention_sequences=min(config.attention_sequences, config.test_sequences),
                     eval_batch_size=min(config.eval_batch_size, config.test_sequences))
    return config


# ----------------------------------------------------------------------------- models


def build_model(name: str, config: VideoConfig) -> keras.Model:
    codec = dict(context=config.context, latent_dim=config.latent_dim, filters=config.codec_filters,
                 skip_features=config.skip_features)
    if name == "htap":
        model = HTAP(d_model=config.d_model, num_layers=config.num_layers, num_heads=config.num_heads,
                     ff_dim=config.ff_dim, name="htap", **codec)
    elif name == "tap":
        target = transformer_transition_params(config.latent_dim, config.d_model, config.num_layers, config.ff_dim)
        units = matched_rnn_units(target, config.latent_dim, config.rnn)
        model = TAP(rnn=config.rnn, units=units, name="tap", **codec)
    else:
        model = ConvLSTMPredictor(context=config.context, filters=config.convlstm_filters,
                                  kernel_size=config.convlstm_kernel, name="convlstm")
    model.build((None, config.context + config.train_horizon, 64, 64, 1))
    model.compile(optimizer=keras.optimizers.Adam(config.learning_rate), loss=config.loss)
    return model


def parameter_counts(model: keras.Model) -> dict:
    counts = {"total": int(model.count_params())}
    if hasattr(model, "transition_params"):
        counts["transition"] = int(model.transition_params())
        counts["codec"] = counts["total"] - counts["transition"]
    return counts


class NextFrameBatches(keras.utils.PyDataset):
    """Clips from `SequenceBatches` as (clip, clip[:, 1:]): the targets of next-frame prediction."""

    def __init__(self, clips: moving_mnist.SequenceBatches):
        super().__init__()
        self.clips = clips

    def __len__(self) -> int:
        return len(self.clips)

    def __getitem__(self, index: int):
        clip, _ = self.clips[index]  # (B, T, 64, 64, 1)
        return clip, clip[:, 1:]

    def on_epoch_end(self):
        self.clips.on_epoch_end()


# ----------------------------------------------------------------------------- evaluation


def rollout(model: keras.Model, sequences: np.ndarray, batch_size: int) -> np.ndarray:
    """Closed-loop predictions of frames 2..T for (N, T, H, W) sequences in [0, 1]: (N, T, H, W),
    frame k at index k-1 (index 0 repeats the first observed frame)."""
    clips = sequences[..., None].astype(np.float32)  # (N, T, H, W, 1)
    predicted = model.predict(clips, batch_size=batch_size, verbose=0)[..., 0]  # (N, T-1, H, W)
    return np.concatenate([sequences[:, :1].astype(np.float32), predicted], axis=1)


def evaluate_rollouts(model: keras.Model, sequences: np.ndarray, context: int, batch_size: int,
                      keep: int = 0) -> tuple[dict, np.ndarray]:
    """Per-frame metrics of frames context+1..T over all sequences, computed in chunks so a large
    test file never needs all its predictions in memory; also the first `keep` rollouts."""
    sums, kept = {}, []
    chunk = max(batch_size, 100)
    for lo in range(0, len(sequences), chunk):
        truth = np.asarray(sequences[lo : lo + chunk], dtype=np.float32)  # (b, T, H, W)
        predicted = rollout(model, truth, batch_size)
        metrics = frame_metrics(truth[:, context:], predicted[:, context:])
        for name, values in metrics.items():
            sums[name] = sums.get(name, 0.0) + np.asarray(values, np.float64) * len(truth)
        if sum(len(k) for k in kept) < keep:
            kept.append(predicted[: keep - sum(len(k) for k in kept)])
    per_frame = {name: total / len(sequences) for name, total in sums.items()}
    return per_frame, (np.concatenate(kept) if kept else np.zeros((0,) + sequences.shape[1:], np.float32))


def trivial_baselines(sequences: np.ndarray, context: int) -> dict:
    """Per-frame MSE of two predictions that learn nothing: all-black frames, and the last
    observed frame held still. A model must beat both to have learned motion."""
    future = sequences[:, context:]
    blank = frame_metrics(future, np.zeros_like(future))["mse"]
    still = frame_metrics(future, np.repeat(sequences[:, context - 1 : context], future.shape[1], axis=1))["mse"]
    return {"blank": np.asarray(blank), "last_frame": np.asarray(still)}


def summary_numbers(per_frame: dict, context: int) -> dict:
    """Means over the 10 -> 10 frames, the whole rollout, and the far horizon (frames 50..T)."""
    horizon = len(per_frame["mse"])
    windows = {"10to10": (0, min(SHORT_HORIZON, horizon)), "all": (0, horizon)}
    if context + horizon >= FAR_START:
        windows["far"] = (FAR_START - context - 1, horizon)
    return {
        f"{name}_{window}": float(np.mean(values[lo:hi]))
        for window, (lo, hi) in windows.items()
        for name, values in per_frame.items()
    }


def attention_analysis(model: HTAP, sequences: np.ndarray) -> dict:
    """H-TAP's weights over the whole rollout: span per layer/head, per step, the mean map."""
    clips = keras.ops.convert_to_tensor(sequences[..., None].astype(np.float32))
    per_layer = [keras.ops.convert_to_numpy(w) for w in model.attention_maps(clips)]  # L x (B, nh, T-1, T-1)
    n = per_layer[0].shape[-1]
    allowed = np.tril(np.ones((n, n), bool))
    report = span_report({f"layer{i + 1}": w for i, w in enumerate(per_layer)}, allowed)
    rollout_rows = slice(model.context - 1, n)  # queries that predict frames context+1..T
    report["rollout"] = span_report(
        {f"layer{i + 1}": w[:, :, rollout_rows] for i, w in enumerate(per_layer)},
        allowed[rollout_rows],
    )
    span_by_step = np.stack([per_query_span(w).mean(axis=0) for w in per_layer])  # (L, nh, T-1)
    return {
        "report": report,
        "span_by_step": span_by_step,
        "mean_weights_last_layer": per_layer[-1].mean(axis=(0, 1)),  # (T-1, T-1)
    }


# ----------------------------------------------------------------------------- training


def _config_tag(name: str, config: VideoConfig) -> str:
    """A short hash of what decides a trained model, so changed options never reuse a stale one."""
    fields = asdict(config)
    for shared in ("models", "seeds", "test_sequences", "eval_batch_size", "attention_sequences", "eval_length"):
        fields.pop(shared)
    if not fields["skip_features"]:
        fields.pop("skip_features")  # added later: models trained before it keep their tag
    return hashlib.sha256(json.dumps([name, fields], sort_keys=True, default=str).encode()).hexdigest()[:8]


def train_and_evaluate(name: str, seed: int, config: VideoConfig, train_pool: np.ndarray, test: np.ndarray,
                       out: Path, tracking_uri: str | None, keep: int) -> dict:
    """Train one model for one seed (or load it when this exact training finished before), then
    evaluate it on the fixed test set; all logged to one nested MLflow run."""
    state_dir = out / "runs" / f"{name}-seed{seed}-{_config_tag(name, config)}"
    model_path = state_dir / "model.keras"
    with training.resumable_run("video", f"{name}-seed{seed}", state_dir, config=asdict(config), seed=seed,
                                nested=True, tracking_uri=tracking_uri):
        if model_path.is_file():
            print(f"[video] {name} seed {seed}: reusing {model_path}")
            model = keras.models.load_model(model_path, safe_mode=True)
            info = json.loads((state_dir / "train.json").read_text())
        else:
            keras.utils.set_random_seed(seed)
            context = distributed.current()  # --distribute: replicas share global batches
            with context.scope():
                model = build_model(name, config)
            clips = moving_mnist.SequenceBatches(
                train_pool, config.batch_size, config.steps_per_epoch,
                length=config.context + config.train_horizon, n_digits=config.n_digits, seed=seed,
            )
            started = time.time()
            history = training.fit(
                model, context.shard(NextFrameBatches(clips)), epochs=config.epochs, state_dir=state_dir, seed=seed,
                callbacks=[clips.epoch_callback()], shuffle=False, verbose=1 if sys.stdout.isatty() else 2,
            )
            info = {
                "train_seconds": time.time() - started,
                "final_loss": float(history.history["loss"][-1]) if history.history.get("loss") else None,
                "parameters": parameter_counts(model),
            }
            model.save(model_path)
            write_json_atomic(state_dir / "train.json", info)
            tracking.log_metrics({"train_seconds": info["train_seconds"]})
            tracking.log_artifact(model_path)
        print(f"[video] {name} seed {seed}: evaluating on {len(test)} x {test.shape[1]} frames")
        per_frame, kept = evaluate_rollouts(model, test, config.context, config.eval_batch_size, keep=keep)
        numbers = summary_numbers(per_frame, config.context)
        tracking.log_metrics(numbers)
        for k, value in enumerate(per_frame["mse"]):
            tracking.log_metrics({"test_mse_per_frame": value}, step=config.context + 1 + k)
        attention = None
        if name == "htap":
            attention = attention_analysis(model, test[: config.attention_sequences])
    return {"per_frame": per_frame, "summary": numbers, "train": info, "examples": kept, "attention": attention}


def _mean_std(values) -> dict:
    return {**mean_std(values), "per_seed": np.asarray(values, np.float64).tolist()}


def _per_frame_std(curves) -> np.ndarray:
    """Sample std over seeds of per-frame curves (S, H), as `mean_std`; zeros for one seed."""
    curves = np.asarray(curves, np.float64)
    return curves.std(axis=0, ddof=1) if len(curves) > 1 else np.zeros(curves.shape[1:])


def run_training(args: argparse.Namespace) -> dict:
    config = resolve_config(args)
    out = ensure_writable_dir(Path(args.out) / "video")
    started = time.time()
    digits = mnist.load_mnist(args.mnist)
    train_pool, test_pool = mnist.split_pools(digits)
    test_set = moving_mnist.fixed_test_set(test_pool, config.test_sequences, config.eval_length,
                                           config.n_digits, seed=TEST_SET_SEED)
    test = test_set.astype(np.float32) / 255.0  # (N, T, 64, 64)
    shown = min(2, len(test))
    baselines = trivial_baselines(test, config.context)

    per_model = {name: {"per_frame": [], "summary": [], "train": []} for name in config.models}
    examples, attention = {}, None
    with training.resumable_run("video", f"video-{args.profile}", out / "state", config=asdict(config),
                                tracking_uri=args.tracking_uri) as parent:
        if digits.source == "sklearn-digits-fallback":
            tracking.log_metrics({"mnist_fallback": 1.0})
        for seed in config.seeds:
            for name in config.models:
                outcome = train_and_evaluate(name, seed, config, train_pool, test, out, args.tracking_uri, shown)
                for key in ("per_frame", "summary", "train"):
                    per_model[name][key].append(outcome[key])
                if seed == config.seeds[0]:
                    examples[name] = outcome["examples"]
                    attention = outcome["attention"] if name == "htap" else attention
                keras.backend.clear_session(free_memory=True)

        results = summarise(config, per_model, attention, args, digits.source)
        results["baselines"] = {name: {"per_frame_mse": mse.tolist(), **summary_numbers({"mse": mse}, config.context)}
                                for name, mse in baselines.items()}
        results["wall_time_s"] = time.time() - started
        figures = write_figures(config, per_model, attention, examples, test[:shown], baselines, out)
        results["figures"] = [str(p.name) for p in figures]
        write_json_atomic(out / "results.json", results)
        table = results_table(results)
        with atomic_path(out / "results.md") as tmp:
            tmp.write_text(results_markdown(results, table))
        tracking.log_metrics({k: v for k, v in flat_headline(results).items()})
        for path in [*figures, out / "results.json", out / "results.md"]:
            tracking.log_artifact(path)
        results["mlflow_run_id"] = parent.info.run_id
    print(f"\nPart 3 ({args.profile}, seeds {list(config.seeds)}, {results['wall_time_s']:.0f} s):\n{table}\n")
    if "htap_vs_tap_far_mse_change" in results:
        change = results["htap_vs_tap_far_mse_change"]
        print(f"H-TAP vs TAP, MSE frames {FAR_START}-{config.eval_length}: "
              f"{100 * change['mean']:+.1f}% ± {100 * change['std']:.1f}% over {len(config.seeds)} seed(s)")
    print(f"wrote {out / 'results.json'}, {out / 'results.md'} and {len(figures)} figures")
    return results


def summarise(config: VideoConfig, per_model: dict, attention: dict | None, args, mnist_source: str) -> dict:
    models = {}
    for name, runs in per_model.items():
        keys = runs["summary"][0].keys()
        models[name] = {
            "parameters": runs["train"][0]["parameters"],
            "train_seconds": _mean_std([r["train_seconds"] for r in runs["train"]]),
            "metrics": {k: _mean_std([s[k] for s in runs["summary"]]) for k in keys},
            "per_frame": {
                metric: {"mean": np.mean([p[metric] for p in runs["per_frame"]], axis=0).tolist(),
                         "std": _per_frame_std([p[metric] for p in runs["per_frame"]]).tolist()}
                for metric in runs["per_frame"][0]
            },
        }
    results = {
        "part": "video",
        "profile": args.profile,
        "config": {**asdict(config), "train_sequences": config.train_sequences},
        "seeds": list(config.seeds),
        "backend": keras.backend.backend(),
        "mnist_source": mnist_source,
        "protocol": {
            "context": config.context,
            "test_set": f"{config.test_sequences} sequences x {config.eval_length} frames, seed {TEST_SET_SEED}, "
                        "test digit pool",
            "10to10": f"frames {config.context + 1}-{config.context + SHORT_HORIZON} of the rollout",
            "long": f"frames {config.context + 1}-{config.eval_length}",
            "far": f"frames {FAR_START}-{config.eval_length}",
        },
        "models": models,
        "environment": environment_info(),
    }
    if "tap" in models and "htap" in models and "mse_far" in models["tap"]["metrics"]:
        tap = np.asarray(models["tap"]["metrics"]["mse_far"]["per_seed"])
        htap = np.asarray(models["htap"]["metrics"]["mse_far"]["per_seed"])
        results["htap_vs_tap_far_mse_change"] = _mean_std((htap - tap) / tap)
        tap_short = np.asarray(models["tap"]["metrics"]["mse_10to10"]["per_seed"])
        htap_short = np.asarray(models["htap"]["metrics"]["mse_10to10"]["per_seed"])
        results["htap_vs_tap_10to10_mse_change"] = _mean_std((htap_short - tap_short) / tap_short)
    if "tap" in models and "htap" in models:
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
    if "htap_vs_tap_far_mse_change" in results:
        flat["htap_vs_tap_far_mse_change"] = results["htap_vs_tap_far_mse_change"]["mean"]
    return flat


def results_table(results: dict) -> str:
    config = results["config"]
    has_far = config["eval_length"] >= FAR_START

    def cell(stats):
        return f"{stats['mean']:.2f} ± {stats['std']:.2f}"

    rows = []
    for name, model in results["models"].items():
        m = model["metrics"]
        row = [name, model["parameters"]["total"], model["parameters"].get("transition", "-"),
               cell(m["mse_10to10"]), f"{m['ssim_10to10']['mean']:.3f}", cell(m["mse_all"])]
        if has_far:
            row += [cell(m["mse_far"]), f"{m['ssim_far']['mean']:.3f}"]
        rows.append(row + [f"{model['train_seconds']['mean']:.0f}"])
    headers = ["model", "params", "transition params", f"MSE {config['context']}->10", f"SSIM {config['context']}->10",
               f"MSE {config['context']}->{config['eval_length'] - config['context']}"]
    if has_far:
        headers += [f"MSE frames {FAR_START}-{config['eval_length']}", f"SSIM frames {FAR_START}-{config['eval_length']}"]
    return markdown_table(headers + ["train s"], rows)


def results_markdown(results: dict, table: str) -> str:
    config = results["config"]
    lines = [
        "# Part 3: Moving MNIST, TAP vs H-TAP (ConvLSTM anchor)",
        "",
        f"Profile `{results['profile']}`, backend {results['backend']}, seeds {results['seeds']}, "
        f"MNIST source `{results['mnist_source']}`. Every model trained on the same "
        f"{config['train_sequences']} fresh sequences of {config['context'] + config['train_horizon']} frames "
        f"({config['epochs']} epochs x {config['steps_per_epoch']} steps x batch {config['batch_size']}). "
        f"Test: {results['protocol']['test_set']}. MSE: sum over the 64x64 pixels, mean over sequences "
        "(OpenSTL); values are mean ± std over seeds.",
        "",
        table,
        "",
        "Baselines that learn nothing, MSE 10->10 / whole rollout: "
        + "; ".join(f"{name} {b['mse_10to10']:.1f} / {b['mse_all']:.1f}" for name, b in results["baselines"].items())
        + " (`blank`: all-black frames; `last_frame`: the last observed frame held still).",
        "",
    ]
    if "htap_vs_tap_far_mse_change" in results:
        far = results["htap_vs_tap_far_mse_change"]
        short = results["htap_vs_tap_10to10_mse_change"]
        lines += [
            f"H-TAP vs TAP, relative MSE change on frames {FAR_START}-{config['eval_length']}: "
            f"**{100 * far['mean']:+.1f}% ± {100 * far['std']:.1f}%** "
            f"(per seed: {', '.join(f'{100 * v:+.1f}%' for v in far['per_seed'])}); "
            f"on 10 -> 10: {100 * short['mean']:+.1f}% ± {100 * short['std']:.1f}%. "
            "The seed's claim was -25%.",
            "",
        ]
    if "htap_attention" in results:
        att = results["htap_attention"]
        rows = [[layer, ", ".join(f"{s:.2f}" for s in v["span"]), ", ".join(f"{s:.2f}" for s in v["normalised_span"])]
                for layer, v in att["rollout"]["layers"].items()]
        lines += [
            f"H-TAP Attention Span over the rollout queries (frames {config['context'] + 1}-{config['eval_length']}), "
            f"per head, in frames and normalised by uniform attention (1.0 = uniform over the history):",
            "",
            markdown_table(["layer", "span per head", "normalised span per head"], rows),
            "",
        ]
    return "\n".join(lines)


def _strip_frames(length: int) -> list[int]:
    """STRIP_FRAMES that exist in a sequence of `length` frames, and always its last frame."""
    return sorted({f for f in STRIP_FRAMES if f <= length} | {length})


def write_figures(config: VideoConfig, per_model: dict, attention: dict | None, examples: dict,
                  truth: np.ndarray, baselines: dict, out: Path) -> list[Path]:
    figures = []
    mse = {name: (np.mean([p["mse"] for p in runs["per_frame"]], axis=0),
                  _per_frame_std([p["mse"] for p in runs["per_frame"]]))
           for name, runs in per_model.items()}
    train_length = config.context + config.train_horizon
    if attention is not None:
        last = config.eval_length
        shown = sorted({f for f in (config.context + 1, train_length, (config.context + last) // 2, last)
                        if config.context < f <= last})
        figures.append(plot_research_attention(
            attention["mean_weights_last_layer"], attention["span_by_step"], mse, config.context, train_length,
            shown, out / "research_attention_plot.png", far_start=FAR_START, baselines=baselines,
        ))
    else:
        figures.append(plot_mse_by_horizon({**{k: v[0] for k, v in mse.items()}, **baselines}, config.context,
                                           out / "mse_by_horizon.png", "Per-frame MSE of the rollout"))
    strip_frames = _strip_frames(config.eval_length)
    figures.append(plot_strip(
        truth, examples, strip_frames, config.context, out / "strip.png",
        title=f"Ground truth vs closed-loop rollout from {config.context} observed frames "
              f"(trained on {train_length}-frame clips; seed {config.seeds[0]})",
    ))
    figures.append(write_rollout_gif(truth[0], {k: v[0] for k, v in examples.items()}, config.context,
                                     out / "rollout.gif"))
    return figures


# ----------------------------------------------------------------------------- evaluate a checkpoint


def _load_checkpoint(path: Path) -> keras.Model:
    """A saved TAP, H-TAP or ConvLSTM; ConfigError naming the file for anything else."""
    # Keras reports a file that is not a zip archive as "File not found".
    reason = None if zipfile.is_zipfile(path) else "not a zip archive"
    if reason is None:
        try:
            model = keras.models.load_model(path, safe_mode=True)
        except Exception as err:  # noqa: BLE001 - keras raises many types for a bad archive
            reason = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
    if reason is not None:
        raise ConfigError(f"--checkpoint {str(path)!r} is not a readable .keras model ({reason})")
    if not hasattr(model, "frame_size"):
        raise ConfigError(f"--checkpoint {str(path)!r} holds a {type(model).__name__}, not a TAP, H-TAP or "
                          "ConvLSTM video model")
    return model


def run_evaluation(args: argparse.Namespace) -> dict:
    if not args.checkpoint or not args.test_set:
        raise ConfigError("seqattn video evaluate needs --checkpoint MODEL.keras and --test-set FILE.npy")
    checkpoint = Path(args.checkpoint)
    if not checkpoint.is_file():
        problem = "is not a file" if checkpoint.exists() else "does not exist"
        raise ConfigError(f"--checkpoint {str(checkpoint)!r} {problem}")
    _positive("context", args.context)
    out = ensure_writable_dir(Path(args.out) / "video" / "evaluate")
    model = _load_checkpoint(checkpoint)
    if args.context is not None:
        model.context = args.context  # every model's rollout works from any number of observed frames
    size = model.frame_size
    sequences = moving_mnist.load_sequences(args.test_set, args.layout, min_length=model.context + 1,
                                            frame_size=(size, size))
    started = time.time()
    with tracking.start_run("video", f"evaluate-{checkpoint.stem}", tracking_uri=args.tracking_uri,
                            config={"checkpoint": str(checkpoint), "test_set": str(args.test_set),
                                    "context": model.context, "layout": args.layout}):
        per_frame, kept = evaluate_rollouts(model, sequences, model.context, batch_size=16, keep=1)
        numbers = summary_numbers(per_frame, model.context)
        tracking.log_metrics(numbers)
        results = {
            "part": "video",
            "mode": "evaluate",
            "checkpoint": str(checkpoint),
            "model": model.name,
            "test_set": str(args.test_set),
            "sequences": int(sequences.shape[0]),
            "frames": int(sequences.shape[1]),
            "context": model.context,
            "backend": keras.backend.backend(),
            "metrics": numbers,
            "per_frame": {k: np.asarray(v).tolist() for k, v in per_frame.items()},
            "wall_time_s": time.time() - started,
            "environment": environment_info(),
        }
        figure = plot_mse_by_horizon({model.name: per_frame["mse"]}, model.context, out / "mse_by_horizon.png",
                                     f"{model.name} on {Path(args.test_set).name}")
        strip_frames = _strip_frames(sequences.shape[1])
        strip = plot_strip(sequences[:1], {model.name: kept[:1]}, strip_frames, model.context, out / "strip.png",
                           title=f"{model.name} on {Path(args.test_set).name}")
        write_json_atomic(out / "results.json", results)
        for path in (figure, strip, out / "results.json"):
            tracking.log_artifact(path)
    print(markdown_table(["metric", "value"], [[k, v] for k, v in numbers.items() if k.startswith(("mse", "ssim"))]))
    print(f"wrote {out / 'results.json'}")
    return results


def run(args: argparse.Namespace) -> dict:
    if getattr(args, "mode", "train") == "evaluate":
        return run_evaluation(args)
    return run_training(args)
