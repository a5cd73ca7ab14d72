"""The technical report end to end: a small simulated run of the real run-books (`make pipeline` on two coins), the
report built from it (real notebooks' prose, real Markdown -> HTML, a real Chromium PDF), the checks that keep it
honest, Graphviz, the README, the benchmark table."""
from __future__ import annotations

import html
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
from support.runs import SMALL_ENV, copy_run, failed_run, require_browser, small_pipeline

from cryptopred.common import CONTRACTS, REPO_ROOT, portable
from cryptopred.config import load_settings
from cryptopred.pipeline import PIPELINE_STEPS
from cryptopred.report.build import build_report
from cryptopred.report.check import NOTICE, PLACEHOLDERS, check_report, machine_paths, machine_roots, markup_problems
from cryptopred.report.cite import REPORT_STEPS, ReportError, collect_runs, key_parts, lookup
from cryptopred.report.context import SECTION_NEEDS
from cryptopred.report.prose import empty_sections
from cryptopred.report.render import (
    pdf_page_count,
)
from cryptopred.report.sections import SECTIONS

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
    assert {st: kept[runs[st].run_id] for st in REPORT_STEPS} == {st: portable(runs[st].metrics, s.home) for st in REPORT_STEPS}
    assert machine_paths((out / SOURCES_FILE).read_text(), machine_roots(s.home)) == []  # it is published: no path of here
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
