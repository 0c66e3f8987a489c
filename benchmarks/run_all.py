"""Run every benchmark, then write RESULTS.md. Each benchmark also runs alone: python -m benchmarks.<name>.

`python -m benchmarks.run_all [NAME ...] [--quiet]`: --quiet draws no progress bars (they are drawn
only when stderr is a terminal anyway).
"""

import argparse
import importlib

from seqattn.progress import set_quiet

BENCHMARKS = ["bench_attention", "bench_moving_mnist", "bench_video", "bench_forecast", "bench_backends"]


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("names", nargs="*", metavar="NAME",
                        help=f"benchmarks to run (default: all of {', '.join(BENCHMARKS)})")
    parser.add_argument("--quiet", action="store_true", help="no progress bars")
    args = parser.parse_args(argv)
    unknown = [name for name in args.names if name not in BENCHMARKS]
    if unknown:
        parser.error(f"unknown benchmark(s) {', '.join(unknown)}; choose from {', '.join(BENCHMARKS)}")
    set_quiet(args.quiet)
    for name in args.names or BENCHMARKS:
        print(f"== {name}", flush=True)
        module = importlib.import_module(f"benchmarks.{name}")
        module.main([])  # defaults, not run_all's own arguments
    importlib.import_module("benchmarks.report").main()


if __name__ == "__main__":
    main()
