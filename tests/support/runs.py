"""Inputs for the report tests: a small simulated run of the real run-books (`run_pipeline`, as `make pipeline` runs
it, on two coins with a tiny search), copies of its run folders, and run folders as `run_step` leaves a failed one."""
from __future__ import annotations

import json
import os
import shutil
from datetime import datetime, timedelta
from pathlib import Path

import pytest

from cryptopred.common import write_json
from cryptopred.config import Settings, load_settings
from cryptopred.pipeline import PipelineResult, run_pipeline
from cryptopred.report.render import find_browser
from cryptopred.runs import RunRecord

# The small pipeline: the simulated market, two coins, 240 days, one candidate per family, three walk-forward folds,
# one worker; two shuffles per feature for the importance (the report draws it, its precision is beside the point).
SMALL_ENV = {"CRYPTOPRED_SOURCE": "simulated", "CRYPTOPRED_COINS": "bitcoin,ethereum", "CRYPTOPRED_HISTORY_DAYS": "240",
             "CRYPTOPRED_SEARCH_BUDGET": "1", "CRYPTOPRED_CV_FOLDS": "3", "CRYPTOPRED_N_JOBS": "1"}
SMALL_PARAMS = {"train_classifier": {"n_boot": 200, "families": ["logistic", "random_forest"], "importance_repeats": 2}}


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


def small_pipeline(home: Path, out_dir: Path, pdf: bool = True) -> tuple[Settings, PipelineResult]:
    "Run every step of `make pipeline` on the small simulated market into `home`; the report goes to `out_dir`."
    with pytest.MonkeyPatch.context() as mp:
        for k, v in {**SMALL_ENV, "CRYPTOPRED_HOME": str(home)}.items(): mp.setenv(k, v)
        s = load_settings(env_file=None)
        res = run_pipeline(s, params={**SMALL_PARAMS, "report": {"out_dir": str(out_dir), "pdf": pdf}}, echo=None)
    return s, res


def copy_run(rec: RunRecord, settings: Settings, minutes: int = 0, **metrics_update) -> Path:
    "A copy of a run folder in `settings`' home, started `minutes` later (earlier when negative), metrics updated."
    started = datetime.fromisoformat(rec.started_at) + timedelta(minutes=minutes)
    dst = settings.runs_dir / f"{started:%Y%m%dT%H%M%SZ}_{rec.step}"
    shutil.copytree(rec.path, dst)
    status = json.loads((dst / "status.json").read_text())
    write_json(dst / "status.json", {**status, "started_at": started.isoformat()})
    if metrics_update:
        m = json.loads((dst / "metrics.json").read_text())
        write_json(dst / "metrics.json", {**m, **metrics_update})
    return dst


def failed_run(settings: Settings, step: str, error: str, started: datetime) -> Path:
    "A run folder as `run_step` leaves a failed run."
    d = settings.runs_dir / f"{started:%Y%m%dT%H%M%SZ}_{step}"
    write_json(d / "status.json", {"step": step, "status": "failed", "started_at": started.isoformat(),
                                   "finished_at": (started + timedelta(seconds=30)).isoformat(), "duration_s": 30.0,
                                   "parameters": {"run_dir": str(d)}, "error": error, "notebook": f"{step}.ipynb"})
    return d
