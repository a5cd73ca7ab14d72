"""Synthetic inputs for the report tests: run folders written with the pipeline's own writers, executed run-books,
library notebooks carrying the headings the report quotes, benchmark files, a screenshot, a real-data table."""
from __future__ import annotations

import base64
import os
import shutil
from datetime import datetime, timedelta, timezone
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import nbformat  # noqa: E402
import pandas as pd  # noqa: E402
import pytest  # noqa: E402

from cryptopred.config import Settings  # noqa: E402
from cryptopred.pipeline import save_figure, write_json, write_metrics  # noqa: E402
from cryptopred.report import NBS_DIR, PROSE, find_browser, write_benchmark_json  # noqa: E402

T0 = datetime(2026, 3, 1, tzinfo=timezone.utc)

# What each run-book is expected to record (see SECTION_NEEDS in nbs/14_report.ipynb), with plausible values.
FULL_METRICS: dict[str, dict] = {
    "ingest": {
        "source": "simulated", "granularity": "daily", "coins": ["bitcoin", "ethereum"],
        "per_coin": {"bitcoin": {"rows_added": 365, "duplicates": 0, "quarantined": 1},
                     "ethereum": {"rows_added": 365, "duplicates": 2, "quarantined": 0}},
    },
    "profile": {"source": "simulated", "drift": {"bitcoin": {"drifted": 0, "features": 24},
                                                 "ethereum": {"drifted": 3, "features": 24}}},
    "train_forecaster": {
        "source": "simulated",
        "per_coin": {"bitcoin": {"mae": 812.44, "rw_mae": 830.1, "mae_ratio": 0.9787, "coverage_80": 0.781},
                     "ethereum": {"mae": 61.07, "rw_mae": 60.2, "mae_ratio": 1.0145, "coverage_80": 0.802}},
    },
    "train_classifier": {
        "source": "simulated",
        "cleaning": {"bitcoin": {"gaps_filled": 2, "gaps_left": 0, "outliers": 3},
                     "ethereum": {"gaps_filled": 0, "gaps_left": 1, "outliers": 5}},
        "features": ["ret_1", "ret_2", "rsi_14", "macd_hist", "vol_30"],
        "holdout": {"bitcoin": {"accuracy": {"value": 0.5123, "lo": 0.4702, "hi": 0.5549},
                                "roc_auc": {"value": 0.5391, "lo": 0.4911, "hi": 0.5872}, "brier_skill": None},
                    "ethereum": {"accuracy": {"value": 0.5287, "lo": 0.4861, "hi": 0.5712},
                                 "roc_auc": {"value": 0.5512, "lo": 0.5034, "hi": 0.5989}, "brier_skill": 0.0042}},
        "baselines": {"bitcoin": {"majority": 0.5041, "always_up": 0.5041, "momentum": 0.4877},
                      "ethereum": {"majority": 0.4959, "always_up": 0.4959, "momentum": 0.5123}},
        "params": {"bitcoin": {"model": "logistic_regression", "C": 0.1},
                   "ethereum": {"model": "hist_gradient_boosting", "learning_rate": 0.05}},
    },
    "monitor": {
        "source": "simulated",
        "drift": {"bitcoin": {"status": "NO_DRIFT", "drifted": 0}, "ethereum": {"status": "DRIFT", "drifted": 3}},
        "realized": {"bitcoin": {"accuracy": 0.5333, "baseline": 0.5, "n": 30}},
        "latency": {"p50_ms": 4.21, "p99_ms": 18.5, "error_rate": 0.0},
        "alerts": {"drift": 1, "latency": 0},
        "thresholds": {"drift_pvalue": 0.05, "possible_drift_pvalue": 0.15, "perf_window": 30,
                       "max_model_age_days": 7.0},
        "retrain": {"triggered": True, "reason": "DRIFT on ethereum"},
    },
}
FIGURES = {"train_classifier": ["feature_importance.png", "roc.png", "calibration.png", "backtest.png"],
           "train_forecaster": ["forecast.png"], "monitor": ["drift.png"]}


def require_tool(found, what: str) -> None:
    "Skip (with the reason) when an external tool is absent; fail instead where CI requires the browser tools."
    if found: return
    msg = f"{what} is not installed here"
    if os.environ.get("CRYPTOPRED_REQUIRE_BROWSER") == "1": pytest.fail(f"{msg}, and CRYPTOPRED_REQUIRE_BROWSER=1")
    pytest.skip(msg)


def require_browser() -> str:
    b = find_browser()
    require_tool(b, "Chromium (apt-get install chromium)")
    return b


def figure(folder: Path, name: str) -> Path:
    fig, ax = plt.subplots(figsize=(4, 2.5))
    ax.plot(range(20), [i % 7 for i in range(20)]); ax.set_title(name)
    return save_figure(folder, fig, name, dpi=60)


def executed_notebook(path: Path, step: str) -> Path:
    "An executed run-book: a tagged cell showing a table and a figure, an untagged one printing noise."
    nb = nbformat.v4.new_notebook()
    png = figure(path.parent / ".tmp", f"{step}-output")
    table = pd.DataFrame({"predicted up": [51, 40], "predicted down": [38, 53]}, index=["up", "down"])
    shown = nbformat.v4.new_code_cell("display(confusion); plot_confusion()", metadata={"tags": ["report"]})
    shown.outputs = [nbformat.v4.new_output("display_data", {"text/markdown": "**Confusion matrix** on the holdout:",
                                                              "text/plain": "<Markdown>"}),
                     nbformat.v4.new_output("display_data", {"text/html": table.to_html(), "text/plain": "df"}),
                     nbformat.v4.new_output("display_data", {"image/png": base64.b64encode(png.read_bytes()).decode()})]
    noise = nbformat.v4.new_code_cell("print('fitting')")
    noise.outputs = [nbformat.v4.new_output("stream", name="stdout", text="fitting model 1/12\n")]
    nb.cells = [nbformat.v4.new_markdown_cell(f"# {step}"), shown, noise]
    shutil.rmtree(path.parent / ".tmp")
    nbformat.write(nb, path)
    return path


def make_run(settings: Settings, step: str, metrics: dict | None, minutes: int = 0, status: str = "succeeded",
             error: str | None = None, figures: tuple[str, ...] = (), notebook: bool = False) -> Path:
    "A run folder as `run_step` leaves it."
    t = T0 + timedelta(minutes=minutes)
    d = settings.runs_dir / f"{t:%Y%m%dT%H%M%SZ}_{step}"
    write_json(d / "status.json", {"step": step, "status": status, "started_at": t.isoformat(),
                                   "finished_at": (t + timedelta(seconds=30)).isoformat(), "duration_s": 30.0,
                                   "parameters": {"run_dir": str(d)}, "error": error, "notebook": f"{step}.ipynb"})
    if metrics is not None: write_metrics(d, metrics)
    for name in figures: figure(d, name)
    if notebook: executed_notebook(d / f"{step}.ipynb", step)
    return d


def make_full_runs(settings: Settings) -> dict[str, Path]:
    "One successful run of every step the report reads (plus an older one and a newer failed one of train_classifier)."
    make_run(settings, "train_classifier", {**FULL_METRICS["train_classifier"], "features": ["old"]}, minutes=-60)
    runs = {step: make_run(settings, step, m, minutes=i, figures=tuple(FIGURES.get(step, ())),
                           notebook=step == "train_classifier")
            for i, (step, m) in enumerate(FULL_METRICS.items())}
    make_run(settings, "train_classifier", None, minutes=60, status="failed", error="ValueError: no rows")
    return runs


def make_library_notebooks(folder: Path) -> Path:
    "Library notebooks with every heading PROSE quotes (the real index and report notebooks are copied)."
    folder.mkdir(parents=True, exist_ok=True)
    headings: dict[str, list[str]] = {}
    for parts in PROSE.values():
        for nb, secs in parts:
            headings.setdefault(nb, []).extend(s for s in secs or [] if s not in headings[nb])
    for nb, secs in headings.items():
        if (NBS_DIR / f"{nb}.ipynb").is_file() and nb in ("index", "14_report"):
            shutil.copy(NBS_DIR / f"{nb}.ipynb", folder / f"{nb}.ipynb"); continue
        cells = [nbformat.v4.new_markdown_cell(f"# {nb}\n\n> What {nb} is for, in one line."),
                 nbformat.v4.new_code_cell(f"#| default_exp {nb}")]
        for s in secs:
            cells += [nbformat.v4.new_markdown_cell(f"## {s}\n\nWhy {s.lower()} is done this way."),
                      nbformat.v4.new_code_cell("x = 1")]
        nbk = nbformat.v4.new_notebook(); nbk.cells = cells
        nbformat.write(nbk, folder / f"{nb}.ipynb")
    return folder


def make_benchmarks(folder: Path) -> Path:
    write_benchmark_json("features", [{"stage": "features", "workload": "10 coins × 5 y hourly (simulated)",
                                       "time_median_s": 1.4213, "runs": 5, "peak_memory_mb": 612.3, "goal": "≤ 2 s",
                                       "met": True}], folder)
    write_benchmark_json("serve", [{"stage": "serve", "workload": "POST /api/v1/predict, 32 clients",
                                    "time_median_s": 0.0061, "runs": 2000, "peak_memory_mb": None,
                                    "goal": "p99 ≤ 25 ms", "met": False, "notes": "p99 31.2 ms, 0 errors"}], folder)
    return folder


def make_extras(folder: Path) -> tuple[Path, Path]:
    "A screenshot of the app and a real-data evaluation table."
    shot = figure(folder, "frontend")
    real = folder / "real_data_evaluation.md"
    real.write_text("# Real-data evaluation\n\n## Daily, 2022–26 holdout\n\n| coin | ROC-AUC |\n|---|---:|\n"
                    "| bitcoin | 0.53 |\n")
    return shot, real
