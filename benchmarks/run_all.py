"""Run every benchmark, then write RESULTS.md. Each benchmark also runs alone: python -m benchmarks.<name>."""

import importlib
import sys

BENCHMARKS = ["bench_attention", "bench_moving_mnist", "bench_video", "bench_forecast", "bench_backends"]


def main(argv=None) -> None:
    names = (argv if argv is not None else sys.argv[1:]) or BENCHMARKS
    for name in names:
        print(f"== {name}", flush=True)
        module = importlib.import_module(f"benchmarks.{name}")
        module.main([])  # defaults, not run_all's own arguments
    importlib.import_module("benchmarks.report").main()


if __name__ == "__main__":
    main()
