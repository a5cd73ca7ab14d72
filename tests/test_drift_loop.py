"""The whole loop, scaled down from `make demo-drift`: the simulated market's regime change -> drift detected -> alert
written and posted to a webhook on 127.0.0.1 -> retrain by the real training run-books -> the registry's promotion
rule -> the app under uvicorn on a loopback port serves the registry's champion without a restart; nothing is lost
from the store."""
from __future__ import annotations

import json

import pytest
from support.fakes import SECRET_PATH, webhook_receiver

from cryptopred.config import load_settings
from cryptopred.demo import demo_checks, demo_drift
from cryptopred.monitor.predictions import read_predictions
from cryptopred.registry import ModelRegistry
from cryptopred.schedule import read_schedule_log

pytestmark = pytest.mark.slow


def test_drift_is_detected_alerted_retrained_promoted_and_served(tmp_path):
    lines = []
    with webhook_receiver() as hook:
        s = load_settings(environ={}, env_file=None, home=tmp_path / "home", coins=("bitcoin",), search_budget=1,
                          n_jobs=1, perf_window=10, alert_webhook=hook.url)
        res = demo_drift(s, days=300, drift_days=45, live_days=12, say=lines.append,
                         train_parameters={"train_classifier": {"n_boot": 50, "families": ["logistic"]}})
    assert demo_checks(res) == [], demo_checks(res)

    # every step happened, in this order
    first = {}
    for e in res.timeline: first.setdefault(e["step"], e["time"])
    order = ["history", "first champions", "app serving", "replay", "ingest", "profile", "monitor", "alert data_drift",
             "retrain classifier bitcoin", "retrain forecaster bitcoin", "app serving after the retrain", "store checked"]
    assert [k for k in order if k in first] == order, sorted(first, key=first.get)
    assert [first[k] for k in order] == sorted(first[k] for k in order), [(k, first[k]) for k in order]
    assert [x["status"] for x in res.job["steps"]] == ["succeeded"] * 3

    # drift detected against the first champion's training data, with the served predictions scored
    assert res.drift["bitcoin"]["status"] == "DRIFT"
    assert res.drift["bitcoin"]["reference"] == res.served_before["bitcoin"]["classifier"]
    assert res.realized["bitcoin"]["n"] == 10 and res.realized["bitcoin"]["judged"] is True
    assert len(read_predictions(s)) == 12 + 1 and read_predictions(s)["coin"].eq("bitcoin").all()

    # the alert is durable, tied to the monitor run, and was posted to the webhook (whose URL is written nowhere)
    drift_alerts = [a for a in res.alerts if a["kind"] == "data_drift"]
    assert len(drift_alerts) == 1 and drift_alerts[0]["delivery"]["status"] == "sent"
    assert drift_alerts[0]["run"].endswith("_monitor")
    assert any(p["text"].startswith("[WARNING] cryptopred data_drift bitcoin: DRIFT on ") for p in hook.posts)
    assert SECRET_PATH not in json.dumps(res.to_dict()) + (s.monitoring_dir / "alerts.jsonl").read_text()

    # the retrain ran because of the monitor's decision, and the registry's rule decided each champion
    rt = res.job["retrain"]
    assert rt["reason"].startswith("monitor run ") and "data drift on" in rt["reason"] and rt["ok"]
    reg = ModelRegistry(settings=s)
    for kind in ("classifier", "forecaster"):
        o = rt["outcome"][kind]["bitcoin"]
        assert o["decision"] and o["after"] == reg.champion_version(kind, "bitcoin", "daily") == res.champions[kind]["bitcoin"]
        events = [e for e in reg.audit_log(kind, "bitcoin", "daily") if e["action"] in ("promote", "reject", "force-promote")]
        assert events[-1]["explanation"] == o["decision"]
        # the running app, never restarted, serves the registry's champion: the new one when it was promoted
        assert res.served_after["bitcoin"][kind] == o["after"]
        assert (res.served_after["bitcoin"][kind] != res.served_before["bitcoin"][kind]) == o["promoted"]
    assert res.served_after["bitcoin"]["as_of"].startswith(res.store["bitcoin"]["last"][:10])

    # nothing lost from the store: every day from the first to today, each equal to the market's
    st = res.store["bitcoin"]
    assert (st["missing"], st["differ"], st["rows"]) == (0, 0, st["expected"]) and st["expected"] == 300 + 45 + 1
    assert read_schedule_log(s)[-1]["job"] == "ingest_daily"
    assert json.loads((s.home / "demo-drift.json").read_text())["regime_change"] == res.regime_change
    assert any(line.startswith("- alert data_drift: bitcoin DRIFT on ") for line in lines)
