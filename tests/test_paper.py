"""The paper builds from a results folder, stays within 4 pages of body, and prints exactly the
numbers of its results: every cell of its tables, parsed from the generated LaTeX, equals the value
computed here straight from the results JSON and is printed in that row of the PDF, and the
abstract's headline numbers and verdicts follow the JSON too.

The results are the fixture in tests/fixtures/results, shaped like a real `--out` folder with
made-up numbers; the video part is the layout of `seqattn.experiments.video_report` (a tiny run
of `seqattn video`, extended by hand to three seeds and 100 frames, every window metric the mean
of its per-frame curve) with a `strip.npz` of one Moving MNIST sequence and blurred "rollouts". No
training run is needed. Building needs latexmk and pdftotext (CI installs texlive-latex-base
texlive-latex-recommended texlive-fonts-recommended latexmk poppler-utils); without them the LaTeX
tests skip, the generator and claim tests still run.
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
from paper import build, claims, latex, macros, tables  # noqa: E402
from paper.results import PartResults, Stat, load_results, load_video_ablations  # noqa: E402
from paper.video_results import Change, video_strip  # noqa: E402
from seqattn.errors import DataError  # noqa: E402
from seqattn.published import PUBLISHED_ETTH1_MSE  # noqa: E402

FIXTURE = Path(__file__).parent / "fixtures" / "results"
ROOT = Path(__file__).resolve().parents[1]
TEX_TOOLS = all(shutil.which(tool) for tool in ("latexmk", "pdftotext"))
needs_tex = pytest.mark.skipif(not TEX_TOOLS, reason="latexmk/pdftotext not installed (apt-get install "
                               "texlive-latex-base texlive-latex-recommended texlive-fonts-recommended "
                               "latexmk poppler-utils)")

pytestmark = pytest.mark.paper

VIDEO_LABELS = {"htap": "H-TAP", "convlstm": "ConvLSTM", "codec": "codec (floor)", "blank": "all-black frames",
                "last_frame": "last frame held", "mean_frame": "mean frame"}
VIDEO_COLUMNS = (("mse", 1), ("skill", 3), ("f1", 3), ("ssim", 3))


def write_results(root: Path) -> Path:
    """The fixture results plus a one-seed Part 3 ablation with training rollouts of 30 frames."""
    results = root / "results"
    shutil.copytree(FIXTURE, results)
    write_ablation(results, "horizon30", {"max_rollout": 30}, scale=0.9)
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


def generated_tables(results_dir: Path) -> dict[str, str]:
    """The tables the builder writes for `results_dir`, without drawing figures."""
    parts = load_results(results_dir)
    return {"table_retrieval.tex": tables.table_retrieval(parts["attention"]),
            "table_etth1.tex": tables.table_etth1(parts["forecast"]),
            "table_video.tex": tables.table_video(parts["video"])}


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
def printed(request):
    """(results dir, generated tables, PDF text) of the paper built here from the fixture, and of
    the committed main.pdf against tables generated from the committed results/: a main.pdf left
    stale after a new run of the paper profile fails here."""
    if request.param == "fixture":
        results, build_dir, text = request.getfixturevalue("built")
        return results, {t.name: t.read_text() for t in (build_dir / "generated").glob("table_*.tex")}, text
    pdf, results = ROOT / "main.pdf", ROOT / "results"
    if not pdf.is_file():
        pytest.skip("no committed main.pdf")
    if "windows" not in json.loads((results / "video" / "results.json").read_text()):
        pytest.skip("results/video/results.json predates Part 3's evaluation windows (no 'windows' key), so "
                    "main.pdf was built by the earlier paper; commit a new paper-profile run of Part 3 "
                    "and rebuild main.pdf with `make paper`")
    if "paired" not in json.loads((results / "forecast" / "results.json").read_text()):
        pytest.skip("results/forecast/results.json predates Part 2's validation-only selection and paired "
                    "comparison (no 'paired' key), so main.pdf was built by the earlier paper; commit a new "
                    "paper-profile run of Part 2 and rebuild main.pdf with `make paper`")
    if not TEX_TOOLS:
        pytest.skip("pdftotext not installed")
    return results, generated_tables(results), pdf_text(pdf)


# ---- reading the generated tables -----------------------------------------------------------------


def table_rows(tex: str) -> list[list[str]]:
    """The body rows of a generated tabular as lists of cells (header and rule lines left out)."""
    rows = []
    for line in tex.splitlines():
        if not line.endswith("\\\\") or "\\multicolumn" in line:
            continue
        rows.append([cell.strip() for cell in line[:-2].split("&")])
    return rows


def cell_value(cell: str) -> tuple[float, float | None]:
    """(mean, std) of a printed cell: "0.468$_{\\pm.009}$", "1.295\\,$\\pm$\\,0.000", "\\textbf{..}", "192.2"."""
    cell = cell.replace("$-$", "-").replace("\\textbf{", "").rstrip("}")
    match = re.fullmatch(r"(-?\d+\.\d+)(?:\$_\{\\pm(\d*\.\d+)\}\$|\\,\$\\pm\$\\,(\d+\.\d+))?", cell)
    assert match, f"cell {cell!r} is not a number, a mean with its std, or a bold one"
    std = match.group(2) or match.group(3)
    return float(match.group(1)), None if std is None else float(std)


def rounded(value: float, decimals: int) -> float:
    return round(value, decimals) + 0.0


def numbers_in(line: str) -> list[float]:
    return [float(n) for n in re.findall(r"-?\d*\.\d+|-?\d+", line.replace(",", ""))]


def pdf_shows_row(text: str, label: str, values: list[float]) -> bool:
    """Some line of the PDF starts with `label` and then prints exactly `values`, in order."""
    for line in text.splitlines():
        line = " ".join(line.split())
        if label and not line.startswith(label + " "):
            continue
        if numbers_in(line[len(label):]) == values:
            return True
    return False


def expected_video_rows(video: dict) -> dict[str, list[tuple[float, float | None]]]:
    """Each predictor's (mean, std) per column, short window then far window, from the JSON."""
    rows = {}
    label = {**VIDEO_LABELS, "tap": f"TAP ({video['config']['rnn'].upper()})"}
    ordered = [m for m in ("tap", "htap", "convlstm") if m in video["models"]]  # the table's order, not the JSON's
    for name, node in [*((m, video["models"][m]) for m in ordered), ("codec", video["codec"])]:
        stats = [(node["metrics"][f"{k}_{w}"], d) for w in ("short", "far") for k, d in VIDEO_COLUMNS]
        rows[label[name]] = [(rounded(s["mean"], d), rounded(s["std"], d)) for s, d in stats]
    for name, node in video["baselines"].items():
        rows[label[name]] = [(rounded(node["metrics"][f"{k}_{w}"], d), None)
                             for w in ("short", "far") for k, d in VIDEO_COLUMNS]
    return rows


def expected_etth1_blocks(forecast: dict) -> dict[str, dict[str, list[float | None]]]:
    """Per lookback (and "other" for published rows at lookbacks not run), the table's rows as
    label -> numbers, straight from the JSON and the published module: the hybrid's (mean, std),
    its paired change (pct, low, high) against seq2seq, and each published row at that lookback."""
    lookbacks = forecast["config"]["lookbacks"]
    horizons = sorted(forecast["config"]["horizons"])
    blocks = {}
    for lookback in lookbacks:
        hybrid = {r["horizon"]: r for r in forecast["summary"]
                  if (r["dataset"], r["features"], r["lookback"], r["model"]) == ("etth1", "M", lookback, "hybrid")}
        paired = {p["horizon"]: p for p in forecast["paired"]
                  if (p["dataset"], p["features"], p["lookback"]) == ("etth1", "M", lookback)}
        # mean and std over seeds; the mean alone from one seed
        block = {"RNN + attention": [x for h in horizons for x in (rounded(hybrid[h]["mse"]["mean"], 3),
                                                                   rounded(hybrid[h]["mse"]["std"], 3))
                                     [:2 if len(hybrid[h]["seeds"]) > 1 else 1]],
                 "vs no attention (%)": [rounded(100 * paired[h][k], 1) for h in horizons
                                         for k in ("relative", "relative_low", "relative_high")]}
        block.update({p["label"]: [p["mse"].get(h) for h in horizons] for p in PUBLISHED_ETTH1_MSE.values()
                      if p.get("lookback") == lookback})
        blocks[str(lookback)] = block
    blocks["other"] = {p["label"]: [p["mse"].get(h) for h in horizons] for p in PUBLISHED_ETTH1_MSE.values()
                       if p.get("lookback") not in (None, *lookbacks)}
    return blocks


def etth1_table_blocks(tex: str) -> dict[str, dict[str, list[float | None]]]:
    """The generated ETTh1 table read back: per block (a lookback of ours, or "other" for the
    published rows at lookbacks not run), label -> the numbers in its cells."""
    blocks, current = {}, None
    for lookback, label, *values in table_rows(tex)[1:]:  # past the column names
        label = re.sub(r"~\\cite\{[^}]*\}|\\quad |\\", "", label).strip()
        if lookback:
            current = lookback if label == "RNN + attention" else "other"
        numbers = []
        for value in values:
            if value == "--":
                numbers.append(None)
            elif "scriptsize" in value:  # a change and its interval: $-$13.5 {\scriptsize[$-$16.5,\,+1.0]}
                numbers += [float(x) for x in re.findall(r"[+-]?\d+\.\d", value.replace("$-$", "-"))]
            else:
                mean, std = cell_value(value)
                numbers += [mean] if std is None else [mean, std]
        blocks.setdefault(current, {})[label] = numbers
    return blocks


# ---- the built PDF ------------------------------------------------------------------------------


@needs_tex
def test_body_within_four_pages(built):
    _, build_dir, _ = built
    assert latex.body_last_page(build_dir / "main.aux") <= 4


@needs_tex
def test_no_undefined_references_or_overfull_lines(built):
    _, build_dir, text = built
    assert "??" not in text
    log = (build_dir / "main.log").read_text(errors="replace")
    assert "Overfull \\hbox" not in log
    assert "undefined" not in log.lower()


def test_video_table_cells_equal_the_results_and_the_pdf(printed):
    results, generated, text = printed
    video = json.loads((results / "video" / "results.json").read_text())
    tex = generated["table_video.tex"]
    context, (s_first, s_last), (f_first, f_last) = (video["config"]["context"], video["windows"]["short"],
                                                     video["windows"]["far"])
    # The window headers come from the recorded windows, never from the training horizon.
    assert f"{{{context}\\,$\\to$\\,{s_last - s_first + 1} (frames {s_first}--{s_last})}}" in tex
    assert f"{{frames {f_first}--{f_last}}}" in tex
    rows = {row[0]: [cell_value(c) for c in row[1:]] for row in table_rows(tex)[1:]}  # past the column names
    expected = expected_video_rows(video)
    assert list(rows) == list(expected)  # TAP, H-TAP, ConvLSTM, the codec floor, all-black, last frame
    assert rows == expected
    for label, cells in rows.items():
        printed_numbers = [x for mean, std in cells for x in ((mean,) if std is None else (mean, std))]
        assert pdf_shows_row(text, label, printed_numbers), f"the PDF has no row {label!r} {printed_numbers}"


def test_etth1_and_retrieval_cells_equal_the_results_and_the_pdf(printed):
    results, generated, text = printed
    forecast = json.loads((results / "forecast" / "results.json").read_text())
    table = etth1_table_blocks(generated["table_etth1.tex"])
    expected = expected_etth1_blocks(forecast)
    # One block per lookback, in the order run, each with the published rows measured at it.
    assert list(table) == [str(L) for L in forecast["config"]["lookbacks"]] + ["other"]
    assert table == expected
    for lookback in forecast["config"]["lookbacks"]:
        for label in (f"{lookback} RNN + attention", "vs no attention (%)"):
            numbers = expected[str(lookback)][label.removeprefix(f"{lookback} ")]
            assert pdf_shows_row(text, label, numbers), f"the PDF has no row {label!r} {numbers}"

    attention = json.loads((results / "attention" / "results.json").read_text())["summary"]
    keys = ("answer_accuracy", "alignment_accuracy", "attention_span", "correct_attention_span", "attention_entropy")
    (row,) = table_rows(generated["table_retrieval.tex"])[2:]  # past the two header lines
    cells = [(rounded(attention[k]["mean"], 3), rounded(attention[k]["std"], 3)) for k in keys]
    assert [cell_value(c) for c in row] == cells
    assert pdf_shows_row(text, "", [x for cell in cells for x in cell])


def test_abstract_headline_numbers_equal_the_results(printed):
    results, _, text = printed
    abstract = re.split(r"1\s+Introduction", text.split("Abstract", 1)[1], maxsplit=1)
    assert len(abstract) == 2, "no '1 Introduction' heading after the abstract"
    abstract = " ".join(abstract[0].split()).replace("–", "-").replace("’", "'")
    attention = json.loads((results / "attention" / "results.json").read_text())
    forecast = json.loads((results / "forecast" / "results.json").read_text())
    video = json.loads((results / "video" / "results.json").read_text())

    alignment = 100 * attention["summary"]["alignment_accuracy"]["mean"]
    mse = {"hybrid": {}, "seq2seq": {}}
    for r in forecast["summary"]:
        if r["model"] in mse and (r["dataset"], r["features"]) == ("etth1", "M"):
            mse[r["model"]].setdefault(r["lookback"], {})[r["horizon"]] = rounded(r["mse"]["mean"], 3)
    hybrid = mse["hybrid"]
    # Against TimeMixer at its lookback, horizon by horizon, with the margins where below it, and
    # whether the RNN without attention is below it at the same horizons; at the lookback with the
    # lowest mean MSE, that mean against PatchTST/64's (the fixture: below TimeMixer at H=336, 720 only).
    timemixer, patchtst = PUBLISHED_ETTH1_MSE["timemixer"], PUBLISHED_ETTH1_MSE["patchtst"]

    def below_timemixer(ours):
        return [h for h in sorted(ours) if ours[h] < timemixer["mse"][h]]

    below = below_timemixer(hybrid[96])
    margins = sorted(rounded(timemixer["mse"][h] - hybrid[96][h], 3) for h in below)
    by = f" by {margins[0]:.3f}" + (f" to {margins[-1]:.3f}" if len(margins) > 1 else "") if below else ""
    if len(below) in (0, len(hybrid[96])):
        tm_words = f"below TimeMixer at every horizon{by}" if below else "not below TimeMixer at any horizon"
    else:
        count = {1: "one", 2: "two", 3: "three"}[len(below)]
        tm_words = f"below TimeMixer at {count} of four horizons (H = {', '.join(map(str, below))}){by}"
    same = below_timemixer(mse["seq2seq"][96]) == below
    tm_words += ", as is the same RNN without attention" if same else " (the same RNN without attention is "
    means = {L: rounded(np.mean(list(mse.values())), 3) for L, mse in hybrid.items()}
    best = min(sorted(means), key=means.get)
    published_mean = rounded(np.mean(list(patchtst["mse"].values())), 3)
    relation = "below" if means[best] < published_mean else "above" if means[best] > published_mean else "equal to"

    def pct(x):
        text = f"{100 * x:.1f}"
        if float(text) == 0:
            return "0.0%"  # a change that rounds to zero carries no sign, negative or not
        return text + "%" if text.startswith("-") else f"+{text}%"

    far, short = video["htap_vs_tap"]["far"], video["htap_vs_tap"]["short"]
    excludes = rounded(100 * far["relative_high"], 1) < 0 or rounded(100 * far["relative_low"], 1) > 0
    first, last = video["windows"]["far"]
    # Which latent models beat all-black frames on the far window by more than their spread.
    skill = {m: video["models"][m]["metrics"]["skill_far"] for m in ("tap", "htap")}
    beating = [m for m in skill if rounded(skill[m]["mean"], 3) > rounded(skill[m]["std"], 3)]
    blank = {(): "neither model beats", ("htap",): "only H-TAP beats", ("tap",): "only TAP (",
             ("tap", "htap"): "both models beat"}[tuple(beating)]
    # ... and whether both have a higher MSE than the mean training frame (as printed, one decimal).
    mean_frame = rounded(video["baselines"]["mean_frame"]["metrics"]["mse_far"], 1)
    higher = all(rounded(video["models"][m]["metrics"]["mse_far"]["mean"], 1) > mean_frame for m in ("tap", "htap"))
    mean_frame_words = (f"both models have a higher MSE than the mean training frame ({mean_frame:.1f})" if higher
                        else "the mean training frame by")
    # The span of the first and last rollout step: query q predicts frame q + 2; layers averaged.
    span = np.mean(video["htap_attention"]["span_by_step_mean_over_heads"], axis=0)
    first_rollout_query = video["config"]["context"] - 1
    seeds = {1: "one seed", 2: "two seeds", 3: "three seeds", 4: "four seeds", 5: "five seeds"}[far["seeds"]]

    expected = [
        f"{alignment:.1f}%",
        f"an RNN encoder with an attention decoder at L = 96 is {tm_words}",
        f"at its best lookback by test MSE, L = {best}, averages {means[best]:.3f} ({relation} PatchTST/64's "
        f"{published_mean:.3f} at L = 512) over the four horizons",
        f"on frames {first}-{last} by {pct(far['relative'])} (95% interval {pct(far['relative_low'])} to "
        f"{pct(far['relative_high'])}; {far['sequences']:,} test sequences, {seeds}), an interval that "
        f"{'excludes' if excludes else 'includes'} zero",
        f"by {pct(short['relative'])} ({pct(short['relative_low'])} to {pct(short['relative_high'])})",
        f"On frames {first}-{last}, {blank}",
        mean_frame_words,
        f"from {span[first_rollout_query]:.1f} to {span[-1]:.1f} frames",
    ]
    for phrase in expected:
        assert phrase in abstract, f"{phrase!r} not in the abstract: {abstract}"


# ---- reading the results: one error naming the file and the key ---------------------------------


def test_missing_results_file_is_one_error_naming_it(tmp_path):
    shutil.copytree(FIXTURE, tmp_path / "results")
    (tmp_path / "results" / "video" / "results.json").unlink()
    with pytest.raises(DataError, match=r"video/results\.json not found"):
        build.generate(tmp_path / "results", tmp_path / "generated")
    assert not (tmp_path / "generated" / "macros.tex").exists()


@pytest.mark.parametrize("delete, named", [
    (("models", "htap", "metrics", "mse_far"), "models.htap.metrics.mse_far"),
    (("windows",), "windows"),  # results.json of the earlier Part 3
    (("htap_vs_tap", "short"), "htap_vs_tap.short"),
    (("codec",), "codec"),
])
def test_missing_key_names_file_and_key(tmp_path, delete, named):
    results = write_results(tmp_path)
    path = results / "video" / "results.json"
    data = json.loads(path.read_text())
    node = data
    for key in delete[:-1]:
        node = node[key]
    del node[delete[-1]]
    path.write_text(json.dumps(data))
    with pytest.raises(DataError, match=rf"video/results\.json: missing key '{re.escape(named)}[.']"):
        build.generate(results, tmp_path / "generated")


def test_forecast_results_without_the_paired_comparison_are_one_error_naming_the_key(tmp_path):
    """A Part 2 results.json from before the validation-only selection and the paired comparison."""
    results = write_results(tmp_path)
    path = results / "forecast" / "results.json"
    data = json.loads(path.read_text())
    del data["paired"]
    path.write_text(json.dumps(data))
    with pytest.raises(DataError, match=r"forecast/results\.json: missing key 'paired'.*rerun Part 2"):
        build.generate(results, tmp_path / "generated")


def test_strip_is_read_from_the_npz_frame_k_at_index_k_minus_1(tmp_path):
    strip = video_strip(FIXTURE / "video" / "strip.npz", ["tap", "htap", "convlstm"])
    with np.load(FIXTURE / "video" / "strip.npz") as saved:
        assert strip.frames == saved["frames"].tolist() and strip.context == int(saved["context"])
        np.testing.assert_array_equal(strip.truth, saved["truth"][0])
        np.testing.assert_array_equal(strip.models["htap"], saved["model_htap"][0])
        arrays = {k: saved[k] for k in saved.files if k != "model_htap"}
    np.savez(tmp_path / "strip.npz", **arrays)
    with pytest.raises(DataError, match=r"strip\.npz: missing key 'model_htap'"):
        video_strip(tmp_path / "strip.npz", ["tap", "htap"])
    with pytest.raises(DataError, match=r"nowhere\.npz not found"):
        video_strip(tmp_path / "nowhere.npz", ["tap"])


def test_an_ablation_from_before_the_windows_is_left_out_with_a_note(tmp_path, capsys):
    results = write_results(tmp_path)
    old = write_ablation(results, "old", {"max_rollout": 20}, scale=1.1)
    del old["windows"]
    (results / "ablations" / "old" / "video" / "results.json").write_text(json.dumps(old))
    assert list(load_video_ablations(results)) == ["horizon30"]
    assert "ablations/old/video/results.json predates" in capsys.readouterr().err


def test_ablation_paragraph_sets_seed_0_of_the_paper_run_against_each_variant(tmp_path):
    results = write_results(tmp_path)  # with a horizon-30 variant at 0.9 x seed 0's numbers
    video = json.loads((results / "video" / "results.json").read_text())
    text = tables.video_ablation(PartResults(video, results / "video" / "results.json"), load_video_ablations(results))
    paper_run = "rollouts of up to 50 frames and 800 transition updates: "
    base, variant = text.split(paper_run)[1].split("; rollouts of up to 30 frames: ")
    tap, htap = (video["models"][m]["metrics"] for m in ("tap", "htap"))
    for words, scale in ((base, 1.0), (variant, 0.9)):
        t10, tfar, h10, hfar = (scale * m[k]["per_seed"][0] for m in (tap, htap) for k in ("mse_short", "mse_far"))
        change = 100 * (hfar - tfar) / tfar

        def f(x):
            return f"{x:.1f}".replace("-", "$-$")

        sign = "" if change < 0 else "+"
        expected = f"TAP {f(t10)} and {f(tfar)}, H-TAP {f(h10)} and {f(hfar)} ({sign}{f(change)}\\%)"
        assert words.startswith(expected), words


def test_a_budget_variant_is_labelled_by_its_transition_updates_alone(tmp_path):
    results = write_results(tmp_path)  # paper run: 8 stages x 50 steps of 16 windows
    write_ablation(results, "updates1600", {"steps_per_epoch": 100, "transition_updates": 1600,
                                            "train_sequences": 25600}, scale=0.8)
    video = load_results(results)["video"]
    text = tables.video_ablation(video, load_video_ablations(results))
    assert "; 1600 transition updates: TAP " in text
    assert "steps" not in text and "train" not in text


def test_a_variant_over_several_seeds_adds_their_paired_change_on_frames_50_100(tmp_path):
    results = write_results(tmp_path)
    variant = write_ablation(results, "updates1600", {"steps_per_epoch": 100, "transition_updates": 1600}, 0.8)
    variant["seeds"] = [0, 1, 2]
    variant["htap_vs_tap"]["far"].update(relative=-0.0312, relative_low=-0.0545, relative_high=-0.0081, seeds=3)
    (results / "ablations" / "updates1600" / "video" / "results.json").write_text(json.dumps(variant))
    video = load_results(results)["video"]
    text = tables.video_ablation(video, load_video_ablations(results))
    horizon30, updates = text.split("; rollouts of up to 30 frames: ")[1].split("; 1600 transition updates: ")
    assert "seeds" not in horizon30  # one seed: seed 0's change alone
    assert updates.endswith("\\%; over 3 seeds $-$3.1\\%, 95\\% CI [$-$5.5, $-$0.8]).\n"), updates


def test_no_ablation_folder_writes_no_paragraph(tmp_path):
    shutil.copytree(FIXTURE, tmp_path / "results")
    video = load_results(tmp_path / "results")["video"]
    assert "paragraph" not in tables.video_ablation(video, load_video_ablations(tmp_path / "results"))


def test_body_page_is_read_from_the_aux_file_and_counts_floats(tmp_path):
    aux = tmp_path / "main.aux"
    aux.write_text("\\relax\n\\newlabel{lastbodypage}{{6}{4}{Limitations}{section*.9}{}}\n"
                   "\\newlabel{tab:video}{{3}{3}{Part 3}{table.3}{}}\n")
    assert latex.body_last_page(aux) == 4
    # A figure that floated past the end of the body still belongs to it.
    aux.write_text(aux.read_text() + "\\newlabel{fig:video}{{1}{5}{Top: skill}{figure.1}{}}\n")
    assert latex.body_last_page(aux) == 5
    aux.write_text("\\relax\n")
    with pytest.raises(DataError, match="lastbodypage"):
        latex.body_last_page(aux)


# ---- claims: the verdicts follow the numbers ------------------------------------------------------


@pytest.mark.parametrize("low, high, excludes", [
    (-8.0, -2.0, True), (0.5, 6.0, True), (-6.6, 1.5, False), (-3.1, -0.04, False),  # -0.04 prints 0.0
])
def test_interval_excludes_zero_as_printed(low, high, excludes):
    change = Change((low + high) / 2, low, high, 3, 256)
    assert claims.excludes_zero(change) is excludes
    assert claims.interval_words(change) == ("excludes zero" if excludes else "includes zero")


@pytest.mark.parametrize("pct, low, high, verdict", [
    (-31.0, -35.0, -27.0, "at least the 25"),
    (-24.0, -30.0, -18.0, "consistent with the 25"),
    (-12.0, -15.0, -9.0, "short of the 25"),
    (8.0, 3.0, 12.0, "the opposite of the 25"),
    (-2.0, -6.0, 1.5, "no measured change, let alone the 25"),
    (-20.0, -40.0, 2.0, "neither confirming nor ruling out the 25"),
])
def test_claim_verdict_follows_the_change_and_its_interval(pct, low, high, verdict):
    assert claims.claim_verdict(Change(pct, low, high, 3, 256)).startswith(verdict)


def test_change_verdict_says_lower_higher_or_not_separated():
    assert claims.change_verdict(Change(-17.3, -22.3, -13.3, 3, 256)) == "H-TAP's error is lower than TAP's"
    assert claims.change_verdict(Change(9.0, 2.0, 15.0, 3, 256)) == "H-TAP's error is higher than TAP's"
    assert claims.change_verdict(Change(-2.1, -6.6, 1.5, 3, 256)) == "the test does not separate the two models"
    assert claims.change_numbers(Change(-2.1, -6.6, 1.5, 3, 256)) == {"": "$-$2.1\\%", "Low": "$-$6.6\\%",
                                                                     "High": "+1.5\\%"}


@pytest.mark.parametrize("mean, std, n, beats", [
    (0.2, 0.1, 3, True), (0.05, 0.1, 3, False), (-0.1, 0.01, 3, False),
    (0.0104, 0.0096, 3, False),  # printed 0.010 and 0.010: a margin equal to the spread is not more
    (0.01, 0.0, 1, True),  # one seed: no spread, any margin counts
])
def test_beats_blank_by_more_than_the_seed_spread(mean, std, n, beats):
    assert claims.beats_by_more_than_spread(Stat(mean, std, n), 0.0) is beats


def test_blank_verdict_names_the_models_that_beat_blank_frames():
    models = ["TAP (GRU)", "H-TAP"]
    spread = "all-black frames by more than its spread over seeds"
    assert claims.blank_verdict([], models, 3) == f"neither model beats {spread}"
    assert claims.blank_verdict(["H-TAP"], models, 3) == f"only H-TAP beats {spread}"
    assert claims.blank_verdict(models, models, 3) == f"both models beat {spread.replace('its', 'their')}"
    assert claims.blank_verdict(models, models + ["ConvLSTM"], 3).startswith("only TAP (GRU) and H-TAP beat all-black")
    assert claims.blank_verdict(["H-TAP"], models, 1).endswith("(one seed, so no spread over seeds to compare)")


def test_reference_verdict_says_when_every_model_is_worse_than_the_mean_frame():
    models = ["TAP (GRU)", "H-TAP"]
    assert claims.reference_verdict(models, [], models, 3, "it") == "both models have a higher MSE than it"
    assert claims.reference_verdict(models, [], models + ["ConvLSTM"], 3, "it").startswith("no model beats it")
    assert claims.reference_verdict(["H-TAP"], ["TAP (GRU)"], models, 3, "it") == \
        "only TAP (GRU) beats it by more than its spread over seeds"
    assert claims.reference_verdict(models + ["ConvLSTM"], [], models + ["ConvLSTM"], 1, "it") == \
        "every model has a higher MSE than it"


def test_ladder_verdict_places_a_model_among_the_observers():
    rungs = [(3.0, 120.0), (10.0, 150.0), (30.0, 165.0)]
    assert claims.ladder_verdict("TAP", 110.0, rungs) == "TAP, the best, is below even the 3$^\\circ$ observer"
    assert claims.ladder_verdict("TAP", 150.0, rungs) == ("TAP, the best, lies between the 3$^\\circ$ and "
                                                         "10$^\\circ$ observers")
    assert claims.ladder_verdict("TAP", 168.3, rungs) == "every model is above the 30$^\\circ$ observer"


def test_codec_floor_verdict_follows_the_ratio():
    assert claims.near_floor(10.0, 7.5) and not claims.near_floor(200.0, 7.5)
    assert claims.floor_verdict({"TAP": 27.1, "H-TAP": 22.4}) == "the transition, not the codec, bounds them"
    assert claims.floor_verdict({"TAP": 1.2, "H-TAP": 1.4}) == "the codec, not the transition, bounds them"
    assert claims.floor_verdict({"TAP": 3.0, "H-TAP": 1.2}).startswith("the codec bounds H-TAP")


def test_budget_verdict_counts_the_checkpoints_that_exclude_zero():
    lower = Change(-12.0, -18.0, -7.0, 3, 256)
    unclear = Change(-2.0, -6.0, 2.0, 3, 256)
    higher = Change(5.0, 1.0, 9.0, 3, 256)
    assert claims.budget_verdict([lower, lower]).endswith("at every checkpoint")
    assert claims.budget_verdict([unclear, lower]).endswith("at one of two checkpoints")
    assert claims.budget_verdict([unclear, unclear]).startswith("the interval includes zero at every one")
    assert "lower at some and higher at others" in claims.budget_verdict([lower, higher])


def test_published_words_compare_the_printed_numbers_horizon_by_horizon():
    timemixer = {96: 0.375, 192: 0.429, 336: 0.484, 720: 0.498}
    assert claims.published_words("TimeMixer", {96: 0.37, 192: 0.41, 336: 0.45, 720: 0.48}, timemixer) == \
        "below TimeMixer at every horizon by 0.005 to 0.034"
    assert claims.published_words("TimeMixer", {96: 0.391, 192: 0.430, 336: 0.455, 720: 0.470}, timemixer) == \
        "below TimeMixer at two of four horizons ($H=336, 720$) by 0.028 to 0.029"
    # 0.3754 prints 0.375: equal to the published row as printed, so not below it.
    assert claims.published_words("TimeMixer", {96: 0.3754, 192: 0.5, 336: 0.5, 720: 0.5}, timemixer) == \
        "not below TimeMixer at any horizon"
    assert claims.published_words("TimeMixer", {96: 0.3745}, timemixer) == "below TimeMixer at every horizon by 0.001"
    with pytest.raises(ValueError, match="no horizon shared"):
        claims.published_words("LSTMa", {96: 0.4}, {336: 1.424})


def test_best_lookback_is_the_lowest_printed_mean_and_the_shorter_on_a_tie():
    assert claims.best_lookback({96: 0.4365, 336: 0.425, 720: 0.432}) == 336
    assert claims.best_lookback({720: 0.4251, 96: 0.4249}) == 96  # both print 0.425
    assert claims.mean_versus_words(0.4251, "PatchTST/64", 0.413, 512) == "0.425 (above PatchTST/64's 0.413 at $L=512$)"
    assert claims.mean_versus_words(0.4, "PatchTST/64", 0.413, 512).startswith("0.400 (below")
    assert claims.mean_versus_words(0.4134, "PatchTST/64", 0.413, 512).startswith("0.413 (equal to")


def test_paired_verdict_counts_settings_by_their_printed_intervals():
    lower, higher = Change(-13.5, -16.5, -10.5, 3, 29), Change(0.7, 0.2, 1.2, 3, 29)
    unclear, rounds_to_zero = Change(-1.0, -3.0, 1.0, 3, 29), Change(-2.0, -4.0, -0.04, 3, 29)
    assert claims.paired_verdict([lower, lower]) == \
        "the hybrid's MSE is lower in every one of the two settings, with an interval that excludes zero"
    assert claims.paired_verdict([unclear, rounds_to_zero]) == \
        "the interval includes zero in every one of the two settings"
    assert claims.paired_verdict([lower, higher, unclear]) == \
        "the hybrid's MSE is lower in one and higher in one of the three settings, with intervals that exclude zero; " \
        "the other one includes zero"
    assert claims.paired_verdict([higher, unclear]).startswith("the hybrid's MSE is higher in one of the two")


def test_fixture_macros_state_the_fixture_verdicts():
    """The fixture's far change excludes zero, its short change does not; only H-TAP beats blank
    frames by more than its spread; both latent models sit far above the codec floor."""
    video = json.loads((FIXTURE / "video" / "results.json").read_text())
    far, short = video["htap_vs_tap"]["far"], video["htap_vs_tap"]["short"]
    assert far["relative_high"] < 0 < short["relative_high"] and short["relative_low"] < 0
    words = macros.paper_macros(load_results(FIXTURE))
    assert (words["farInterval"], words["shortInterval"]) == ("excludes zero", "includes zero")
    assert words["farVerdict"] == "H-TAP's error is lower than TAP's"
    assert words["blankVerdict"].startswith("only H-TAP beats")
    assert words["floorVerdict"] == "the transition, not the codec, bounds them"
    assert words["shortHorizon"] == "10" and (words["farFirst"], words["farLast"]) == ("50", "100")
    # the fixture's ladder: 120.4, 154.3, 170.0 at 3, 10, 30 degrees; its best far MSE is H-TAP's 168.2
    assert (words["ladderNoises"], words["ladderFarMSE"]) == ("3, 10 or 30", "120.4, 154.3 and 170.0")
    assert words["ladderVerdict"] == "H-TAP, the best, lies between the 10$^\\circ$ and 30$^\\circ$ observers"
    # Part 2: seven of the twelve intervals below zero, one above; L=96 and 336 chose their keys on
    # validation windows per horizon, L=720 had a single candidate within the key limit.
    assert words["pairedVerdict"] == ("the hybrid's MSE is lower in seven and higher in one of the 12 settings, "
                                      "with intervals that exclude zero; the other four include zero")
    # 24-step keys at L=96's four horizons and at L=336 H=336 and 720, 12-step keys at L=336 H=96 and
    # 192; L=720 had a single candidate within the key limit, so nothing to choose; no MAE, no LV.
    assert words["forecastSelection"].endswith(
        "per lookback and horizon, by the hybrid's MSE (seed 0): 24-step keys in 6 of the 8 settings and "
        "12-step keys in 2 (each in \\texttt{results/}).")
    # the fixture ran RevIN and channel independence, and could choose last-value normalisation
    assert words["forecastOptions"] == ("with reversible instance normalisation~\\cite{kim2022revin} or last-value "
                                        "normalisation~\\cite{zeng2023transformers} and channel "
                                        "independence~\\cite{nie2023patchtst}")
    assert words["forecastDecoding"] == "direct (all horizon segments at once)"  # the fixture's decoding
    # 2785, 2689, 2545 and 2161 test windows in blocks of H = 96, 192, 336 and 720: 29, 14, 7 and 3 blocks
    assert words["pairedBlocks"] == "29 to 3 per seed"
    assert words["forecastSpan"] == "34.7, 113.4, 243.2 steps at $L=96, 336, 720$ (normalised: 0.65, 0.56, 0.51)"


def test_selection_sentence_counts_mae_and_last_value_choices(tmp_path):
    shutil.copytree(FIXTURE, tmp_path / "results")
    path = tmp_path / "results" / "forecast" / "results.json"
    forecast = json.loads(path.read_text())
    for key, options in [("etth1 L=96 H=96", {"loss": "mae", "normalisation": "last"}),
                         ("etth1 L=96 H=192", {"normalisation": "last"})]:
        forecast["selection"][key]["options"] |= options
    path.write_text(json.dumps(forecast))
    words = macros.paper_macros(load_results(tmp_path / "results"))
    assert words["forecastSelection"].endswith(
        "24-step keys in 6 of the 8 settings, 12-step keys in 2, MAE loss over MSE in 1 and last-value "
        "normalisation over RevIN in 2 (each in \\texttt{results/}).")


def test_every_macro_is_used_and_keeps_the_space_after_it():
    defined = macros.paper_macros(load_results(FIXTURE))
    tex = (latex.PAPER_DIR / "main.tex").read_text()
    assert set(defined) <= set(re.findall(r"\\([A-Za-z]+)", tex)), "generated macros main.tex never uses"
    # TeX drops the space after a control word: "\videoStages stages" would print "eightstages".
    eaten = [m.group(0) for m in re.finditer(r"\\([A-Za-z]+)(?:[ \t]+\n?|\n)[ \t]*[A-Za-z(]", tex)
             if m.group(1) in defined]
    assert not eaten, eaten


def test_changes_and_frequencies_are_printed_as_words_and_signed_numbers():
    from paper.text import every, signed

    assert [signed(v, 1) for v in (-2.14, 1.46, -0.04, 0.0)] == ["$-$2.1", "+1.5", "0.0", "0.0"]
    assert [every(n, "decoded prediction") for n in (1, 2, 4, 11, 22)] == [
        "every decoded prediction", "every 2nd decoded prediction", "every 4th decoded prediction",
        "every 11th decoded prediction", "every 22nd decoded prediction"]


def test_training_time_sums_every_model_run_not_the_gathering_runs_wall_time():
    from paper.results import training_seconds

    parts = load_results(ROOT / "results")
    forecast, video = (json.loads((ROOT / "results" / p / "results.json").read_text()) for p in ("forecast", "video"))
    assert training_seconds(parts["forecast"]) == pytest.approx(sum(r["train_time_s"] for r in forecast["runs"]))
    per_seed = video["codec"]["codec_seconds"]["per_seed"] + [
        s for m in video["models"].values() for s in m["train_seconds"]["per_seed"]]
    assert training_seconds(parts["video"]) == pytest.approx(sum(per_seed))
    # the gathering run trained nothing: its wall time (evaluations only) is a fraction of the training time
    assert training_seconds(parts["video"]) > 2 * video["wall_time_s"]
    assert training_seconds(parts["attention"]) == parts["attention"].number("wall_time_s")
