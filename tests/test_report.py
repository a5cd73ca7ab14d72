"""The technical report machinery end to end: synthetic runs written with the pipeline's writers, real notebooks,
real Markdown → HTML rendering, a real Chromium PDF, Graphviz, the README, the benchmark table and the run-book."""
from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from pypdf import PdfReader
from report_helpers import (
    FULL_METRICS,
    make_benchmarks,
    make_extras,
    make_full_runs,
    make_library_notebooks,
    make_run,
    require_browser,
    require_tool,
)

from cryptopred.config import KNOWN_ENV, Settings, env_var
from cryptopred.pipeline import RunRecord, run_step, write_metrics
from cryptopred.report import (
    DIAGRAM_PNG,
    DIAGRAM_SRC,
    NOTICE,
    REPO_ROOT,
    SECTIONS,
    ReportError,
    build_report,
    check_report,
    collect_runs,
    diagram_is_current,
    ensure_diagram,
    html_to_pdf,
    load_benchmarks,
    pdf_page_count,
    png_text,
    readme_text,
    render_diagram,
    repository_url,
)

BENCH = Path(__file__).resolve().parent / "benchmarks"


@pytest.fixture
def full(settings, tmp_path):
    "A complete set of runs and everything else a final report needs."
    runs = make_full_runs(settings)
    shot, real = make_extras(tmp_path / "extras")
    kw = dict(nbs_dir=make_library_notebooks(tmp_path / "nbs"), bench_dir=make_benchmarks(tmp_path / "bench"),
              screenshot=shot, real_data_md=real)
    return runs, kw


def test_full_report_is_complete_verified_and_printed(settings, tmp_path, full):
    require_browser()
    runs, kw = full
    res = build_report(settings, out_dir=tmp_path / "out", pdf=True, strict=True, **kw)
    md = res.markdown.read_text()
    assert res.problems == []
    # the template's structure, in order
    heads = [s.heading for s in SECTIONS]
    assert [md.index(h) for h in heads] == sorted(md.index(h) for h in heads)
    # the simulated source is declared before the first section
    assert md.index("SIMULATED DATA") < md.index("## 1. Introduction")
    # the latest successful run of each step is used (not the newer failed one, not the older one)
    assert res.runs == {step: path.name for step, path in runs.items()}
    assert "`ret_1`, `ret_2`, `rsi_14`" in md and "`old`" not in md
    # numbers are cited and formatted from the runs, intervals included, None as n/a
    assert re.search(r">0\.512</span> \[<span[^>]*>0\.470</span>, <span[^>]*>0\.555</span>\]", md)
    assert ">n/a</span>" in md and ">hist\\_gradient\\_boosting</span>" in md
    assert len(res.citations) > 80 and set(res.sources) >= {p.name for p in runs.values()}
    # prose from the library notebooks, nested below the report's sections; outputs of tagged run-book cells
    assert "#### Gaps\n\nWhy gaps is done this way." in md
    assert ("**Confusion matrix** on the holdout:\n\n|  | predicted up | predicted down |\n|---|---|---|\n"
            "| up | 51 | 38 |") in md
    assert "fitting model" not in md and "plot_confusion" not in md
    # figures: the runs', the run-book output's, the diagram and the screenshot, all copied beside the report
    images = re.findall(r"!\[[^\]]*\]\(([^)]+)\)", md)
    assert {"figures/pipeline.png", "figures/frontend.png", "figures/train_classifier-roc.png",
            "figures/train_classifier-feature_importance.png", "figures/monitor-drift.png"} <= set(images)
    assert all((res.markdown.parent / i).is_file() for i in images)
    # self-contained HTML: every image embedded, nothing loaded from anywhere
    page = res.html.read_text()
    assert page.count('src="data:image/png;base64,') == len(images)
    assert not re.search(r'src="(?!data:)', page) and "<link" not in page and "<script" not in page
    assert repository_url(settings) in page
    # the PDF: Chromium printed it, pypdf reads it, the simulated warning is on the first page
    pdf = PdfReader(res.pdf)
    assert res.pages == len(pdf.pages) == pdf_page_count(res.pdf) and 6 <= res.pages <= 30
    assert "SIMULATED DATA" in pdf.pages[0].extract_text()


def test_a_number_that_changed_in_its_run_is_caught(settings, tmp_path, full):
    runs, kw = full
    res = build_report(settings, out_dir=tmp_path / "out", pdf=False, **kw)
    md = res.markdown.read_text()
    assert check_report(md, res.sources, base_dir=res.markdown.parent) == []
    m = json.loads((runs["train_classifier"] / "metrics.json").read_text())
    m["holdout"]["ethereum"]["roc_auc"]["lo"] = 0.4
    write_metrics(runs["train_classifier"], m)
    probs = check_report(md, res.sources, base_dir=res.markdown.parent)
    assert probs == [f"section '3.4 Model Training › Direction classifier on the holdout': '0.503' differs from "
                     f"{runs['train_classifier'].name}: holdout.ethereum.roc_auc.lo = '0.400'"]
    # the same when the sources are given as run records and benchmark files
    sources = [RunRecord.read(p) for p in runs.values()] + load_benchmarks(kw["bench_dir"])
    assert check_report(md, sources, base_dir=res.markdown.parent) == probs
    (res.markdown.parent / "figures" / "monitor-drift.png").unlink()
    assert "section '3.6 Monitoring › The latest monitor run': missing figure figures/monitor-drift.png" in \
        check_report(md, res.sources, base_dir=res.markdown.parent)


def test_missing_runs_render_notices_that_block_a_final_report(settings, tmp_path, full):
    _, kw = full
    shutil.rmtree(settings.runs_dir)
    make_run(settings, "ingest", FULL_METRICS["ingest"])
    make_run(settings, "monitor", {"source": "simulated", "drift": {}}, minutes=1)
    make_run(settings, "train_forecaster", None, minutes=2, status="failed", error="ValueError: too few rows")
    res = build_report(settings, out_dir=tmp_path / "out", pdf=False, **kw)
    md = res.markdown.read_text()
    assert set(res.missing) == {"profile", "train_forecaster", "train_classifier"}
    for step, how in [("train_classifier", "make train"), ("profile", "cryptopred run profile")]:
        assert f"> **{NOTICE}** no `{step}` run yet: run `{how}`." in md
    assert "the latest, " in res.missing["train_forecaster"] and "failed (ValueError: too few rows)" in md
    assert f"run {res.runs['monitor']} does not record `realized`, `latency`, `alerts`" in md
    joined = "\n".join(res.problems)
    for where in ["3.2 Preprocessing", "3.3 Feature Engineering", "3.4 Model Training", "3.6 Monitoring",
                  "4. Evaluation and Monitoring Strategy"]:
        assert re.search(f"section '{re.escape(where)}( › [^']+)?': {NOTICE}", joined), where
    assert not any("empty section" in p for p in res.problems)
    with pytest.raises(ReportError, match=r"problem\(s\):\n- section '3.2 Preprocessing › What cleaning found'"):
        build_report(settings, out_dir=tmp_path / "out", pdf=False, strict=True, **kw)


def test_pinned_runs(settings, tmp_path, full):
    runs, kw = full
    older = sorted(p.name for p in settings.runs_dir.iterdir() if p.name.endswith("_train_classifier"))[0]
    sel = collect_runs(settings, {"train_classifier": older})
    assert sel.runs["train_classifier"].metrics["features"] == ["old"] and not sel.missing
    res = build_report(settings, runs={"train_classifier": older}, out_dir=tmp_path / "out", pdf=False, **kw)
    assert "used these features: `old`." in res.markdown.read_text() and res.runs["train_classifier"] == older
    with pytest.raises(ReportError, match="pinned for step 'monitor' is a 'train_classifier' run"):
        build_report(settings, runs={"monitor": older}, out_dir=tmp_path / "out", pdf=False, **kw)


def test_repository_link_is_configurable(tmp_path):
    s = Settings(home=tmp_path, repository_url="https://git.example.org/team/cryptopred")
    assert repository_url(s) == "https://git.example.org/team/cryptopred"
    pyproject = (REPO_ROOT / "pyproject.toml").read_text()
    assert f'Repository = "{repository_url(Settings(home=tmp_path))}"' in pyproject


def test_pdf_printing_fails_clearly_without_a_browser(tmp_path):
    (tmp_path / "a.html").write_text("<p>x</p>")
    with pytest.raises(ReportError, match="Chromium could not print a.html"):
        html_to_pdf(tmp_path / "a.html", browser="/bin/false")
    assert not list(tmp_path.glob("*.pdf"))


def test_diagram_renders_offline_and_the_committed_png_is_current(tmp_path):
    assert diagram_is_current(DIAGRAM_PNG, DIAGRAM_SRC), "reports/figures/pipeline.png is stale: run `make diagram`"
    require_tool(shutil.which("dot"), "Graphviz (apt-get install graphviz)")
    png = render_diagram(DIAGRAM_SRC, tmp_path / "p.png")
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 50_000
    assert diagram_is_current(png, DIAGRAM_SRC) and "cryptopred-source-sha256" in png_text(png)
    svg = render_diagram(DIAGRAM_SRC, tmp_path / "p.svg").read_text()
    for label in ["CoinGecko API", "Preprocessing", "Feature engineering", "Prophet forecaster", "Model registry",
                  "FastAPI + Gradio app", "Serving (Docker)", "Data drift", "Latency &amp; errors", "Alerts",
                  "Retraining trigger"]:
        assert label in svg, label
    changed = tmp_path / "changed.dot"
    changed.write_text(DIAGRAM_SRC.read_text().replace("Alerts", "Alarms"))
    assert not diagram_is_current(png, changed)
    (tmp_path / "bad.dot").write_text("digraph { a -> }")
    with pytest.raises(ReportError, match="dot could not render .*bad.dot.*syntax error"):
        render_diagram(tmp_path / "bad.dot", tmp_path / "bad.png")
    assert not (tmp_path / "bad.png").exists()


def test_without_graphviz_the_committed_diagram_is_used_only_while_current(tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    out = ensure_diagram(tmp_path / "figures" / "pipeline.png")
    assert out.read_bytes() == DIAGRAM_PNG.read_bytes()
    changed = tmp_path / "changed.dot"
    changed.write_text(DIAGRAM_SRC.read_text() + "// edited\n")
    with pytest.raises(ReportError, match="out of date with changed.dot and Graphviz is missing: apt-get install"):
        ensure_diagram(tmp_path / "other.png", src=changed)
    assert not (tmp_path / "other.png").exists()


def test_readme_is_generated_from_the_index_notebook():
    readme = (REPO_ROOT / "README.md").read_text()
    assert readme == readme_text(), "README.md differs from nbs/index.ipynb: edit the notebook, then `make readme`"
    names = set(re.findall(r"\b((?:CRYPTOPRED|COINGECKO)_[A-Z_]+)\b", readme))
    known = {env_var(f) for f in Settings.model_fields} | KNOWN_ENV
    assert names and names <= known, names - known
    for link in re.findall(r"\]\((?!https?:)([^)#]+)\)", readme):
        assert (REPO_ROOT / link).exists(), link


def test_benchmarks_run_all_and_measure_memory(tmp_path):
    sys.path.insert(0, str(BENCH))
    from benchutil import measure, row
    stats = measure(lambda: np.ones(5_000_000), repeat=2, warmup=0)
    assert stats["runs"] == 2 and len(stats["times_s"]) == 2 and stats["peak_memory_mb"] >= 39
    assert row("x", "w", stats)["peak_memory_mb"] == round(stats["peak_memory_mb"], 1)
    scripts = tmp_path / "scripts"
    scripts.mkdir()
    (scripts / "bench_ok.py").write_text(
        "from benchutil import measure, row, write_result\n"
        "s = measure(lambda: sum(range(1000)), repeat=3)\n"
        "write_result('ok', [row('demo', 'sum of 1000 ints', s, goal='≤ 1 s', met=True)])\n")
    (scripts / "bench_broken.py").write_text("raise SystemExit('no data for the benchmark')\n")
    p = subprocess.run([sys.executable, str(BENCH / "run_all.py"), "--bench-dir", str(scripts), "--results",
                        str(tmp_path / "results"), "--table", str(tmp_path / "benchmarks.md")],
                       capture_output=True, text=True, timeout=120)
    assert p.returncode == 1 and "bench_broken.py: exit status 1" in p.stderr, p.stderr
    table = (tmp_path / "benchmarks.md").read_text()
    assert re.search(r"\| demo \| sum of 1000 ints \| [0-9.e-]+ \| 3 \| [0-9,]+ \| ≤ 1 s \| yes \|", table), table
    assert json.loads((tmp_path / "results" / "ok.json").read_text())["machine"]["cpus"] >= 1


def test_report_runbook(settings, tmp_path):
    runs = make_full_runs(settings)
    rec = run_step("report", {"out_dir": str(tmp_path / "out"), "pdf": False}, settings=settings, timeout=300)
    assert rec.ok, rec.error
    m = rec.metrics
    assert m["runs"] == {step: p.name for step, p in runs.items()} and m["pdf"] is None
    assert Path(m["markdown"]).read_text().startswith("# Technical Report")
    # what this checkout lacks (a screenshot or benchmark not produced yet) is a reported problem, never a silent gap
    assert m["n_problems"] == len(m["problems"]) and m["n_citations"] > 50
    assert all(NOTICE in p for p in m["problems"]), m["problems"]
    executed = (rec.path / "report.ipynb").read_text()
    assert "technical_report.html" in executed
