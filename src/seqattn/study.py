"""The whole study in one command: Parts 1-3 in order, then one summary.

`python sequence_attention.py [--profile quick|paper|full] [--parts ...] [--seeds ...]` runs
each part exactly as `seqattn <part>` would with the same common options and the part's
defaults, and prints every part's results table at the end.
"""

import argparse
import sys
import time
from pathlib import Path

from seqattn import cli


def build_parser(argv: list[str] = ()) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python sequence_attention.py",
        description="Run the seqattn study: Part 1 attention from scratch, Part 2 forecasting, "
        "Part 3 video prediction (TAP vs H-TAP). Results go to --out/<part>/, runs to MLflow.",
    )
    cli.add_common_arguments(parser)
    parser.add_argument(
        "--parts", nargs="+", choices=list(cli.PARTS), default=list(cli.PARTS), metavar="PART",
        help=f"parts to run, in order (default: all of {', '.join(cli.PARTS)})",
    )
    return parser


def part_arguments(part: str, study_args: argparse.Namespace) -> argparse.Namespace:
    """The part's own defaults, with the study's common options applied."""
    parser = argparse.ArgumentParser()
    cli.add_common_arguments(parser)
    cli.load_part(part).add_arguments(parser)
    args = parser.parse_args([])
    for name in ("backend", "profile", "seeds", "out", "tracking_uri", "distribute", "quiet"):
        setattr(args, name, getattr(study_args, name))
    return args


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)

    def work():
        args = cli.parse_arguments(argv, build_parser)
        started = time.time()
        for part in args.parts:
            print(f"\n=== {part} ({args.profile} profile, {args.backend} backend) ===", flush=True)
            cli.run_part(part, part_arguments(part, args))
        print(f"\n=== summary ({time.time() - started:.0f} s) ===")
        for part in args.parts:
            table = Path(args.out) / part / "results.md"
            if table.is_file():
                print(f"\n{table.read_text()}")

    return cli.exit_code("sequence_attention", work)
