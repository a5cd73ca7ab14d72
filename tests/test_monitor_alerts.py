"""Alerts against real webhook receivers on 127.0.0.1: delivered, retried, timed out, refused; never leaking the URL."""
from __future__ import annotations

import json
import logging
import threading

import pytest
from support.fakes import SECRET_PATH, webhook_receiver

from cryptopred.monitor.alerts import raise_alert, read_alerts
from cryptopred.monitor.core import MonitorError

SECRET = SECRET_PATH.rsplit("/", 1)[-1]


def _with_hook(settings, url, **kw):
    from pydantic import SecretStr
    return settings.model_copy(update={"alert_webhook": SecretStr(url), "webhook_backoff": 0.0, **kw})


def _no_secret_anywhere(settings, caplog):
    text = (settings.monitoring_dir / "alerts.jsonl").read_text()
    assert SECRET not in text and "127.0.0.1" not in text
    assert SECRET not in caplog.text


def test_delivered_to_a_slack_compatible_receiver(settings, caplog, tmp_path):
    caplog.set_level(logging.DEBUG)
    with webhook_receiver("ok") as hook:
        s = _with_hook(settings, hook.url)
        a = raise_alert(s, "warning", "data_drift", "bitcoin", "DRIFT on vol_7",
                        {"drifted": ["vol_7"], "pvalue": 1e-9}, run=tmp_path / "runs" / "20250601T000000Z_monitor")
    assert a.delivery == {"status": "sent", "attempts": 1}
    assert hook.paths == [SECRET_PATH]
    post = hook.posts[0]
    assert post["text"] == "[WARNING] cryptopred data_drift bitcoin: DRIFT on vol_7"
    assert post["blocks"][0]["type"] == "section" and "vol_7" in post["blocks"][1]["text"]["text"]
    [rec] = read_alerts(s)
    assert (rec.kind, rec.coin, rec.severity, rec.delivery["status"]) == ("data_drift", "bitcoin", "warning", "sent")
    assert rec.run.endswith("20250601T000000Z_monitor") and rec.evidence == {"drifted": ["vol_7"], "pvalue": 1e-9}
    _no_secret_anywhere(s, caplog)


def test_a_500_is_retried_until_it_succeeds(settings, caplog):
    with webhook_receiver("flaky", fail_first=2) as hook:
        s = _with_hook(settings, hook.url, webhook_retries=3)
        a = raise_alert(s, "critical", "run_failed", None, "ingest failed", {"error": "boom"})
    assert a.delivery == {"status": "sent", "attempts": 3}
    assert len(hook.posts) == 3 and hook.posts[0] == hook.posts[-1]
    _no_secret_anywhere(s, caplog)


def test_a_hanging_receiver_times_out_and_the_pipeline_goes_on(settings, caplog):
    caplog.set_level(logging.INFO)
    with webhook_receiver("hang") as hook:
        s = _with_hook(settings, hook.url, webhook_timeout=0.3, webhook_retries=1)
        a = raise_alert(s, "warning", "concept_drift", "ethereum", "accuracy below baseline", {"accuracy": 0.4})
        assert len(hook.posts) == 2  # one try and one retry, both abandoned at the timeout
    assert a.delivery == {"status": "failed", "attempts": 2, "error": "ReadTimeout"}
    [rec] = read_alerts(s)
    assert rec.delivery["status"] == "failed" and rec.message == "accuracy below baseline"
    assert "webhook: failed" in caplog.text
    _no_secret_anywhere(s, caplog)


def test_a_client_error_is_not_retried_and_a_dead_port_is_reported(settings, caplog):
    with webhook_receiver("gone") as hook:
        s = _with_hook(settings, hook.url, webhook_retries=3)
        a = raise_alert(s, "info", "retrain", "solana", "retraining", {})
    assert a.delivery == {"status": "failed", "attempts": 1, "error": "HTTP 404"} and len(hook.posts) == 1
    dead = _with_hook(settings, hook.url, webhook_retries=1)  # the receiver is closed now: connection refused
    b = raise_alert(dead, "info", "retrain", "solana", "retraining", {})
    assert b.delivery == {"status": "failed", "attempts": 2, "error": "ConnectError"}
    assert [x.delivery["status"] for x in read_alerts(settings)] == ["failed", "failed"]
    _no_secret_anywhere(settings, caplog)


def test_alerts_from_many_threads_are_whole_lines(settings):
    def work(k):
        for i in range(25): raise_alert(settings, "info", "serving_health", None, f"t{k} #{i}", {"k": k, "i": i})
    threads = [threading.Thread(target=work, args=(k,)) for k in range(6)]
    for t in threads: t.start()
    for t in threads: t.join(60)
    lines = (settings.monitoring_dir / "alerts.jsonl").read_text().splitlines()
    assert len(lines) == 150 and all(json.loads(x)["kind"] == "serving_health" for x in lines)
    alerts = read_alerts(settings)
    assert len({a.id for a in alerts}) == 150
    for k in range(6): assert [a.evidence["i"] for a in alerts if a.evidence["k"] == k] == list(range(25))


def test_alert_run_defaults_to_the_current_run(settings, monkeypatch, tmp_path):
    monkeypatch.setenv("CRYPTOPRED_RUN_DIR", str(tmp_path / "runs" / "20250601T000000Z_monitor"))
    a = raise_alert(settings, "info", "data_drift", "bitcoin", "ok", None)
    assert a.run.endswith("20250601T000000Z_monitor") and a.delivery == {"status": "off"}
    with pytest.raises(MonitorError, match="severity must be one of info, warning, critical"):
        raise_alert(settings, "fatal", "data_drift", None, "x")
