"""The technical report end to end: a small simulated run of the real run-books (`make pipeline` on two coins), the
report built from it (real notebooks' prose, real Markdown -> HTML, a real Chromium PDF), the checks that keep it
honest, Graphviz, the README, the benchmark table."""
from __future__ import annotations

import html
import io
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import threading
import urllib.request
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import pytest
from pypdf import PdfReader
from support.runs import SMALL_ENV, copy_run, failed_run, require_browser, require_tool, small_pipeline

from cryptopred.commands import pipeline_cli
from cryptopred.common import CONTRACTS, PRINT_FONT_PT, PRINT_WIDTH_IN, REPO_ROOT
from cryptopred.config import KNOWN_ENV, Settings, env_var, load_settings
from cryptopred.pipeline import PIPELINE_STEPS
from cryptopred.report.build import build_report
from cryptopred.report.check import NOTICE, PLACEHOLDERS, check_report, markup_problems
from cryptopred.report.cite import REPORT_STEPS, ReportError, collect_runs, key_parts, lookup
from cryptopred.report.context import SECTION_NEEDS
from cryptopred.report.prose import empty_sections, readme_text, unicode_math
from cryptopred.report.render import (
    DIAGRAM_PNG,
    DIAGRAM_SRC,
    app_screenshot,
    diagram_is_current,
    ensure_diagram,
    html_to_pdf,
    markdown_to_html,
    pdf_page_count,
    png_text,
    render_diagram,
)
from cryptopred.report.sections import SECTIONS, repository_url

BENCH = Path(__file__).resolve().parent / "benchmarks"


@pytest.fixture(scope="module")
def small(tmp_path_factory):
    "The small simulated pipeline, run once for this module: (settings, {step: run record}, report folder)."
    require_browser()
    d = tmp_path_factory.mktemp("small")
    s, res = small_pipeline(d / "home", d / "report")
    assert res.ok, f"{res.failed.step}: {res.failed.error}"
    return s, {r.step: r for r in res.records}, d / "report"


def _shown(md: str, key: str) -> list[str]:
    "The texts of the cited numbers whose key is `key`."
    return [m.group(2) for m in re.finditer(r'<span class="metric" data-run="[^"]*" data-key="([^"]*)"[^>]*>(.*?)</span>', md)
            if m.group(1) == key]


def _text(md: str) -> str: return re.sub(r"<[^>]+>", "", md)


def test_report_from_a_small_simulated_pipeline(small):
    """Every step ran; the report has the template's sections, every figure, no placeholder, the runs' numbers and a
    PDF whose first page says the data was simulated."""
    s, runs, out = small
    assert list(runs) == list(PIPELINE_STEPS)
    rep = runs["report"].metrics
    assert rep["problems"] == [] and rep["n_citations"] > 300
    assert {st: rep["runs"][st] for st in REPORT_STEPS} == {st: runs[st].run_id for st in REPORT_STEPS}
    assert "technical_report.html" in (runs["report"].path / "report.ipynb").read_text()
    md = (out / "technical_report.md").read_text()
    html = (out / "technical_report.html").read_text()
    # plain Markdown (numbers as text, formulas in Unicode); the HTML keeps each number's run and key, and shows no
    # tag text or raw LaTeX
    assert "<span" not in md and markup_problems(md, html) == [] and html.count('class="metric"') > 300
    assert "zₜ = (rₜ - m)/(1.4826\u2009MAD)" in md and "1.4826\\," not in html
    # beside it, the metrics of every run it cites (what lets a committed report be re-checked anywhere)
    from cryptopred.report.cite import SOURCES_FILE
    kept = json.loads((out / SOURCES_FILE).read_text())
    assert {st: kept[runs[st].run_id] for st in REPORT_STEPS} == {st: runs[st].metrics for st in REPORT_STEPS}
    # the template's sections, in order, none empty, no placeholder or notice left
    heads = [sec.heading for sec in SECTIONS]
    assert [md.index(h) for h in heads] == sorted(md.index(h) for h in heads)
    assert empty_sections(md) == [] and NOTICE not in md
    assert not any(p in md for p in PLACEHOLDERS)
    assert md.index("SIMULATED DATA") < md.index("## 1. Introduction")
    # every figure of the runs, tiled per coin, beside the report and embedded in the HTML
    images = re.findall(r"!\[[^\]]*\]\(([^)]+)\)", md)
    names = {Path(i).name for i in images}
    assert {"pipeline.png", "frontend.png", "ingest-prices.png", "train_classifier-feature_importance.png",
            "train_classifier-roc_all.png", "train_classifier-calibration_all.png", "train_classifier-backtest_all.png",
            "train_forecaster-forecast_all.png"} <= names, names
    assert any(n.startswith("monitor-drift_") for n in names)
    assert all((out / i).is_file() and (out / i).stat().st_size < 600_000 for i in images)
    assert html.count('src="data:image/png;base64,') == len(images) and not re.search(r'src="(?!data:)', html)
    assert "No public repository is configured" in md and "<script" not in html
    # section 5 shows the app this pipeline served, photographed as the report was built
    assert rep["screenshot_skipped"] is None and "photographed in headless Chromium while this report was built" in md
    # ... from a home of its own for the prediction log: the picture's prediction never reaches the monitor
    assert not list((s.monitoring_dir / "predictions").glob("*.jsonl"))
    # numbers equal to what the runs wrote, read here from their metrics.json
    ing = json.loads((runs["ingest"].path / "metrics.json").read_text())
    rows = _shown(html, "per_coin.bitcoin.rows")
    assert rows and set(rows) == {f"{ing['per_coin']['bitcoin']['rows']:,}"}
    clf = json.loads((runs["train_classifier"].path / "metrics.json").read_text())
    table = _text(md.split("##### Holdout metrics")[1].split("#####")[0])
    for coin in ("bitcoin", "ethereum"):
        auc = clf["holdout"][coin]["roc_auc"]
        assert f"| {coin} | {clf['holdout'][coin]['n']} | {auc['value']:.3f} [{auc['lo']:.3f}, {auc['hi']:.3f}] |" in table
    mean_auc = np.mean([clf["holdout"][c]["roc_auc"]["value"] for c in ("bitcoin", "ethereum")])
    assert f"mean ROC-AUC {mean_auc:.3f}" in _text(md.split("**At a glance.**")[1])
    assert check_report(md, rep["sources"], base_dir=out, cited=html, html_text=html) == []
    # the report as a notebook (one cell per top-level section) and the PDF
    nb = json.loads((out / "technical_report.ipynb").read_text())
    assert "".join(nb["cells"][0]["source"]).startswith("# Technical Report")
    assert len(nb["cells"]) == 1 + sum(not sec.number.count(".") for sec in SECTIONS)
    pdf = PdfReader(out / "technical_report.pdf")
    assert rep["pages"] == len(pdf.pages) == pdf_page_count(out / "technical_report.pdf") and 12 <= len(pdf.pages) <= 30
    assert "SIMULATED DATA" in pdf.pages[0].extract_text()
    text = "\n".join(pg.extract_text() for pg in pdf.pages)
    assert "<span" not in text and "\\mathrm" not in text and "data-key" not in text


def test_a_number_that_changed_in_its_run_is_caught(small, tmp_path):
    _, runs, out = small
    rep = runs["report"].metrics
    md, html = (out / "technical_report.md").read_text(), (out / "technical_report.html").read_text()
    sources = {sid: json.loads(Path(p).read_text()) for sid, p in rep["sources"].items()}
    clf = runs["train_classifier"].run_id
    auc = sources[clf]["holdout"]["ethereum"]["roc_auc"]
    shown = f"{auc['lo']:.3f}"
    auc["lo"] = round(auc["lo"] - 0.1, 6)
    probs = check_report(md, sources, base_dir=out, cited=html)
    assert probs and all(f"'{shown}' differs from {clf}: holdout.ethereum.roc_auc.lo = '{auc['lo']:.3f}'" in p for p in probs)
    assert any(p.startswith("section '3.4 Model Training") for p in probs)
    del sources[clf]["cleaning"]
    assert any(f"cites {clf}: cleaning.bitcoin" in p and "which it no longer has" in p
               for p in check_report(md, sources, base_dir=out, cited=html))
    shutil.copytree(out, tmp_path / "copy")
    fig = next((tmp_path / "copy" / "technical_report_files").glob("monitor-drift_*.png"))
    fig.unlink()
    assert f"missing figure technical_report_files/{fig.name}" in "\n".join(
        check_report(md, rep["sources"], base_dir=tmp_path / "copy"))


def test_missing_runs_render_notices_that_block_a_final_report(small, tmp_path):
    _, runs, _ = small
    s = load_settings(environ={"CRYPTOPRED_HOME": str(tmp_path / "home")}, env_file=None)
    copy_run(runs["ingest"], s)
    copy_run(runs["monitor"], s)
    failed_run(s, "train_forecaster", "ValueError: too few rows", datetime(2030, 1, 1, tzinfo=timezone.utc))
    kw = dict(out_dir=tmp_path / "out", pdf=False, evidence_dir=tmp_path / "none", bench_dir=tmp_path / "none")
    res = build_report(s, **kw)
    md = res.markdown.read_text()
    assert set(res.missing) == {"profile", "train_forecaster", "train_classifier", "demo_drift", "evaluate_real"}
    for step, how in [("train_classifier", "make train"), ("profile", "make profile"), ("demo_drift", "make demo-drift")]:
        assert f"> **{NOTICE}** no `{step}` run yet: run `{how}`." in md
    assert "failed (ValueError: too few rows)" in md
    # no champion to serve: section 5 says this run's app was not photographed, and why, beside the committed picture
    assert res.screenshot_skipped == "the registry has no champion to serve (run `make train`)"
    assert f"This run's app was not photographed: {res.screenshot_skipped}." in md and "the committed picture" in md
    joined = "\n".join(res.problems)
    for where in ["3.2 Preprocessing", "3.3 Feature Engineering", "3.4 Model Training", "3.5 Deployment",
                  "4. Evaluation and Monitoring Strategy", "Appendix B. Benchmarks"]:
        assert re.search(f"section '{re.escape(where)}( › [^']+)?': {NOTICE}", joined), where
    assert not any("empty section" in p for p in res.problems)
    with pytest.raises(ReportError, match=r"problem\(s\):\n- section '3.2 Preprocessing"):
        build_report(s, strict=True, **kw)


def test_formulas_read_as_text():
    "TeX becomes Unicode; an index with no Unicode subscript reads as an index, and a leftover `_(` is a problem."
    md = unicode_math(r"at $t$: $\log p_t + s\sum_{j=1}^{h}\hat r_{t+j}$; $\log p_T + \hat r_{T+j}$; blocks of $\sqrt[3]{n}$")
    assert md == "at t: log pₜ + sΣⱼ₌₁ʰr̂ₜ₊ⱼ; log p\\_T + r̂\\[T+j\\]; blocks of ∛n"
    page = markdown_to_html(md, toc=False)
    assert markup_problems(md, page) == [] and "r̂[T+j]" in page
    assert markup_problems("", "<p>sΣ_(j≤h)r̂_(T+j)</p>")[0] == "a subscript written as _( in 'sΣ_(j≤h)' shown in the HTML"


def test_figures_are_drawn_at_their_printed_size():
    "Each figure of the report is drawn as wide as its place on the printed page, with no text under 8 pt."
    import pandas as pd
    from matplotlib.text import Text
    from PIL import Image

    from cryptopred.evaluate import backtest_long_flat, plot_calibration, plot_equity, plot_roc
    from cryptopred.forecast import plot_forecast
    from cryptopred.train.run import plot_importance
    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, 200); p = np.clip(0.5 + 0.1 * (y - .5) + rng.normal(0, .1, 200), 0.01, .99)
    idx = pd.date_range("2026-01-01", periods=200, freq="D", tz="UTC")
    ret = pd.Series(rng.normal(0, .02, 200), idx)
    frame = pd.DataFrame({"timestamp": idx, "price": np.exp(np.cumsum(ret.to_numpy())) * 100})
    fc = pd.DataFrame({"timestamp": pd.date_range(idx[-1], periods=31, freq="D")[1:]})
    for k, v in {"yhat": 100, "yhat_lower_80": 90, "yhat_upper_80": 110, "yhat_lower_95": 80, "yhat_upper_95": 120}.items():
        fc[k] = float(v)
    figures = {  # name: (figure, how many share the page's width in the report)
        "roc": (plot_roc(y, p, others={"momentum": 1 - p}, title="ROC, ethereum holdout"), 3),
        "calibration": (plot_calibration(y, p, title="Calibration, ethereum holdout"), 3),
        "backtest": (plot_equity(backtest_long_flat(pd.Series(p, idx), ret, 0.5, 10, 365), title="Long/flat, ethereum"), 3),
        "forecast": (plot_forecast(frame, fc, "daily", title="ethereum from 2026-07-19"), 3),
        "importance": (plot_importance({c: {f"ret_lag_{i}": rng.normal() for i in range(15)} for c in "abcde"}), 1)}
    for name, (fig, across) in figures.items():
        buf = io.BytesIO()
        fig.savefig(buf, format="png", dpi=200, bbox_inches="tight", pad_inches=0.02)  # as save_figure does
        width = Image.open(buf).width / 200
        sizes = [t.get_fontsize() for t in fig.findobj(Text) if t.get_visible() and t.get_text().strip()]
        room = (PRINT_WIDTH_IN - 0.1 * (across - 1)) / across
        assert width <= room + 0.01 and min(sizes) >= PRINT_FONT_PT, (name, width, room, min(sizes))


def test_pinned_runs(small, tmp_path):
    s, runs, _ = small
    home = load_settings(environ={"CRYPTOPRED_HOME": str(tmp_path / "home")}, env_file=None)
    shutil.copytree(s.runs_dir, home.runs_dir)
    older = copy_run(runs["train_classifier"], home, minutes=-60, granularity="older").name
    assert collect_runs(home).runs["train_classifier"].id == runs["train_classifier"].run_id
    sel = collect_runs(home, {"train_classifier": older})
    assert sel.runs["train_classifier"].metrics["granularity"] == "older" and not set(sel.missing) & set(REPORT_STEPS)
    with pytest.raises(ReportError, match="pinned for step 'monitor' is a 'train_classifier' run"):
        collect_runs(home, {"monitor": older})
    with pytest.raises(ReportError, match="runs pinned for unknown steps \\['train'\\]"):
        collect_runs(home, {"train": older})


def test_repository_link_is_configurable(tmp_path):
    s = Settings(home=tmp_path, repository_url="https://git.example.org/team/cryptopred")
    assert repository_url(s) == "https://git.example.org/team/cryptopred"
    # no placeholder: the package declares no public repository, and the report says so instead of inventing one
    pyproject = (REPO_ROOT / "pyproject.toml").read_text()
    assert "Repository =" not in pyproject and ".invalid" not in pyproject
    assert repository_url(Settings(home=tmp_path)) is None


def test_the_app_is_not_photographed_without_chromium(tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    with pytest.raises(ReportError, match=r"no Chromium is installed \(apt-get install chromium\)"):
        app_screenshot(Settings(home=tmp_path), tmp_path / "app.png")
    assert not (tmp_path / "app.png").exists()


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
    svg = render_diagram(DIAGRAM_SRC, tmp_path / "p.svg", dpi=72).read_text()  # 72 dpi: the SVG's points are the printed size
    for label in ["CoinGecko API", "Preprocessing", "Features: returns", "Prophet forecaster", "Model registry",
                  "FastAPI + Gradio", "Serving (Docker)", "Data drift", "Latency &amp; errors", "Alerts",
                  "Retraining trigger"]:
        assert label in svg, label
    # drawn at its printed size: no wider than the report's text, no label under 8 pt
    assert float(re.search(r'<svg width="([\d.]+)pt"', svg).group(1)) <= 72 * PRINT_WIDTH_IN
    assert min(float(f) for f in re.findall(r"fontsize=([\d.]+)", DIAGRAM_SRC.read_text())) >= PRINT_FONT_PT
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
    # the headline numbers typed into the index notebook are the committed measurements, not stale ones
    real = json.loads((REPO_ROOT / "reports" / "real_data_evaluation.json").read_text())["summary"]
    serve = json.loads((REPO_ROOT / "reports" / "benchmarks" / "serve.json").read_text())["details"]["levels"]
    at32 = next(lv for lv in serve if lv["clients"] == 32)
    assert f"mean holdout ROC-AUC of {real['mean_roc_auc']:.3f}" in readme
    assert f"zero on {real['positive_brier_skill']} of {real['coins']} coins" in readme
    assert f"level on only {real['beats_best_baseline']} of {real['coins']}" in readme
    assert f"32 concurrent clients with a p99 latency of {at32['p99_ms']:.1f} ms" in readme


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
    row_re = r"\| demo \| sum of 1000 ints \| [0-9.]+ (µs|ms|s) \| 3 \| ([0-9.,]+ MB|not measured) \| ≤ 1 s \| yes \|"
    assert re.search(row_re, table), table
    assert json.loads((tmp_path / "results" / "ok.json").read_text())["machine"]["cpus"] >= 1


def test_make_run_serves_the_app_and_stops_on_ctrl_c(small, tmp_path):
    """`make run`'s last part on the small home: the report step, then the app, its URL printed once it accepts
    connections; Ctrl-C stops it cleanly."""
    s, _, _ = small
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0)); port = sock.getsockname()[1]
    env = {**os.environ, **SMALL_ENV, "CRYPTOPRED_HOME": str(s.home)}
    cmd = [str(Path(sys.executable).with_name("cryptopred")), "pipeline", "--steps", "report", "--serve", "--port", str(port),
           "--no-pdf"]
    tree_before = _git_status()
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    watchdog = threading.Timer(240, proc.kill)  # a hung app fails the test instead of hanging it
    watchdog.start()
    try:
        lines = []
        for line in proc.stdout:
            lines.append(line)
            if line.startswith("serving http"): break
        out = "".join(lines)
        assert re.search(r"^report: succeeded in [0-9.]+ s", out, re.M) and "complete (no problems)" in out, out
        assert "report: NO PDF: not asked for" in out, out
        assert lines[-1].startswith(f"serving http://127.0.0.1:{port}/"), out
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=30) as r:
            assert r.status == 200 and json.loads(r.read())["ready"] is True
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=60) == 0 and proc.stdout.read().rstrip().endswith("stopped")
    finally:
        watchdog.cancel()
        if proc.poll() is None: proc.kill(); proc.wait()
    # the report went to the home, and the checkout is as it was (a clean clone stays clean)
    assert (s.home / "reports" / "technical_report.html").is_file()
    assert not (s.home / "reports" / "technical_report.pdf").exists()
    assert _git_status() == tree_before


def _git_status() -> str:
    return subprocess.run(["git", "status", "--porcelain", "--untracked-files=all"], cwd=REPO_ROOT, capture_output=True,
                          text=True, check=True).stdout


def test_publish_copies_a_finished_report_and_refuses_an_unfinished_one(small, tmp_path):
    "`cryptopred publish` is the only way the committed report changes: checked again, copied whole, or refused."
    from cryptopred.report.build import PUBLISHED_FILES, publish_report
    from cryptopred.report.context import FIGURES_DIRNAME
    _, runs, out = small
    dest = tmp_path / "reports"
    (dest / FIGURES_DIRNAME).mkdir(parents=True)
    (dest / FIGURES_DIRNAME / "stale.png").write_bytes(b"old")
    cited = publish_report(out, dest)
    assert set(cited) >= {runs[st].run_id for st in REPORT_STEPS}
    assert all((dest / n).read_bytes() == (out / n).read_bytes() for n in PUBLISHED_FILES)
    assert sorted(p.name for p in (dest / FIGURES_DIRNAME).iterdir()) == sorted(p.name for p in (out / FIGURES_DIRNAME).iterdir())
    # a report whose number no longer matches its run is refused, and the published copy stays as it was
    bad = tmp_path / "bad"
    shutil.copytree(out, bad)
    src = json.loads((bad / "technical_report_sources.json").read_text())
    clf = runs["train_classifier"].run_id
    src[clf]["holdout"]["bitcoin"]["n"] += 1
    (bad / "technical_report_sources.json").write_text(json.dumps(src))
    before = {n: (dest / n).read_bytes() for n in PUBLISHED_FILES}
    p = subprocess.run([str(Path(sys.executable).with_name("cryptopred")), "publish", "--from", str(bad), "--to", str(dest)],
                       capture_output=True, text=True, timeout=120)
    assert p.returncode == 1 and "problem(s); not published" in p.stderr and "holdout.bitcoin.n" in p.stderr, p.stderr
    assert {n: (dest / n).read_bytes() for n in PUBLISHED_FILES} == before
    (bad / "technical_report.pdf").unlink()
    with pytest.raises(ReportError, match="technical_report.pdf missing .print it: install chromium"):
        publish_report(bad, dest)


def test_pipeline_cli_rejects_bad_arguments(capsys):
    for argv, msg in [(["--steps", "ingest,train"], "unknown steps train"), (["--budget", "0"], "--budget must be at least 1")]:
        with pytest.raises(SystemExit) as e: pipeline_cli(argv)
        assert e.value.code == 2 and msg in capsys.readouterr().err


def test_pipeline_cli_refuses_a_busy_port_before_running_anything(tmp_path, monkeypatch):
    from cryptopred.serve.deploy import PortInUse
    monkeypatch.setenv("CRYPTOPRED_HOME", str(tmp_path / "home"))
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0)); busy.listen()
        port = busy.getsockname()[1]
        with pytest.raises(PortInUse, match=f"cannot serve on 127.0.0.1:{port}"):
            pipeline_cli(["--serve", "--host", "127.0.0.1", "--port", str(port), "--no-pdf"])
    assert not (tmp_path / "home" / "runs").exists()  # no step ran


def test_committed_report_matches_the_metrics_it_cites():
    "The committed report, checked in any clone: its numbers against the committed metrics of the runs it cites."
    from cryptopred.report.cite import SOURCES_FILE
    out = REPO_ROOT / "reports"
    md, html = (out / "technical_report.md").read_text(), (out / "technical_report.html").read_text()
    sources = json.loads((out / SOURCES_FILE).read_text())
    cited = set(re.findall(r'data-run="([^"]+)"', html))
    assert len(cited) >= 8 and cited <= set(sources)
    assert check_report(md, sources, base_dir=out, cited=html, html_text=html) == []
    assert html.count('class="metric"') > 500 and "<span" not in md


def test_every_key_the_report_cites_is_declared_and_produced_by_the_small_run(small):
    """The metrics contract, end to end: every number the report cites names a key that its step's contract declares
    (`cryptopred.common.CONTRACTS`) and that the small real run wrote; every key a section needs (`SECTION_NEEDS`) is
    in that run's metrics.json; and no run wrote a key its contract does not declare."""
    _, runs, out = small
    page = (out / "technical_report.html").read_text()  # the HTML keeps each number's citation
    by_id = {r.run_id: r for r in runs.values()}
    cited = re.findall(r'<span class="metric" data-run="([^"]*)" data-key="([^"]*)" data-fmt="[^"]*"( data-agg=)?', page)
    assert len(cited) > 300
    problems = []
    from_runs = [(by_id[html.unescape(r)], html.unescape(k), bool(agg)) for r, k, agg in set(cited)
                 if html.unescape(r) in by_id]  # the others cite committed evidence (reports/*.json)
    assert {rec.step for rec, _, _ in from_runs} >= set(REPORT_STEPS)
    for rec, text, agg in sorted(from_runs, key=lambda x: (x[0].step, x[1])):
        for key in json.loads(text) if agg else [text]:  # an aggregate cites a JSON list of keys
            if rec.step not in CONTRACTS: problems.append(f"{rec.step}: no metrics contract"); continue
            if not CONTRACTS[rec.step].covers(key_parts(key)): problems.append(f"{rec.step}: {key} is not declared")
            try: lookup(rec.metrics, key_parts(key))
            except KeyError as e: problems.append(f"{rec.step}: {key} is not in metrics.json ({e})")
    for number, needs in SECTION_NEEDS.items():
        for step, keys, _ in needs:
            if step not in runs: continue  # demo_drift: not part of the pipeline (its run is committed evidence)
            problems += [f"section {number}: {step}.{k} missing" for k in keys if k not in runs[step].metrics]
    for step in REPORT_STEPS:
        problems += [f"{step}: {k} written but not declared" for k in CONTRACTS[step].undeclared(runs[step].metrics)]
    assert problems == [], "\n".join(problems)
