"""The real-data evaluation run-book executed by papermill, as `make evaluate-real` runs it, on two real coins with a
tiny budget and a late holdout; and its clear failure where the real data is absent."""
from __future__ import annotations

import pytest

from cryptopred.runs import run_step

SMALL = {"coins": ["bitcoin", "ethereum"], "holdout_start": "2025-10-01", "budget": 1, "n_boot": 100, "n_jobs": 1,
         "protocol": {"train_start": "2023-06-01"}}


@pytest.mark.realdata
def test_evaluate_real_runbook_records_the_table(real_data_dir, settings, tmp_path):
    report = tmp_path / "reports" / "real_data_evaluation.md"
    rec = run_step("evaluate_real", {**SMALL, "data_dir": str(real_data_dir), "report": str(report)}, settings=settings)
    assert rec.ok, rec.error
    m = rec.metrics
    assert list(m["holdout"]) == ["bitcoin", "ethereum"]
    for h in m["holdout"].values():
        assert h["n_holdout"] == 140  # 2025-10-01 .. 2026-02-17, the last day with a known next day
        auc = h["roc_auc"]
        assert auc["lo"] <= auc["value"] <= auc["hi"] and 0.3 < auc["value"] < 0.7
        assert h["accuracy"]["value"] < 0.6  # anything higher on real daily data is a leak
        assert h["model"].startswith("pooled ") or h["model"] in ("reversal rule", "momentum rule")  # a rule competes
        assert 0 <= h["delong_p"] <= 1
    assert set(m["baselines"]["bitcoin"]) == {"majority", "always_up", "momentum"}
    assert m["summary"]["coins"] == 2 and m["summary"]["leakage_alarms"] == 0
    assert (m["protocol"]["pooled"], m["protocol"]["budget"], m["protocol"]["train_start"]) == (True, 1, "2023-06-01")
    assert {"mean_auc_minus_reversal", "paired_t_p", "wilcoxon_p", "goal_met"} <= set(m["summary"])
    text = report.read_text()
    assert text.splitlines()[2].startswith("**Goal ") and "classifier_v3: not logged" in text  # a temporary report: no log
    assert text.startswith("# Real-data evaluation") and "| bitcoin |" in text and "| ethereum |" in text
    assert rec.path.name in text and f"Mean holdout ROC-AUC **{m['summary']['mean_roc_auc']:.3f}**" in text
    for f in ("auc_by_coin", "bitcoin_roc", "ethereum_backtest"):
        assert (rec.path / f"{f}.png").stat().st_size > 1000


def test_evaluate_real_runbook_fails_clearly_without_the_data(settings, tmp_path):
    report = tmp_path / "real_data_evaluation.md"
    rec = run_step("evaluate_real", {**SMALL, "data_dir": str(tmp_path / "absent"), "report": str(report)},
                   settings=settings)
    assert rec.status == "failed"
    assert rec.error.startswith("RealDataError: real-data folder") and "does not exist" in rec.error
    assert not report.exists() and rec.metrics is None
