"""Part 1: train our multi-head attention on key-value retrieval and check what it attends to.

The task (`seqattn.data.retrieval`) has a known correct alignment, so the experiment reports
both answer accuracy and alignment accuracy (argmax of the head-averaged weights equals the
item holding the asked key), plus the Attention Span of the learned and correct maps.
"""

import argparse
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import keras
import numpy as np

from seqattn import tracking, training
from seqattn.data.retrieval import make_retrieval_task
from seqattn.errors import ConfigError
from seqattn.experiments.common import PositiveInt, write_outputs
from seqattn.io import ensure_writable_dir, environment_info
from seqattn.metrics import attention_span, span_metrics, span_report
from seqattn.models.retrieval import RetrievalModel
from seqattn.plots.alignment import plot_alignment
from seqattn.report import markdown_table, mean_std

DESCRIPTION = "Part 1: multi-head attention from scratch on key-value retrieval (known alignment)"


@dataclass(frozen=True)
class AttentionConfig:
    n_pairs: int = 8
    n_keys: int = 16
    n_values: int = 16
    d_model: int = 32
    num_heads: int = 2
    train_samples: int = 6000
    test_samples: int = 1000
    epochs: int = 6
    batch_size: int = 64
    learning_rate: float = 3e-3
    seeds: tuple = (0,)


PROFILES = {
    "quick": AttentionConfig(),
    "paper": AttentionConfig(epochs=12, seeds=(0, 1, 2)),
    "full": AttentionConfig(n_pairs=16, n_keys=32, n_values=32, d_model=64, train_samples=50000, epochs=30,
                            seeds=(0, 1, 2, 3, 4)),
}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--epochs", action=PositiveInt, default=None, help="training epochs (default: the profile's)")
    parser.add_argument("--n-pairs", action=PositiveInt, default=None, help="stored key-value pairs per sample")
    parser.add_argument("--num-heads", action=PositiveInt, default=None, help="attention heads")


def resolve_config(args: argparse.Namespace) -> AttentionConfig:
    config = PROFILES[args.profile]
    overrides = {"epochs": args.epochs, "n_pairs": args.n_pairs, "num_heads": args.num_heads}
    config = replace(config, **{k: v for k, v in overrides.items() if v is not None})
    if args.seeds:
        config = replace(config, seeds=tuple(args.seeds))
    if config.d_model % config.num_heads:
        raise ConfigError(f"--num-heads {config.num_heads} must divide d_model={config.d_model}")
    if config.n_pairs > config.n_keys:
        raise ConfigError(f"--n-pairs {config.n_pairs} exceeds the {config.n_keys} distinct keys")
    return config


def build_model(config: AttentionConfig) -> RetrievalModel:
    model = RetrievalModel(config.n_keys, config.n_values, config.d_model, config.num_heads)
    model.compile(
        optimizer=keras.optimizers.Adam(config.learning_rate),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        metrics=["accuracy"],
    )
    return model


def evaluate(model: RetrievalModel, task) -> tuple[dict, np.ndarray]:
    """Answer accuracy, alignment accuracy and span metrics on `task`; also returns the weights."""
    logits, weights = model(task.inputs(), return_attention_scores=True)
    logits = keras.ops.convert_to_numpy(logits)
    weights = keras.ops.convert_to_numpy(weights)  # (N, nh, n, n)
    answers = logits.argmax(-1)
    chosen_item = weights.mean(axis=1).argmax(-1)  # (N, n), heads averaged
    correct_map = np.zeros_like(weights[:, 0])
    n = task.alignment.shape[1]
    correct_map[np.arange(len(weights))[:, None], np.arange(n)[None, :], task.alignment] = 1.0
    per_head = span_metrics(span_report({"cross_attention": weights}))
    means = {name: per_head.pop(name) for name in ("attention_span", "normalised_span", "attention_entropy")}
    metrics = {
        "answer_accuracy": float((answers == task.targets).mean()),
        "alignment_accuracy": float((chosen_item == task.alignment).mean()),
        **means,
        "correct_attention_span": float(attention_span(correct_map).mean()),
        "uniform_attention_entropy": float(np.log(n)),
        **per_head,  # attention_span_head1, normalised_span_head1, ...
    }
    return metrics, weights


def train_one_seed(config: AttentionConfig, seed: int, out: Path,
                   tracking_uri: str | None) -> tuple[dict, RetrievalModel, str]:
    """Train and evaluate one seed in its own nested run; returns its metrics, model and run id."""
    train = make_retrieval_task(config.train_samples, config.n_pairs, config.n_keys, config.n_values, seed)
    test = make_retrieval_task(config.test_samples, config.n_pairs, config.n_keys, config.n_values, seed + 10_000)
    state_dir = out / f"seed{seed}"
    with training.resumable_run("attention", f"retrieval-seed{seed}", state_dir, config=asdict(config),
                                seed=seed, nested=True, tracking_uri=tracking_uri) as run:
        keras.utils.set_random_seed(seed)
        model = build_model(config)
        training.fit(model, train.inputs(), train.targets, epochs=config.epochs, state_dir=state_dir, seed=seed,
                     batch_size=config.batch_size, validation_split=0.1, verbose=2)
        metrics, _ = evaluate(model, test)
        tracking.log_metrics(metrics)
        model_path = state_dir / "model.keras"
        model.save(model_path)
        tracking.log_artifact(model_path)
    return metrics, model, run.info.run_id


def summarise(per_seed: dict[int, dict]) -> dict:
    names = next(iter(per_seed.values())).keys()
    return {name: mean_std([m[name] for m in per_seed.values()]) for name in names}


def run(args: argparse.Namespace) -> dict:
    config = resolve_config(args)
    out = ensure_writable_dir(Path(args.out) / "attention")
    started = time.time()
    per_seed = {}
    with training.resumable_run("attention", f"attention-{args.profile}", out, config=asdict(config),
                                tracking_uri=args.tracking_uri):
        for seed in config.seeds:
            per_seed[seed], model, seed_run_id = train_one_seed(config, seed, out, args.tracking_uri)
        summary = summarise(per_seed)
        tracking.log_metrics({f"{k}_mean": v["mean"] for k, v in summary.items()})

        # The figure shows the last seed's model on three held-out samples.
        shown = make_retrieval_task(3, config.n_pairs, config.n_keys, config.n_values, seed=99_999)
        _, weights = evaluate(model, shown)
        figure = plot_alignment(
            weights, shown.alignment, shown.keys, shown.queries, out / "attention_viz.png",
            title=f"Key-value retrieval: learned attention vs correct alignment "
                  f"(held-out alignment accuracy {per_seed[config.seeds[-1]]['alignment_accuracy']:.1%})",
        )
        results = {
            "part": "attention",
            "profile": args.profile,
            "config": asdict(config),
            "seeds": list(config.seeds),
            "per_seed": {str(s): m for s, m in per_seed.items()},
            "summary": summary,
            "wall_time_s": time.time() - started,
            "environment": environment_info(),
        }
        rows = [[name, v["mean"], v["std"]] for name, v in summary.items()]
        table = markdown_table(["metric (held-out)", "mean", "std over seeds"], rows)
        write_outputs(out, results, f"# Part 1: key-value retrieval\n\n{table}\n", [figure])
        tracking.log_artifact(figure, run_id=seed_run_id)  # and beside the model it shows
    print(f"\nPart 1 ({args.profile}, seeds {list(config.seeds)}):\n{table}\n")
    print(f"wrote {out / 'results.json'} and {figure}")
    return results
