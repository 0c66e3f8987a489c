"""Command line: `seqattn <part> [options]`, one sub-command per part of the study.

The backend is read from argv before anything imports keras, because Keras fixes its backend at
import time. Each part lives in `seqattn.experiments.<part>` and provides `add_arguments(parser)`,
`run(args) -> dict` and a one-line `DESCRIPTION`.
"""

import argparse
import importlib
import os
import sys

from seqattn.backend import BACKENDS, select_backend
from seqattn.errors import SeqattnError

PARTS = {
    "attention": "seqattn.experiments.attention",
    "forecast": "seqattn.experiments.forecast",
    "video": "seqattn.experiments.video",
}
PROFILES = ("quick", "paper", "full")


def add_common_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--backend", choices=BACKENDS, default=os.environ.get("KERAS_BACKEND") or "torch",
        help="Keras backend (default: $KERAS_BACKEND or torch)",
    )
    parser.add_argument(
        "--profile", choices=PROFILES, default="quick",
        help="quick: minutes on 2 CPU cores; paper: what the paper reports; full: the full protocol, for a GPU",
    )
    parser.add_argument(
        "--seeds", type=int, nargs="+", default=None, metavar="SEED",
        help="random seeds, one run each (default: the profile's)",
    )
    parser.add_argument("--out", default="outputs", help="folder for results.json and figures (default: outputs)")
    parser.add_argument(
        "--tracking-uri", default=None,
        help="MLflow tracking URI (default: $MLFLOW_TRACKING_URI or sqlite:///mlflow.db in the working directory)",
    )


def _preselect_backend(argv: list[str]) -> None:
    """Set KERAS_BACKEND from argv (or leave the environment's) before keras is imported."""
    pre = argparse.ArgumentParser(add_help=False)
    pre.add_argument("--backend", default=None)
    known, _ = pre.parse_known_args(argv)
    if known.backend in BACKENDS:
        select_backend(known.backend)
    elif known.backend is None:
        select_backend(None)
    # An unknown name is left for the full parser, which lists the choices and exits with 2.


def load_part(name: str):
    return importlib.import_module(PARTS[name])


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="seqattn",
        description="Sequence modelling and attention study. Each part trains, evaluates, "
        "logs to MLflow and writes results.json and figures to --out.",
    )
    sub = parser.add_subparsers(dest="part", metavar="PART", required=True)
    for name in PARTS:
        module = load_part(name)
        part_parser = sub.add_parser(name, help=module.DESCRIPTION, description=module.DESCRIPTION)
        add_common_arguments(part_parser)
        module.add_arguments(part_parser)
    return parser


def run_part(name: str, args: argparse.Namespace) -> dict:
    import keras

    keras.utils.set_random_seed((args.seeds or [0])[0])
    return load_part(name).run(args)


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    try:
        _preselect_backend(argv)
        args = build_parser().parse_args(argv)
        run_part(args.part, args)
    except SeqattnError as err:
        print(f"seqattn: error: {err}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("seqattn: interrupted; rerun the same command to resume from the last epoch", file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
