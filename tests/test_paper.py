"""The paper builds from a results folder, stays within 4 pages of body, and prints exactly the
numbers of its results: every table number is in the PDF text, and the abstract's headline
numbers equal the ones computed here straight from the results JSON.

The results are the fixture in tests/fixtures/results (shaped like a real `--out` folder, with
made-up numbers), so the test needs no training run. Building needs latexmk and pdftotext (CI
installs texlive-latex-base texlive-latex-recommended texlive-fonts-recommended latexmk
poppler-utils); without them the LaTeX tests skip, the generator tests still run.
"""

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

# `paper` is a package at the repository root, outside src/: importable however pytest is started.
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from paper import build  # noqa: E402
from seqattn.errors import DataError  # noqa: E402

FIXTURE = Path(__file__).parent / "fixtures" / "results"
ROOT = Path(__file__).resolve().parents[1]
TEX_TOOLS = all(shutil.which(tool) for tool in ("latexmk", "pdftotext"))
needs_tex = pytest.mark.skipif(not TEX_TOOLS, reason="latexmk/pdftotext not installed (apt-get install "
                               "texlive-latex-base texlive-latex-recommended texlive-fonts-recommended "
                               "latexmk poppler-utils)")

pytestmark = pytest.mark.paper


def write_results(root: Path) -> Path:
    """The fixture results plus the strip the video part draws, from synthetic moving squares."""
    from seqattn.plots.video import plot_strip

    results = root / "results"
    shutil.copytree(FIXTURE, results)
    frames = np.zeros((1, 100, 64, 64), np.float32)  # (S, T, H, W): a square sliding right
    for t in range(100):
        x = 4 + (t * 3) % 48
        frames[0, t, 24:36, x : x + 12] = 1.0
    blurred = {m: np.clip(frames * w, 0, 1) for m, w in (("tap", 0.5), ("htap", 0.7), ("convlstm", 0.3))}
    plot_strip(frames, blurred, [10, 25, 50, 75, 100], 10, results / "video" / "strip.png", title="fixture strip")
    write_ablation(results, "horizon30", {"train_horizon": 30}, scale=0.9)
    return results


def write_ablation(results: Path, name: str, changes: dict, scale: float) -> dict:
    """A one-seed Part 3 variant: the fixture's seed 0 metrics times `scale`, config `changes`."""
    video = json.loads((results / "video" / "results.json").read_text())
    metrics = {m: {k: {"mean": scale * v["per_seed"][0], "std": 0.0, "per_seed": [scale * v["per_seed"][0]]}
                   for k, v in node["metrics"].items()} for m, node in video["models"].items() if m != "convlstm"}
    variant = {**video, "seeds": [0], "config": {**video["config"], **changes, "seeds": [0]},
               "models": {m: {**video["models"][m], "metrics": metrics[m]} for m in metrics}}
    path = results / "ablations" / name / "video" / "results.json"
    path.parent.mkdir(parents=True)
    path.write_text(json.dumps(variant))
    return variant


def pdf_text(pdf: Path) -> str:
    text = subprocess.run(["pdftotext", "-layout", str(pdf), "-"], capture_output=True, text=True,
                          check=True).stdout
    return text.replace("\u2212", "-")  # LaTeX's minus sign


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    """Build the paper once from the fixture; returns (results dir, build dir, PDF text)."""
    if not TEX_TOOLS:
        pytest.skip("latexmk/pdftotext not installed")
    root = tmp_path_factory.mktemp("paper")
    results = write_results(root)
    build_dir = root / "build"
    pdf = build.build(results, root / "main.pdf", build_dir=build_dir, generated=build_dir / "generated")
    assert pdf.is_file() and pdf.read_bytes().startswith(b"%PDF")
    return results, build_dir, pdf_text(pdf)


@pytest.fixture(scope="module", params=["fixture", "committed"])
def printed(request, tmp_path_factory):
    """(results dir, generated tables, PDF text) of the paper built here from the fixture, and of
    the committed main.pdf against tables generated from the committed results/: a main.pdf left
    stale after a new run of the paper profile fails here."""
    if request.param == "fixture":
        results, build_dir, text = request.getfixturevalue("built")
        return results, build_dir / "generated", text
    pdf, results = ROOT / "main.pdf", ROOT / "results"
    if not pdf.is_file():
        pytest.skip("no committed main.pdf")
    if not TEX_TOOLS:
        pytest.skip("pdftotext not installed")
    generated = tmp_path_factory.mktemp("committed") / "generated"
    build.generate(results, generated)
    return results, generated, pdf_text(pdf)


def table_numbers(tex: str) -> list[str]:
    """The numbers a reader sees in a generated table (not column specs or citation keys)."""
    tex = re.sub(r"\\(multicolumn\{\d+\}\{[^}]*\}|cmidrule(\([a-z]+\))?\{[^}]*\}|begin\{tabular\}\{[^}]*\}|cite\{[^}]*\})", " ", tex)
    tex = tex.replace("--", " ").replace("$-$", "-")  # en-dash ranges, then minus signs
    return re.findall(r"-?\d{1,3}(?:,\d{3})+|-?\d+(?:\.\d+)?", tex)


def appears(number: str, text: str) -> bool:
    return re.search(rf"(?<![\d.,]){re.escape(number)}(?![\d])", text) is not None


# ---- the built PDF ------------------------------------------------------------------------------


@needs_tex
def test_body_within_four_pages(built):
    _, build_dir, _ = built
    assert build.body_last_page(build_dir / "main.aux") <= 4


@needs_tex
def test_no_undefined_references_or_overfull_lines(built):
    _, build_dir, text = built
    assert "??" not in text
    log = (build_dir / "main.log").read_text(errors="replace")
    assert "Overfull \\hbox" not in log
    assert "undefined" not in log.lower()


def test_every_table_number_is_in_the_pdf(printed):
    _, generated, text = printed
    tables = [t for t in sorted(generated.glob("table_*.tex")) if "tabular" in t.read_text()]
    assert {"table_etth1.tex", "table_retrieval.tex", "table_video.tex"} <= {t.name for t in tables}
    for table in tables:
        numbers = table_numbers(table.read_text())
        assert len(numbers) >= 10, table.name
        missing = [n for n in numbers if not appears(n, text)]
        assert not missing, f"{table.name}: {missing} not in the PDF text"


def test_abstract_headline_numbers_equal_the_results(printed):
    results, _, text = printed
    abstract = re.split(r"1\s+Introduction", text.split("Abstract", 1)[1], maxsplit=1)
    assert len(abstract) == 2, "no '1 Introduction' heading after the abstract"
    abstract = " ".join(abstract[0].split())
    attention = json.loads((results / "attention" / "results.json").read_text())
    forecast = json.loads((results / "forecast" / "results.json").read_text())
    video = json.loads((results / "video" / "results.json").read_text())

    alignment = 100 * attention["summary"]["alignment_accuracy"]["mean"]
    lookback = forecast["config"]["lookbacks"][0]
    hybrid = {r["horizon"]: r["mse"]["mean"] for r in forecast["summary"]
              if (r["model"], r["dataset"], r["features"], r["lookback"]) == ("hybrid", "etth1", "M", lookback)}
    # The far-horizon change, recomputed from each seed's far-horizon MSE of TAP and H-TAP.
    tap = np.array(video["models"]["tap"]["metrics"]["mse_far"]["per_seed"])
    htap = np.array(video["models"]["htap"]["metrics"]["mse_far"]["per_seed"])
    change = 100 * (htap - tap) / tap
    # The span of the first and last rollout step: query q predicts frame q + 2; layers averaged.
    span = np.mean(video["htap_attention"]["span_by_step_mean_over_heads"], axis=0)
    first_rollout_query = video["config"]["context"] - 1

    expected = [
        f"{alignment:.1f}%",
        f"MSE of {hybrid[min(hybrid)]:.3f} at horizon {min(hybrid)}",
        f"H-TAP {'reduces' if change.mean() < 0 else 'increases'} the far-horizon (frames 50-100) MSE",
        f"by {abs(change.mean()):.1f}% ± {change.std(ddof=1):.1f}%",  # sample std, as seqattn.report
        "over three seeds",
        f"from {span[first_rollout_query]:.1f} to {span[-1]:.1f} frames",
    ]
    abstract = abstract.replace("–", "-")
    for phrase in expected:
        assert phrase in abstract, f"{phrase!r} not in the abstract: {abstract}"


# ---- the generator, without LaTeX ---------------------------------------------------------------


def test_missing_results_file_is_one_error_naming_it(tmp_path):
    shutil.copytree(FIXTURE, tmp_path / "results")
    (tmp_path / "results" / "video" / "results.json").unlink()
    with pytest.raises(DataError, match=r"video/results\.json not found"):
        build.generate(tmp_path / "results", tmp_path / "generated")
    assert not (tmp_path / "generated" / "macros.tex").exists()


def test_missing_key_names_file_and_key(tmp_path):
    write_results(tmp_path)
    path = tmp_path / "results" / "video" / "results.json"
    data = json.loads(path.read_text())
    del data["models"]["htap"]["metrics"]["mse_far"]
    path.write_text(json.dumps(data))
    with pytest.raises(DataError, match=r"results\.json: missing key 'models\.htap\.metrics\.mse_far'"):
        build.generate(tmp_path / "results", tmp_path / "generated")


@pytest.mark.parametrize(
    "mean, verb, verdict",
    [(-31.0, "reduces", "as large as the 25"), (-12.0, "reduces", "short of the 25"),
     (8.0, "increases", "the opposite of the 25")],
)
def test_prose_follows_the_measured_direction(mean, verb, verdict):
    words = build.far_change_words(build.Stat(mean, 4.0, 3), [mean - 1, mean, mean + 1])
    assert words["htapFarChangeVerb"] == verb
    assert words["htapFarVerdict"].startswith(verdict)
    assert words["htapFarChangeAbs"] == f"{abs(mean):.1f}"
    assert words["htapBetterSeeds"] == ("three" if mean < 0 else "zero")


def test_ablation_paragraph_sets_seed_0_of_the_paper_run_against_each_variant(tmp_path):
    results = write_results(tmp_path)  # with a horizon-30 variant at 0.9 x seed 0's numbers
    video = json.loads((results / "video" / "results.json").read_text())
    text = build.video_ablation(build.PartResults(video, results / "video" / "results.json"),
                                build.load_video_ablations(results))
    base, variant = text.split("(the paper run): ")[1].split("; with training rollouts of 30 frames: ")
    tap, htap = (video["models"][m]["metrics"] for m in ("tap", "htap"))
    for words, scale in ((base, 1.0), (variant, 0.9)):
        t10, tfar, h10, hfar = (scale * m[k]["per_seed"][0] for m in (tap, htap) for k in ("mse_10to10", "mse_far"))
        change = 100 * (hfar - tfar) / tfar
        def f(x):
            return f"{x:.1f}".replace("-", "$-$")

        assert words.startswith(f"TAP {f(t10)} and {f(tfar)}, H-TAP {f(h10)} and {f(hfar)} "
                                f"(a change of {f(change)}\\%)"), words


def test_no_ablation_folder_writes_no_paragraph(tmp_path):
    shutil.copytree(FIXTURE, tmp_path / "results")
    video = build.load_results(tmp_path / "results")["video"]
    assert "paragraph" not in build.video_ablation(video, build.load_video_ablations(tmp_path / "results"))


def test_body_page_is_read_from_the_aux_file(tmp_path):
    aux = tmp_path / "main.aux"
    aux.write_text("\\relax\n\\newlabel{lastbodypage}{{6}{5}{Limitations}{section*.9}{}}\n")
    assert build.body_last_page(aux) == 5
    aux.write_text("\\relax\n")
    with pytest.raises(DataError, match="lastbodypage"):
        build.body_last_page(aux)


def test_strip_tiles_recover_the_video_parts_grid(tmp_path):
    results = write_results(tmp_path)
    tiles = build.strip_tiles(results / "video" / "strip.png", n_rows=4, n_cols=5)
    assert tiles is not None and [len(row) for row in tiles] == [5] * 4
    # Rows are truth, TAP, H-TAP, ConvLSTM, drawn at brightness 1.0, 0.5, 0.7, 0.3 of the square.
    brightness = np.array([[tile.mean() for tile in row] for row in tiles])  # (4, 5)
    assert np.all(brightness[0] > brightness[2]) and np.all(brightness[2] > brightness[1])
    assert np.all(brightness[1] > brightness[3])
    assert build.strip_tiles(results / "video" / "strip.png", n_rows=4, n_cols=6) is None


def test_every_macro_is_used_and_keeps_the_space_after_it():
    macros = build.paper_macros(build.load_results(FIXTURE))
    tex = (Path(build.PAPER_DIR) / "main.tex").read_text()
    assert set(macros) <= set(re.findall(r"\\([A-Za-z]+)", tex)), "generated macros main.tex never uses"
    # TeX drops the space after a control word: "\videoEpochs epochs" would print "10epochs".
    eaten = [m.group(0) for m in re.finditer(r"\\([A-Za-z]+)(?:[ \t]+\n?|\n)[ \t]*[A-Za-z(]", tex) if m.group(1) in macros]
    assert not eaten, eaten
