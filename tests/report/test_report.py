"""`brts report` end to end on run folders of the default grid's arms and tasks (3 seeds, 100 problems, k = 4)."""

from __future__ import annotations

import os
import re
import shutil
import xml.etree.ElementTree as ET
from html.parser import HTMLParser

import numpy as np
import pandas as pd
import pytest
from PIL import Image
from typer.testing import CliRunner

from brts.cli import app
from brts.report import build_report, stats
from brts.spec import load_spec
from brts.store import RunStore
from tests.report.fake_runs import spec as fake_spec
from tests.report.fake_runs import write_experiment

SHIFT = {"opd": 0.0, "first_rollout": 0.03, "brts": {"brts_synthetic_hard": 0.25, "brts_synthetic_medium": 0.1},
         "brts_no_recovery": 0.05, "brts_no_alignment": 0.0}
SPEED = {"brts": 3.0}  # brts's validation curves reach their level in a third of the steps
# The default grid at three seeds and 100 problems: enough to find the planted shift, not so much power that a
# zero-shift arm's sampling noise is called a difference by chance (the fake runs have no seed effects).
GRID = load_spec("ablation-grid", ["seeds=[0,1,2]", "eval.problems=100"])


@pytest.fixture(scope="module")
def grid(tmp_path_factory: pytest.TempPathFactory):
    """The default grid's run folders (planted: brts +25 points on hard) and its report, built once."""
    root = tmp_path_factory.mktemp("grid")
    write_experiment(root / "store", GRID, SHIFT, speed=SPEED)
    result = build_report("ablation-grid", root / "store", root / "out")
    return root, result


def _residual(m: np.ndarray) -> float:
    """The two-way ANOVA residual mean square, written out."""
    resid = m - m.mean(axis=1, keepdims=True) - m.mean(axis=0, keepdims=True) + m.mean()
    return float((resid**2).sum() / ((m.shape[0] - 1) * (m.shape[1] - 1)))


class _Images(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.sources: list[str] = []
        self.links: list[str] = []

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag == "img":
            self.sources.append(attrs["src"])
        if tag == "a" and attrs.get("href", "").startswith("figures/"):
            self.links.append(attrs["href"])


def test_report_is_written_with_every_file(grid):
    root, result = grid
    out = root / "out"
    for name in ("index.md", "index.html", "results.parquet", "results.csv", "runs.parquet", "runs.csv", "table.csv",
                 "speed.csv", "grader.csv"):
        assert (out / name).stat().st_size > 0, name
    figures = {p.stem for p in (out / "figures").glob("*.png")}
    assert figures == {"accuracy", "difference", "cost", "learning_curves", "divergence", "learning_speed",
                       "selection_tiers", "alignment"}
    assert figures == {p.stem for p in (out / "figures").glob("*.svg")}
    assert not list(root.glob(".out.*")), "temporary folders are removed"


def test_every_image_referenced_by_the_html_exists_and_decodes(grid):
    out = grid[0] / "out"
    page = _Images()
    page.feed((out / "index.html").read_text())
    assert len(page.sources) == 8 and len(page.links) == 8
    assert "<script" not in (out / "index.html").read_text()
    for src in page.sources:
        assert not src.startswith(("http:", "https:", "/")), src
        with Image.open(out / src) as img:
            img.verify()
        with Image.open(out / src) as img:
            assert img.width > 300 and img.height > 150
    for href in page.links:
        assert ET.parse(out / href).getroot().tag.endswith("svg")
    md_images = re.findall(r"!\[[^\]]*\]\(([^)]+)\)", (out / "index.md").read_text())
    assert sorted(md_images) == sorted(page.sources)


def _browser() -> tuple[str, str] | None:
    """Chromium and its ChromeDriver (Debian: chromium, chromium-driver; `.ci/run` installs them), or None."""
    browser = next((shutil.which(b) for b in ("chromium", "chromium-browser", "google-chrome") if shutil.which(b)), None)
    driver = shutil.which("chromedriver")
    return (browser, driver) if browser and driver else None


# Chromium as root in a sandbox with no network: no sandbox, no GPU, no background connections, a fresh profile.
CHROMIUM_FLAGS = ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync",
                  "--disable-dev-shm-usage", "--force-device-scale-factor=1", "--window-size=1280,1000")


def test_html_renders_in_headless_chromium_with_every_figure_loaded(grid, tmp_path):
    found = _browser()
    if found is None:
        message = "no Chromium with ChromeDriver (apt-get install chromium chromium-driver; .ci/run installs them)"
        if os.environ.get("CI"):
            pytest.fail(f"{message}: CI must run the browser test")
        pytest.skip(message)
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = found[0]
    for flag in (*CHROMIUM_FLAGS, f"--user-data-dir={tmp_path / 'profile'}"):
        options.add_argument(flag)
    page = (grid[0] / "out" / "index.html").as_uri()
    browser = webdriver.Chrome(options=options, service=Service(executable_path=found[1]))
    try:
        browser.set_page_load_timeout(60)
        browser.get(page)
        height = browser.execute_script("return document.documentElement.scrollHeight")
        browser.set_window_size(1280, min(int(height) + 200, 16000))  # the whole page in one screenshot
        images = browser.execute_script(
            "return Array.from(document.images).map(i => { const r = i.getBoundingClientRect(); return {"
            "src: i.getAttribute('src'), loaded: i.complete && i.naturalWidth > 0, width: i.naturalWidth, "
            "box: [r.left + scrollX, r.top + scrollY, r.right + scrollX, r.bottom + scrollY]}; })")
        heading = browser.execute_script("return document.body.innerText")
        shot = browser.get_screenshot_as_png()
    finally:
        browser.quit()
    (tmp_path / "report.png").write_bytes(shot)
    figures = {f"figures/{p.name}" for p in (grid[0] / "out" / "figures").glob("*.png")}
    assert len(images) == len(figures) == 8 and {i["src"] for i in images} == figures, images
    broken = [i["src"] for i in images if not i["loaded"]]
    assert not broken, f"figures that did not load: {broken}"
    assert "Accuracy per arm and task" in heading
    with Image.open(tmp_path / "report.png") as screenshot:
        screenshot = screenshot.convert("RGB")
        assert screenshot.width >= 1000
        for image in images:  # every figure is drawn where the page puts it: many colours, not an empty box
            left, top, right, bottom = (round(v) for v in image["box"])
            assert right - left > 300 and bottom - top > 150, image
            crop = screenshot.crop((left, top, min(right, screenshot.width), min(bottom, screenshot.height)))
            assert len(crop.getcolors(maxcolors=1 << 16) or range(1 << 16)) > 50, f"{image['src']} looks blank"


def test_a_table_cell_is_recomputed_from_results_parquet(grid):
    out = grid[0] / "out"
    results = pd.read_parquet(out / "results.parquet")
    seeds = len(GRID.seeds)
    size = len(GRID.arms) * seeds * len(GRID.eval.tasks) * GRID.eval.problems * GRID.eval.k
    assert len(results[results["kind"] == "run"]) == size
    assert set(results.columns) >= {"experiment", "kind", "run_id", "arm", "seed", "task", "problem_id", "sample",
                                    "correct", "extracted", "response_tokens"}
    hard = results[(results["task"] == "brts_synthetic_hard") & (results["kind"] == "run")]
    per_run = hard.groupby(["arm", "seed", "problem_id"])["correct"].mean().groupby(["arm", "seed"]).mean() * 100
    brts, opd = per_run["brts"], per_run["opd"]
    per_problem = lambda arm: hard[hard["arm"] == arm].groupby("problem_id")["correct"].mean() * 100  # noqa: E731
    any_correct = hard[hard["arm"] == "brts"].groupby(["seed", "problem_id"])["correct"].max().mean() * 100

    table = pd.read_csv(out / "table.csv")
    row = table[(table["arm"] == "brts") & (table["task"] == "brts_synthetic_hard")].iloc[0]
    assert row["avg"] == pytest.approx(brts.mean())
    assert row["seed_sd"] == pytest.approx(brts.std(ddof=1))
    assert row["pass_at_k"] == pytest.approx(any_correct)
    assert row["diff"] == pytest.approx((per_problem("brts") - per_problem("opd")).mean())
    assert row["diff"] == pytest.approx(brts.mean() - opd.mean())
    # the interval is the crossed-model one of the seed x problem differences, and p its own
    d = (hard[hard["arm"] == "brts"].groupby(["seed", "problem_id"])["correct"].mean().unstack()
         - hard[hard["arm"] == "opd"].groupby(["seed", "problem_id"])["correct"].mean().unstack()) * 100
    test = stats.crossed_test(d.to_numpy())
    assert (row["diff_low"], row["diff_high"], row["p"]) == pytest.approx((test.interval.low, test.interval.high,
                                                                           test.p))
    assert row["se"] == pytest.approx(np.sqrt(d.mean(axis=1).var(ddof=1) / seeds + max(
        0.0, (seeds * d.mean(axis=0).var(ddof=1) - _residual(d.to_numpy())) / d.size)))
    # and the rendered Markdown shows the same numbers
    md = (out / "index.md").read_text()
    line = next(line for line in md.splitlines() if line.startswith("| hard | brts |"))
    assert f"{row['avg']:.1f} [{row['low']:.1f}, {row['high']:.1f}]" in line
    assert f"+{row['diff']:.1f}" in line


def test_summary_states_only_what_the_intervals_support(grid):
    root, result = grid
    table = pd.read_csv(root / "out" / "table.csv")
    compared = table[(table["kind"] == "arm") & table["diff"].notna()]
    brts_hard = compared[(compared["arm"] == "brts") & (compared["task"] == "brts_synthetic_hard")].iloc[0]
    assert brts_hard["significant"], "the planted +25 points on hard is found"
    assert abs(brts_hard["diff"] - 25) < 5
    sentences = {s.split(" vs ")[0]: s for s in result.summary if " vs opd: " in s}
    assert set(sentences) == {"first_rollout", "brts", "brts_no_recovery", "brts_no_alignment"}
    for r in compared.itertuples():
        task = r.task.removeprefix("brts_synthetic_")
        sentence = sentences[r.arm]
        claimed = re.search(rf"[+\u2212]\d+\.\d points on {task} \[", sentence) is not None
        assert claimed == bool(r.significant), (sentence, r)
    assert "no significant difference on easy, medium or hard" in sentences["brts_no_alignment"]
    md = (root / "out" / "index.md").read_text()
    assert all(s in md for s in result.summary)


runner = CliRunner()


def _fails(*args: str, contains: str) -> None:
    result = runner.invoke(app, ["report", *args], catch_exceptions=False)
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert result.exit_code == 2, result.output
    assert len(lines) == 1 and lines[0].startswith("error:") and contains in lines[0], result.output
    assert "Traceback" not in result.output


def test_bad_input_is_one_line_and_exit_2(grid, tmp_path):
    store = grid[0] / "store"
    out = tmp_path / "out"
    _fails("ablation-grid", "--store", str(tmp_path / "nowhere"), "--out", str(out), contains="does not exist")
    _fails("no-such", "--store", str(store), "--out", str(out), contains="ablation-grid")
    _fails("ablation-grid", "--store", str(store), "--out", str(out), "--baseline", "best", contains="opd, first_rollout")
    _fails("ablation-grid", "--store", str(store), "--out", str(out), "--format", "pdf", contains="md, html")
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "notes.txt").write_text("keep")
    _fails("ablation-grid", "--store", str(store), "--out", str(tmp_path / "mine"), contains="not a brts report")
    assert (tmp_path / "mine" / "notes.txt").read_text() == "keep"
    assert not out.exists()


def test_partial_experiment_reports_what_is_finished_and_lists_the_gaps(tmp_path, monkeypatch):
    specs = tmp_path / "experiments"
    specs.mkdir()
    (specs / "partial.yaml").write_text("extends: smoke\nseeds: [0, 1]\n")
    monkeypatch.setenv("BRTS_EXPERIMENTS", str(specs))
    status = {("brts_no_alignment", 1): "failed", ("first_rollout", 1): "running", ("brts_no_recovery", 1): "absent"}
    planned = write_experiment(tmp_path / "store", load_spec("partial"), {"brts": 0.3}, status=status)
    running = next(p for p in planned if (p.arm, p.seed) == ("first_rollout", 1))
    with RunStore(tmp_path / "store").run(running).lock():  # a live process holds it: running, not interrupted
        result = runner.invoke(app, ["report", "partial", "--store", str(tmp_path / "store"), "--out",
                                     str(tmp_path / "out")], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    assert "3 run(s) are not in the comparison (1 failed, 1 running, 1 not started)" in result.output
    for arm in ("brts_no_alignment", "first_rollout", "brts_no_recovery"):
        assert f"{arm} has fewer seeds than other arms (1 of 2)" in result.output
    md = (tmp_path / "out" / "index.md").read_text()
    gaps = md[md.index("## Runs not in the comparison"):]
    for p in planned:
        assert (p.run_id in gaps) == ((p.arm, p.seed) in status), p
    assert "NonFiniteLossError" in gaps and "planned, no run folder" in gaps
    assert "| medium | brts_no_recovery | " in md and "1 (of 2)" in md
    runs = pd.read_csv(tmp_path / "out" / "runs.csv")
    assert sorted(runs["status"]) == ["failed", "finished", *["finished"] * 6, "not started", "running"]


def test_experiment_without_finished_runs_is_refused(tmp_path):
    exp = load_spec("smoke")
    write_experiment(tmp_path / "store", exp, {}, status={(a.name, 0): "failed" for a in exp.arms}, references=False)
    _fails("smoke", "--store", str(tmp_path / "store"), "--out", str(tmp_path / "out"),
           contains="no finished runs with an evaluation (5 failed)")


def test_every_rows_p_value_and_significance_agree(grid):
    root = grid[0] / "out"
    for name in ("table.csv", "speed.csv"):
        rows = pd.read_csv(root / name)
        rows = rows[rows["p"].notna()]
        assert len(rows) >= 12, name
        excludes = (rows["diff_low"] > 0) | (rows["diff_high"] < 0)
        assert ((rows["p"] < 0.05) == excludes).all(), name
        assert (rows["significant"] == (rows["p_holm"] < 0.05)).all(), name
        assert (rows["p_holm"] >= rows["p"] - 1e-12).all(), name
    md = (root / "index.md").read_text()
    assert "## Power" in md and "## Learning speed" in md and "p (Holm)" in md
    assert "p (Wilcoxon)" not in md


def test_learning_speed_finds_the_planted_faster_arm(grid):
    speed = pd.read_csv(grid[0] / "out" / "speed.csv")
    area = speed[(speed["measure"] == "area") & speed["diff"].notna()]
    assert set(area[area["significant"]]["arm"]) == {"brts"}  # validation curves rising 3x as fast
    steps = speed[(speed["measure"] == "steps_to_threshold") & (speed["arm"] == "brts")]
    assert (steps["diff"] < 0).all()


def test_seeds_that_disagree_strongly_give_no_small_p_in_the_report(tmp_path):
    # brts's seeds: +30, 0 and +12 points on every problem. The seed-averaged per-problem differences are
    # decisive over 100 problems (a test over problems, seeds fixed, says p < 1e-6); the seeds disagree.
    exp = fake_spec("disagree", ["opd", "brts"], [0, 1, 2])
    write_experiment(tmp_path / "store", exp, {}, seed_shift={("brts", 0): 0.30, ("brts", 1): 0.0,
                                                                ("brts", 2): 0.12}, references=False)
    result = build_report("disagree", tmp_path / "store", tmp_path / "out")
    table = pd.read_csv(tmp_path / "out" / "table.csv")
    rows = table[(table["arm"] == "brts") & table["diff"].notna()]
    assert len(rows) == 3
    assert (rows["p_wilcoxon_problems"] < 1e-6).all()
    assert (rows["p"] > 0.1).all() and not rows["significant"].any()
    assert "no significant difference on easy, medium or hard" in " ".join(result.summary)


def test_a_run_whose_problems_table_was_cut_is_listed_as_damaged_not_averaged(tmp_path, monkeypatch):
    """The issue's case: problems.csv cut at a line boundary (a valid CSV with fewer rows) made the report average
    25 problems of one seed; now the run is listed as damaged, named, and its arm has one seed fewer."""
    specs = tmp_path / "experiments"
    specs.mkdir()
    (specs / "cut.yaml").write_text("extends: smoke\nseeds: [0, 1]\n")
    monkeypatch.setenv("BRTS_EXPERIMENTS", str(specs))
    planned = write_experiment(tmp_path / "store", load_spec("cut"), {"brts": 0.3})
    damaged = next(p for p in planned if (p.arm, p.seed) == ("brts", 1))
    table = tmp_path / "store" / "cut" / damaged.run_id / "eval" / "problems.csv"
    table.write_text("".join(table.read_text().splitlines(keepends=True)[:10]))
    result = runner.invoke(app, ["report", "cut", "--store", str(tmp_path / "store"), "--out",
                                 str(tmp_path / "out")], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    assert "1 run(s) are not in the comparison (1 damaged)" in result.output
    assert "brts has fewer seeds than other arms (1 of 2)" in result.output
    gaps = (tmp_path / "out" / "index.md").read_text().split("## Runs not in the comparison")[1]
    assert damaged.run_id in gaps and "damaged" in gaps and "problems.csv" in gaps
    results = pd.read_parquet(tmp_path / "out" / "results.parquet")
    assert damaged.run_id not in set(results["run_id"])
