"""Build the paper from the study's results: generated macros, tables and figures, then latexmk.

    python -m paper.build [--results results] [--output main.pdf] [--build-dir paper/build]

reads `<results>/{attention,forecast,video}/results.json`, `<results>/video/strip.npz` (written
by `python sequence_attention.py --profile paper --out results`) and any Part 3 ablations under
`<results>/ablations/`, and writes, under `paper/generated/`:

- `macros.tex`: every number the prose uses, and the words whose choice depends on a measurement
  (`macros`, with the verdicts of `claims`), so the claims follow the results;
- `table_retrieval.tex`, `table_etth1.tex`, `table_video.tex`, `ablation_video.tex` (`tables`);
- `fig_horizon.pdf`, `fig_strip.pdf`, `fig_budget.pdf`, drawn at print size from the saved
  numbers and frames (`figures`).

It then copies the sources and generated files into the build folder, runs latexmk there, checks
the log (undefined references, overfull lines, body longer than 4 pages) and copies the PDF onto
`--output` atomically (`latex`). Any missing file or key is one error naming it: the layouts of
results.json are known only to the accessors in `results` and `video_results`.
"""

import argparse
import shutil
import sys
from pathlib import Path

from paper import figures, tables
from paper.latex import PAPER_DIR, check_pdf, compile_pdf, write_text
from paper.macros import macros_tex, paper_macros
from paper.results import load_results, load_video_ablations
from paper.video_results import video_models, video_strip
from seqattn.errors import ConfigError, DataError
from seqattn.io import atomic_path

REPO_ROOT = PAPER_DIR.parent
GENERATED = PAPER_DIR / "generated"
BUILD_DIR = PAPER_DIR / "build"


def generate(results_dir: Path, generated: Path = GENERATED) -> dict[str, str]:
    """Write macros, tables and figures for `results_dir` into `generated`; return the macros."""
    parts = load_results(results_dir)
    video = parts["video"]
    strip = video_strip(results_dir / "video" / "strip.npz", video_models(video))
    macros = paper_macros(parts)
    generated.mkdir(parents=True, exist_ok=True)
    write_text(generated / "macros.tex", macros_tex(macros))
    write_text(generated / "table_retrieval.tex", tables.table_retrieval(parts["attention"]))
    write_text(generated / "table_etth1.tex", tables.table_etth1(parts["forecast"]))
    write_text(generated / "table_video.tex", tables.table_video(video))
    write_text(generated / "ablation_video.tex", tables.video_ablation(video, load_video_ablations(results_dir)))
    figures.figure_horizon(video, generated / "fig_horizon.pdf")
    figures.figure_strip(video, strip, generated / "fig_strip.pdf")
    figures.figure_budget(video, generated / "fig_budget.pdf")
    return macros


def build(results_dir: Path, output: Path, build_dir: Path = BUILD_DIR, generated: Path = GENERATED) -> Path:
    generate(results_dir, generated)
    pdf = compile_pdf(build_dir, generated)
    pages = check_pdf(build_dir)
    with atomic_path(output) as tmp:
        shutil.copyfile(pdf, tmp)
    print(f"wrote {output} (body {pages} pages) from {results_dir}")
    return output


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m paper.build", description=__doc__.split("\n\n")[0])
    parser.add_argument("--results", default="results", help="results folder of a paper-profile run (default: results)")
    parser.add_argument("--output", default=str(REPO_ROOT / "main.pdf"),
                        help="where the PDF goes (default: main.pdf at the repository root)")
    parser.add_argument("--build-dir", default=str(BUILD_DIR), help="latexmk's working folder (default: paper/build)")
    args = parser.parse_args(argv)
    build_dir = Path(args.build_dir)
    # A build folder of its own keeps its generated files beside it, so builds never mix.
    generated = GENERATED if build_dir.resolve() == BUILD_DIR.resolve() else build_dir / "generated"
    try:
        build(Path(args.results), Path(args.output), build_dir, generated)
    except (DataError, ConfigError) as err:
        print(f"paper.build: error: {err}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
