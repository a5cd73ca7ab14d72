"""The report's parts that need no pipeline run: formulas as text, figures at their printed size, the repository link,
Chromium and Graphviz present or not, the README from the index notebook, the benchmark table, the pipeline command's
argument checks, and the committed report against the metrics it cites. (`test_report.py` holds the tests that read
the small pipeline run; kept apart so the two files run on different workers.)"""
from __future__ import annotations

import io
import json
import re
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from support.runs import require_tool

from cryptopred.commands import pipeline_cli
from cryptopred.common import PRINT_FONT_PT, PRINT_WIDTH_IN, REPO_ROOT
from cryptopred.config import KNOWN_ENV, Settings, env_var
from cryptopred.report.check import check_report, markup_problems
from cryptopred.report.cite import ReportError
from cryptopred.report.prose import readme_text, unicode_math
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
from cryptopred.report.sections import repository_url

BENCH = Path(__file__).resolve().parent / "benchmarks"


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
    assert 15 <= pdf_page_count(out / "technical_report.pdf") <= 25  # the printed report's length (issue 12)
