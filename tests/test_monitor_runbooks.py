"""The profile and monitor run-books executed by papermill, as `make profile` / `make monitor` run them, on a simulated
store whose regime changes 60 days before its end."""
from __future__ import annotations

from support.fakes import SECRET_PATH, metrics_endpoint, webhook_receiver
from support.homes import T_END, drift_settings, drifted_store, register_champions

from cryptopred.monitor.alerts import read_alerts
from cryptopred.monitor.profiles import list_profiles
from cryptopred.report.build import build_report
from cryptopred.report.context import SECTION_NEEDS
from cryptopred.runs import run_step
from cryptopred.schedule import settings_env


def _flat(d: dict) -> bool: return all(not isinstance(v, (dict, list)) for v in d.values())


def test_profile_then_monitor_find_the_regime_change_and_say_so(tmp_path):
    with webhook_receiver() as hook, metrics_endpoint() as (app, req, dur):
        s = drift_settings(tmp_path / "home", alert_webhook=hook.url, app_url=app)
        drifted_store(s)
        champs = register_champions(s)
        for _ in range(40):  # the app served 40 slow requests, 4 of them failing
            req.labels("/api/v1/predict", "POST", "500" if _ % 10 == 0 else "200").inc()
            dur.labels("/api/v1/predict", "POST").observe(0.4)
        env = settings_env(s)
        prof = run_step("profile", {"coins": ["bitcoin", "ethereum", "solana"]}, settings=s, env=env)
        assert prof.ok, prof.error
        mon = run_step("monitor", {"coins": "bitcoin,ethereum,solana"}, settings=s, env=env)
        assert mon.ok, mon.error

    # profile: one batch for the history before the window, then one per day; drift against each champion
    p = prof.metrics
    assert set(needs := SECTION_NEEDS["3.6"][0][1]) <= set(p), needs
    assert p["batches"]["bitcoin"]["batches"] == 1 + s.drift_window_days and p["batches"]["bitcoin"]["last"] == T_END.isoformat()
    assert len(list_profiles(s, "batch", "ethereum", "daily")) == 1 + s.drift_window_days
    for coin in ("bitcoin", "ethereum"):
        row = p["drift"][coin]
        assert (row["status"], row["reference"], row["rows"]) == ("DRIFT", champs[coin], 30) and _flat(row)
        assert (prof.path / f"drift_{coin}.png").stat().st_size > 20_000
    assert p["drift"]["solana"]["status"] == "NO_REFERENCE" and "no daily data for solana" in p["drift"]["solana"]["note"]
    assert not (prof.path / "drift_solana.png").exists()

    # monitor: the report's keys, per-coin tables of flat values, flat tables
    m = mon.metrics
    keys = set(SECTION_NEEDS["3.6"][1][1]) | set(SECTION_NEEDS["4"][0][1])
    assert keys == {"drift", "realized", "latency", "alerts", "thresholds", "retrain", "predictions"} and keys <= set(m)
    assert all(_flat(m[k][c]) for k in ("drift", "realized") for c in m[k])
    assert all(_flat(m[k]) for k in keys - {"drift", "realized", "predictions"}) and isinstance(m["predictions"], int)
    assert {c: m["drift"][c]["status"] for c in m["drift"]} == {"bitcoin": "DRIFT", "ethereum": "DRIFT", "solana": "NO_REFERENCE"}
    assert (mon.path / "drift_ethereum.png").is_file()
    assert m["latency"]["status"] == "breach" and m["latency"]["requests"] == 40 and m["latency"]["errors_5xx"] == 4
    assert m["latency"]["p99_ms"] > s.latency_p99_ms
    assert m["realized"]["bitcoin"] == {"version": champs["bitcoin"], "n": 0, "accuracy": None, "baseline": None, "brier": None,
                                        "brier_skill": None, "pending": 0, "judged": False, "below_baseline": False}
    assert m["retrain"]["triggered"] is True and m["retrain"]["coins"] == "bitcoin, ethereum"
    assert m["retrain_detail"]["ethereum"]["reasons"][0].startswith("data drift on ")
    assert m["alerts"] == {"data_drift": 2, "concept_drift": 0, "serving_health": 1, "app_unreachable": 0,
                           "retrain_recommended": 2}
    assert m["thresholds"]["drift_window_days"] == 30

    # every alert is recorded, tied to the run, and was posted to the webhook (whose URL appears nowhere)
    alerts = read_alerts(s)
    assert [a.kind for a in alerts] == ["data_drift", "retrain_recommended"] * 2 + ["serving_health"]
    assert all(a.run == str(mon.path) and a.delivery["status"] == "sent" for a in alerts)
    assert [b["text"].split(":")[0] for b in hook.posts][:2] == ["[WARNING] cryptopred data_drift bitcoin",
                                                                 "[INFO] cryptopred retrain_recommended bitcoin"]
    assert len(hook.posts) == 5
    for f in [*mon.path.iterdir(), s.monitoring_dir / "alerts.jsonl"]:
        if f.is_file(): assert SECRET_PATH not in f.read_bytes().decode("utf-8", "replace"), f.name

    # the report reads both runs without a notice in its monitoring sections
    res = build_report(s, out_dir=tmp_path / "report", pdf=False, bench_dir=tmp_path / "no-bench", screenshot=False)
    mine = [q for q in res.problems if q.startswith(("section '3.6", "section '4."))]
    assert mine == [], mine
    md = res.markdown.read_text()
    assert "data drift of the last window against each champion's training features:" in md and "Its retraining decision:" in md

