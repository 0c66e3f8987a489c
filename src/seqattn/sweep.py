"""Seed sweeps and ablations as MLflow parent/child runs, one process per child, run in parallel.

    python -m seqattn.sweep video --seeds 0 1 2 3 --parallel 2 --profile paper
    python -m seqattn.sweep attention --seeds 0 1 2 --variant heads1="--num-heads 1" \
        --variant heads4="--num-heads 4" --parallel 3 --tracking-uri http://mlflow-host:5000

`launch` opens a parent run in the part's MLflow experiment and starts one `seqattn <part>`
process per (variant, seed), at most `parallel` at a time, each with SEQATTN_PARENT_RUN_ID set so
that `tracking.start_run` files the part's run as a child of the parent. Children write their
usual outputs under <out>/sweeps/<name>/<label>/ and their logs to <label>.log beside them.
`gather` then reads every child's params, metrics and status back from MLflow (never from the
children's files), so a sweep whose children ran on other hosts against the same tracking
server is gathered the same way. The parent run gets the mean and std of every child metric and
the gathered table as artifacts; it ends FAILED if any child failed.

Store: processes on one machine can share the default SQLite store (SQLite serialises their
writes); children on several hosts need an `mlflow server` URL as --tracking-uri. Each child
gets OMP_NUM_THREADS = cores / parallel unless set, and with --gpus a CUDA device round-robin.
On a terminal a progress bar counts the children finished (`seqattn.progress`; --quiet: none).
"""

import argparse
import os
import re
import shlex
import subprocess
import sys
import time
from pathlib import Path

from seqattn.errors import ConfigError, SeqattnError, TrackingError
from seqattn.progress import progress, progress_write, set_quiet
from seqattn.report import mean_std

_RUN_ID = re.compile(r"^[0-9a-f]{32}$")
_POLL_S = 0.5


def child_env(parent_run_id: str, label: str, tracking_uri: str, threads: int, gpu: str | None = None) -> dict:
    """The environment of one child process: the parent to attach to, its label, its threads."""
    from seqattn import tracking

    env = dict(os.environ)
    env.pop("MLFLOW_RUN_ID", None)  # would make MLflow reopen that run instead of creating a child
    env.update({tracking.PARENT_RUN_ENV: parent_run_id, tracking.SWEEP_LABEL_ENV: label,
                "MLFLOW_TRACKING_URI": tracking_uri})
    env.setdefault("OMP_NUM_THREADS", str(threads))
    if gpu is not None:
        env["CUDA_VISIBLE_DEVICES"] = gpu
    return env


def run_children(commands: dict[str, list[str]], parent_run_id: str, tracking_uri: str, log_dir: str | os.PathLike,
                 parallel: int = 1, gpus: list[str] | None = None) -> dict[str, int]:
    """Run {label: argv} as child processes, at most `parallel` at once; return their exit codes."""
    if parallel < 1:
        raise ConfigError(f"--parallel must be a positive integer; got {parallel}")
    log_dir = Path(log_dir)
    log_dir.mkdir(parents=True, exist_ok=True)
    threads = max(1, (os.cpu_count() or 1) // parallel)
    waiting, running, codes = list(commands.items()), {}, {}
    started = 0
    with progress(total=len(commands), desc="sweep children", unit="run", leave=True) as bar:
        while waiting or running:
            while waiting and len(running) < parallel:
                label, argv = waiting.pop(0)
                gpu = gpus[started % len(gpus)] if gpus else None
                log = open(log_dir / f"{label}.log", "w")
                env = child_env(parent_run_id, label, tracking_uri, threads, gpu)
                running[label] = (subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, env=env), log)
                started += 1
                progress_write(f"sweep: started {label}: {shlex.join(argv)}")
            for label, (process, log) in list(running.items()):
                if process.poll() is not None:
                    log.close()
                    codes[label] = process.returncode
                    del running[label]
                    state = "done" if process.returncode == 0 else f"FAILED (exit {process.returncode}, see {log.name})"
                    progress_write(f"sweep: {label} {state}")
                    bar.update()
            time.sleep(_POLL_S)
    return codes


def _parent_id(client, part: str, parent: str) -> str:
    """A parent given by run id, or by run name (the latest run of that name in the part's experiment)."""
    import mlflow

    from seqattn import tracking

    if _RUN_ID.match(parent):
        try:
            return client.get_run(parent).info.run_id
        except mlflow.exceptions.MlflowException:
            pass  # not an id in this store: try it as a name
    experiment = client.get_experiment_by_name(tracking.EXPERIMENTS[part])
    runs = [] if experiment is None else client.search_runs(
        [experiment.experiment_id], filter_string=f"attributes.run_name = '{parent}'",
        order_by=["attributes.start_time DESC"], max_results=1,
    )
    if not runs:
        raise TrackingError(f"no run named or with id {parent!r} in experiment {tracking.EXPERIMENTS[part]!r}")
    return runs[0].info.run_id


def gather(part: str, parent: str, tracking_uri: str | None = None) -> list[dict]:
    """The child runs of sweep `parent` (run id or name) as read from MLflow, sorted by label.

    Each is {"run_id", "run_name", "label", "status", "params", "metrics", "tags"} with the final
    value of every metric and the seqattn.* tags (seed, backend, versions, git commit).
    """
    import mlflow

    from seqattn import tracking

    if part not in tracking.EXPERIMENTS:
        raise ConfigError(f"part must be one of {', '.join(tracking.EXPERIMENTS)}; got {part!r}")
    client = mlflow.MlflowClient(tracking.configure(tracking_uri))
    parent_id = _parent_id(client, part, parent)
    experiment_id = client.get_run(parent_id).info.experiment_id
    runs = mlflow.search_runs(
        experiment_ids=[experiment_id], filter_string=f"tags.mlflow.parentRunId = '{parent_id}'",
        output_format="list",
    )
    children = [
        {
            "run_id": run.info.run_id,
            "run_name": run.info.run_name,
            "label": run.data.tags.get("seqattn.sweep_label", run.info.run_name),
            "status": run.info.status,
            "params": dict(run.data.params),
            "metrics": dict(run.data.metrics),
            "tags": {k: v for k, v in run.data.tags.items() if k.startswith("seqattn.")},
        }
        for run in runs
    ]
    return sorted(children, key=lambda child: child["label"])


def summarise(children: list[dict]) -> dict[str, dict[str, float]]:
    """Mean and std (`report.mean_std`) over the finished children of every metric they all report."""
    finished = [child["metrics"] for child in children if child["status"] == "FINISHED"]
    if not finished:
        return {}
    names = sorted(set.intersection(*(set(m) for m in finished)))
    return {name: {**mean_std([m[name] for m in finished]), "n": len(finished)} for name in names}


def child_commands(part: str, seeds: list[int], variants: dict[str, list[str]], out: Path, common: list[str]) -> dict:
    """{label: argv} of `seqattn <part>` for every variant and seed."""
    commands = {}
    for variant, variant_args in (variants or {"": []}).items():
        for seed in seeds:
            label = f"{variant}-seed{seed}" if variant else f"seed{seed}"
            commands[label] = [sys.executable, "-m", "seqattn.cli", part, *common, "--seeds", str(seed),
                               "--out", str(out / label), *variant_args]
    return commands


def parse_variants(specs: list[str]) -> dict[str, list[str]]:
    variants = {}
    for spec in specs:
        name, sep, args = spec.partition("=")
        if not sep or not re.fullmatch(r"[A-Za-z0-9_.-]+", name):
            raise ConfigError(f"--variant must look like NAME=\"--option value\"; got {spec!r}")
        if name in variants:
            raise ConfigError(f"--variant {name!r} is given twice")
        variants[name] = shlex.split(args)
    return variants


def build_parser() -> argparse.ArgumentParser:
    from seqattn.backend import BACKENDS
    from seqattn.cli import PARTS, PROFILES

    parser = argparse.ArgumentParser(
        prog="python -m seqattn.sweep",
        description="Run `seqattn PART` once per seed (and variant) as parallel processes, as child runs "
        "of one MLflow parent run; then gather the children from MLflow.",
    )
    parser.add_argument("part", choices=list(PARTS))
    parser.add_argument("--seeds", type=int, nargs="+", required=True, metavar="SEED")
    parser.add_argument("--variant", action="append", default=[], metavar='NAME="ARGS"',
                        help='an ablation: part options for one variant, e.g. heads1="--num-heads 1" (repeatable)')
    parser.add_argument("--parallel", type=int, default=1, help="children running at once (default: 1)")
    parser.add_argument("--gpus", nargs="+", default=None, metavar="ID",
                        help="CUDA devices handed to children in turn (CUDA_VISIBLE_DEVICES)")
    parser.add_argument("--name", default=None, help="parent run name (default: <part>-sweep-<time>)")
    parser.add_argument("--profile", choices=PROFILES, default="quick")
    parser.add_argument("--backend", choices=BACKENDS, default=None, help="Keras backend of the children")
    parser.add_argument("--out", default="outputs", help="children write to OUT/sweeps/NAME/LABEL/")
    parser.add_argument("--tracking-uri", default=None,
                        help="MLflow store shared by all children (default: $MLFLOW_TRACKING_URI or sqlite:///mlflow.db)")
    parser.add_argument("--quiet", action="store_true",
                        help="no progress bar (it is drawn only when stderr is a terminal anyway)")
    parser.epilog = "Options after -- go to every child, e.g. -- --epochs 5."
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    split = argv.index("--") if "--" in argv else len(argv)
    args = build_parser().parse_args(argv[:split])
    args.part_args = argv[split + 1:]
    set_quiet(args.quiet)
    try:
        return _sweep(args)
    except SeqattnError as err:
        print(f"seqattn.sweep: error: {err}", file=sys.stderr)
        return 1


def _sweep(args: argparse.Namespace) -> int:
    from seqattn import tracking
    from seqattn.io import atomic_path, ensure_writable_dir, write_json_atomic
    from seqattn.report import markdown_table

    variants = parse_variants(args.variant)
    name = args.name or f"{args.part}-sweep-{time.strftime('%Y%m%d-%H%M%S')}"
    out = ensure_writable_dir(Path(args.out) / "sweeps" / name)
    uri = tracking.resolve_tracking_uri(args.tracking_uri)
    if uri.startswith("sqlite:///") and not uri.startswith("sqlite:////"):
        uri = f"sqlite:///{Path(uri[len('sqlite:///'):]).resolve()}"  # children run in the same store
    common = ["--profile", args.profile, "--tracking-uri", uri]
    if args.backend:
        common += ["--backend", args.backend]
    extra = args.part_args
    commands = child_commands(args.part, args.seeds, variants, out, common + extra)
    config = {"seeds": args.seeds, "variants": {k: shlex.join(v) for k, v in variants.items()},
              "profile": args.profile, "part_args": shlex.join(extra), "parallel": args.parallel}
    with tracking.start_run(args.part, name, config=config, tracking_uri=uri) as parent:
        codes = run_children(commands, parent.info.run_id, uri, out, args.parallel, args.gpus)
        children = gather(args.part, parent.info.run_id, uri)
        summary = summarise(children)
        tracking.log_metrics({f"{metric}_{stat}": value for metric, stats in summary.items()
                              for stat, value in stats.items() if stat != "n"})
        write_json_atomic(out / "sweep.json", {"parent_run_id": parent.info.run_id, "exit_codes": codes,
                                               "children": children, "summary": summary})
        rows = [[metric, stats["mean"], stats["std"], stats["n"]] for metric, stats in summary.items()]
        table = markdown_table(["metric", "mean", "std over children", "n"], rows)
        with atomic_path(out / "sweep.md") as tmp:
            tmp.write_text(f"# Sweep {name} ({args.part})\n\n{table}\n")
        for path in (out / "sweep.json", out / "sweep.md"):
            tracking.log_artifact(path)
        failed = sorted(label for label, code in codes.items() if code != 0)
        if failed:
            raise SeqattnError(f"{len(failed)} of {len(codes)} children failed: {', '.join(failed)} "
                               f"(logs in {out}); the parent run {parent.info.run_id} is marked FAILED")
    print(f"\nSweep {name}: {len(children)} child runs gathered from MLflow (parent {parent.info.run_id})\n{table}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
