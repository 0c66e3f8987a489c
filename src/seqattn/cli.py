"""Command line: `seqattn <part> [options]`, one sub-command per part of the study, and
`seqattn ui`, the MLflow UI on the project's tracking store.

The backend is read from argv before anything imports keras, because Keras fixes its backend at
import time. Each part lives in `seqattn.experiments.<part>` and provides `add_arguments(parser)`,
`run(args) -> dict` and a one-line `DESCRIPTION`. Options are checked when parsed or before any
data is read, so a bad one costs a second, not a training run.
"""

import argparse
import importlib
import os
import sys

from seqattn.backend import BACKENDS, DEFAULT_BACKEND, import_quietly, select_backend
from seqattn.errors import SeqattnError

# Only the chosen part's module is imported (each pulls in keras and its models).
PARTS = {
    "attention": "Part 1: multi-head attention from scratch on key-value retrieval (known alignment)",
    "forecast": "Part 2: RNN + attention forecaster on chaotic series and ETT, against baselines",
    "video": "Part 3: Moving MNIST over 100 frames, TAP vs H-TAP vs ConvLSTM",
}
PROFILES = ("quick", "paper", "full")
DEFAULT_TRACKING_URI = "sqlite:///mlflow.db"  # as seqattn.tracking
UI_DESCRIPTION = "MLflow UI on the project's tracking store, the runs of every part (binds 127.0.0.1)"
MAX_SEED = 2**32 - 1  # numpy's seed range, which keras.utils.set_random_seed passes on


def seed_int(value: str) -> int:
    """argparse type: a random seed, an integer in [0, 2**32 - 1]."""
    try:
        number = int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be an integer in [0, {MAX_SEED}]; got {value!r}") from None
    if not 0 <= number <= MAX_SEED:
        raise argparse.ArgumentTypeError(f"must be an integer in [0, {MAX_SEED}]; got {value!r}")
    return number


def add_common_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--backend", choices=BACKENDS, default=os.environ.get("KERAS_BACKEND") or DEFAULT_BACKEND,
        help=f"Keras backend (default: $KERAS_BACKEND or {DEFAULT_BACKEND}, the fastest on a 2-core CPU)",
    )
    parser.add_argument(
        "--profile", choices=PROFILES, default="quick",
        help="quick: minutes on 2 CPU cores; paper: what the paper reports; full: the full protocol, for a GPU",
    )
    parser.add_argument(
        "--seeds", type=seed_int, nargs="+", default=None, metavar="SEED",
        help="random seeds, one run each (default: the profile's)",
    )
    parser.add_argument("--out", default="outputs", help="folder for results.json and figures (default: outputs)")
    parser.add_argument(
        "--distribute", choices=("none", "data-parallel"), default="none",
        help="data-parallel: all local devices (jax, tensorflow) or one process per device under "
        "torchrun (torch); --batch-size stays the global batch (see README, Scaling out)",
    )
    parser.add_argument(
        "--tracking-uri", default=None,
        help="MLflow tracking URI (default: $MLFLOW_TRACKING_URI or sqlite:///mlflow.db in the working directory)",
    )
    parser.add_argument("--quiet", action="store_true",
                        help="no progress bars (they are drawn only when stderr is a terminal anyway)")


def preselect_backend(argv: list[str]) -> bool:
    """Set KERAS_BACKEND from argv (or the environment) before keras is imported.

    Returns False for an unknown name, which the full parser then reports with the choices.
    """
    pre = argparse.ArgumentParser(add_help=False)
    pre.add_argument("--backend", default=None)
    known, _ = pre.parse_known_args(argv)
    name = known.backend or os.environ.get("KERAS_BACKEND") or None
    if name is not None and name not in BACKENDS:
        return False  # keras must not load: it would fall back to its own default
    select_backend(name)
    return True


def _port(value: str) -> int:
    try:
        port = int(value)
    except ValueError:
        port = 0
    if not 1 <= port <= 65535:
        raise argparse.ArgumentTypeError(f"must be a port number in [1, 65535]; got {value!r}")
    return port


def add_ui_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--tracking-uri", default=None,
        help="the store to show (default: $MLFLOW_TRACKING_URI or sqlite:///mlflow.db in the working directory)",
    )
    parser.add_argument("--host", default="127.0.0.1",
                        help="address to bind (default 127.0.0.1: this machine only; 0.0.0.0 exposes the "
                             "runs to the network)")
    parser.add_argument("--port", type=_port, default=5000, help="port (default 5000)")


def ui_command(args: argparse.Namespace) -> list[str]:
    """`mlflow ui` on the store the parts log to (the rule of `tracking.resolve_tracking_uri`, which
    imports keras); the store is always named, as mlflow's own default prefers a ./mlruns folder."""
    store = args.tracking_uri or os.environ.get("MLFLOW_TRACKING_URI") or DEFAULT_TRACKING_URI
    # One worker: a local viewer needs no more, and each one imports all of MLflow.
    return [sys.executable, "-m", "mlflow", "ui", "--backend-store-uri", store,
            "--host", args.host, "--port", str(args.port), "--workers", "1"]


def run_ui(args: argparse.Namespace) -> None:
    """Replace this process by the MLflow UI, so Ctrl-C and signals reach the server itself.

    First the project's experiments are made ready for it (`seqattn.mlflow_experiments`: described,
    model-training, with a saved view of their headline metrics), and the address of each one's
    runs table is printed: the UI's own home page is its GenAI overview.
    """
    from mlflow import MlflowClient

    from seqattn import mlflow_experiments

    command = ui_command(args)
    client = MlflowClient(command[5])
    host = "127.0.0.1" if args.host in ("0.0.0.0", "::") else args.host  # a browser cannot open 0.0.0.0
    base = f"http://{host}:{args.port}"
    print(f"MLflow UI on {base} (store {command[5]}); Ctrl-C stops it. Open the runs of each part:", flush=True)
    for part, description in PARTS.items():
        experiment = mlflow_experiments.ensure(client, part)
        print(f"  {description.split(':')[0]} ({part}): {mlflow_experiments.runs_page(base, experiment.experiment_id)}",
              flush=True)
    # MLflow's job runner starts seven worker processes for GenAI jobs this study never runs.
    os.environ.setdefault("MLFLOW_SERVER_ENABLE_JOB_EXECUTION", "false")
    os.execv(command[0], command)


def load_part(name: str):
    import_quietly()  # the part's module imports keras, and keras the backend
    return importlib.import_module(f"seqattn.experiments.{name}")


def _chosen_part(argv: list[str]) -> str | None:
    return next((arg for arg in argv if not arg.startswith("-")), None)


def build_parser(argv: list[str] = ()) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="seqattn",
        description="Sequence modelling and attention study. Each part trains, evaluates, "
        "logs to MLflow and writes results.json and figures to --out/<part>/.",
    )
    sub = parser.add_subparsers(dest="part", metavar="PART", required=True,
                                help=" | ".join([*PARTS, "ui"]))
    chosen = _chosen_part(list(argv))
    for name, description in PARTS.items():
        part_parser = sub.add_parser(name, help=description, description=description)
        add_common_arguments(part_parser)
        if name == chosen:
            load_part(name).add_arguments(part_parser)
    add_ui_arguments(sub.add_parser("ui", help=UI_DESCRIPTION, description=UI_DESCRIPTION))
    return parser


def run_part(name: str, args: argparse.Namespace) -> dict:
    import keras

    from seqattn import distributed, progress, tracking
    from seqattn.backend import limit_torch_threads
    from seqattn.io import source_state

    progress.set_quiet(args.quiet)
    source_state()  # results record the commit this process loaded, even if HEAD moves meanwhile
    limit_torch_threads()
    context = distributed.configure(args.distribute)
    args.out, args.tracking_uri = context.worker_outputs(args.out, args.tracking_uri)
    # An unreachable server fails now, not after loading data; a new store is created by the first
    # run, so a bad data file leaves none behind.
    tracking.configure(args.tracking_uri, open_store=False)
    keras.utils.set_random_seed((args.seeds or [0])[0])
    return load_part(name).run(args)


def parse_arguments(argv: list[str], make_parser) -> argparse.Namespace:
    """Choose the backend, then parse; `make_parser(argv)` may import keras-based modules."""
    backend_ok = preselect_backend(argv)
    parser = make_parser(argv if backend_ok else [])
    args = parser.parse_args(argv)  # exits 2 on an unknown --backend, listing the choices
    if not backend_ok:
        parser.error(f"KERAS_BACKEND={os.environ['KERAS_BACKEND']!r} is not a backend; "
                     f"choose one of {', '.join(BACKENDS)}")
    return args


def _store_error(err: Exception) -> bool:
    """An MlflowException, or an error of the database layer under MLflow's SQL store (SQLAlchemy,
    alembic's migrations). Checked by name: importing mlflow here would slow every command down."""
    return any((cls.__name__ == "MlflowException" and cls.__module__.startswith("mlflow."))
               or cls.__module__.startswith(("sqlalchemy.", "alembic."))
               for cls in type(err).__mro__)


def exit_code(prog: str, work) -> int:
    """Run `work()`; a user error becomes one line on stderr and exit 1, Ctrl-C exit 130.

    MLflow's own errors count as user errors: a --tracking-uri it cannot use (an unknown scheme, a
    plain folder), a locked, unwritable or corrupt store.
    """
    try:
        work()
    except SeqattnError as err:
        print(f"{prog}: error: {err}", file=sys.stderr)
        return 1
    except Exception as err:
        if not _store_error(err):
            raise
        message = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        print(f"{prog}: error: MLflow, tracking URI {sys.modules['mlflow'].get_tracking_uri()!r}: {message}",
              file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(f"{prog}: interrupted; rerun the same command to resume from the last epoch", file=sys.stderr)
        return 130
    return 0


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)

    def work():
        args = parse_arguments(argv, build_parser)
        if args.part == "ui":
            run_ui(args)
        else:
            run_part(args.part, args)

    return exit_code("seqattn", work)


if __name__ == "__main__":
    sys.exit(main())
