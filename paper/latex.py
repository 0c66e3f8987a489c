"""The LaTeX build: latexmk in a build folder, then the checks a printed paper must pass (no
undefined references, no overfull lines, the body within the page limit)."""

import re
import shutil
import subprocess
from pathlib import Path

from seqattn.errors import ConfigError, DataError
from seqattn.io import atomic_path

PAPER_DIR = Path(__file__).resolve().parent
PAPER_SOURCES = ("main.tex", "seqattn-neurips.sty", "references.bib")
BODY_PAGE_LIMIT = 4


def write_text(path: Path, text: str) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(text)


def body_last_page(aux: Path) -> int:
    """The last page of the body: that of \\bodyend (the label `lastbodypage`), or of a figure or
    table of the body (labels fig:..., tab:...) that floated past it, read from the .aux file."""
    text = aux.read_text(errors="replace")
    match = re.search(r"\\newlabel\{lastbodypage\}\{\{[^}]*\}\{(\d+)\}", text)
    if not match:
        raise DataError(f"{aux}: no label 'lastbodypage'; main.tex must call \\bodyend before the references")
    floats = re.findall(r"\\newlabel\{(?:fig|tab):[^}]*\}\{\{[^}]*\}\{(\d+)\}", text)
    return max([int(match.group(1))] + [int(page) for page in floats])


def log_problems(log: Path) -> list[str]:
    """Undefined references/citations and overfull boxes reported in the final LaTeX log."""
    text = log.read_text(errors="replace")
    problems = []
    for pattern in (r"Overfull \\hbox[^\n]*", r"LaTeX Warning: (?:Reference|Citation)[^\n]*undefined[^\n]*",
                    r"LaTeX Warning: There were undefined references"):
        problems += re.findall(pattern, text)
    return problems


def compile_pdf(build_dir: Path, generated: Path) -> Path:
    """latexmk the paper in build_dir (sources and generated/ copied there); return the PDF path."""
    if shutil.which("latexmk") is None:
        raise ConfigError("latexmk not found: install texlive-latex-base texlive-latex-recommended "
                          "texlive-fonts-recommended latexmk")
    build_dir.mkdir(parents=True, exist_ok=True)
    for source in PAPER_SOURCES:
        shutil.copyfile(PAPER_DIR / source, build_dir / source)
    if generated.resolve() != (build_dir / "generated").resolve():
        shutil.copytree(generated, build_dir / "generated", dirs_exist_ok=True)
    command = ["latexmk", "-pdf", "-interaction=nonstopmode", "-halt-on-error", "-file-line-error", "main.tex"]
    done = subprocess.run(command, cwd=build_dir, capture_output=True, text=True)
    pdf = build_dir / "main.pdf"
    if done.returncode != 0 or not pdf.is_file():
        log = build_dir / "main.log"
        tail = log.read_text(errors="replace")[-3000:] if log.is_file() else done.stdout[-3000:]
        raise DataError(f"latexmk failed (exit {done.returncode}); see {log}:\n{tail}")
    return pdf


def check_pdf(build_dir: Path) -> int:
    """Raise if the body is over the page limit or the log has problems; return the body pages."""
    pages = body_last_page(build_dir / "main.aux")
    problems = log_problems(build_dir / "main.log")
    if pages > BODY_PAGE_LIMIT:
        problems.append(f"the body runs to page {pages}; the limit is {BODY_PAGE_LIMIT}")
    if problems:
        raise DataError(f"{build_dir / 'main.log'}: " + "; ".join(problems))
    return pages
