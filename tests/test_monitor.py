"""Profiles, data drift, serving health and the retraining decision, end to end on realistic frames."""
from __future__ import annotations

import json
import subprocess
import sys

import httpx
import numpy as np
import pandas as pd
import pytest
from prometheus_client import CollectorRegistry, Counter, Histogram, start_http_server
from support.market import prediction, random_walk_prices

from cryptopred.common import ConfigError, save_figure
from cryptopred.config import load_settings
from cryptopred.monitor.alerts import retrain_decision
from cryptopred.monitor.core import MonitorError, example_features
from cryptopred.monitor.drift import DriftReport, data_drift, drift_figure
from cryptopred.monitor.health import serving_health
from cryptopred.monitor.performance import concept_drift, resolve_predictions
from cryptopred.monitor.profiles import (
    list_profiles,
    merge_profiles,
    profile_frame,
    profile_metadata,
    read_profile,
    write_profile,
)

VOL_LIKE = ["abs_ret", "vol_7", "vol_30"]


def test_import_is_light():
    "Importing the monitor's modules loads neither whylogs nor scipy, matplotlib, httpx or prometheus_client."
    code = ("import sys, cryptopred.monitor.checks, cryptopred.monitor.alerts, cryptopred.monitor.health; "
            "heavy = [m for m in ('whylogs', 'scipy', 'matplotlib', 'httpx', "
            "'prometheus_client') if m in sys.modules]; print(heavy); sys.exit(1 if heavy else 0)")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stdout + r.stderr


def test_threshold_order_is_validated():
    with pytest.raises(ConfigError, match="CRYPTOPRED_POSSIBLE_DRIFT_PVALUE=.*must be above the DRIFT p-value"):
        load_settings(environ={"CRYPTOPRED_DRIFT_PVALUE": "0.1", "CRYPTOPRED_POSSIBLE_DRIFT_PVALUE": "0.1"},
                      env_file=None)


@pytest.mark.parametrize("seed", [0, 2, 3])
def test_volatility_regime_change_is_drift_and_same_regime_is_not(settings, seed):
    "Tripled volatility: DRIFT on the volatility-like columns; a window from the reference's regime: no drift there."
    f = example_features(480, seed=seed, change_at=390)
    ref = profile_frame(f.iloc[:300])
    same = data_drift(ref, f.iloc[300:390], settings)
    new = data_drift(ref, f.iloc[390:], settings)
    assert new.status == "DRIFT"
    assert set(VOL_LIKE) <= set(new.drifted())
    assert not set(VOL_LIKE) & set(same.drifted("POSSIBLE_DRIFT")), same.table
    assert (new.table.loc[VOL_LIKE, "std_current"] > 2 * new.table.loc[VOL_LIKE, "std_reference"]).all()


def test_effective_sample_size_is_what_keeps_rolling_features_quiet(settings):
    "Without the autocorrelation correction, whylogs' plain p-value flags the slow 30-day volatility in one regime."
    f = example_features(480, seed=0, change_at=390)
    ref = profile_frame(f.iloc[:300])
    plain = data_drift(ref, f.iloc[300:390], settings.model_copy(update={"drift_effective_n": False}))
    fixed = data_drift(ref, f.iloc[300:390], settings)
    assert plain.table.at["vol_30", "status"] == "DRIFT"
    assert fixed.table.at["vol_30", "status"] == "NO_DRIFT"
    assert fixed.table.at["vol_30", "tau"] > 10 and fixed.table.at["ret", "tau"] < 2
    # returns are (nearly) independent: the correction leaves them alone
    assert abs(fixed.table.at["ret", "pvalue"] - fixed.table.at["ret", "pvalue_iid"]) < 0.05


def test_stored_batch_profiles_merge_into_the_window_and_give_the_same_drift(settings):
    "Daily batch profiles written to disk, listed, read back and merged match the drift of the whole window."
    f = example_features(480, seed=3, change_at=390)
    ref_path = write_profile(profile_frame(f.iloc[:300]), settings, "reference", "bitcoin", "daily",
                             f.index[0], f.index[299])
    for lo in range(390, 480, 30):  # three 30-day batches
        write_profile(profile_frame(f.iloc[lo:lo + 30]), settings, "batch", "bitcoin", "daily",
                      f.index[lo], f.index[lo + 29])
    batches = list_profiles(settings, kind="batch", coin="bitcoin", granularity="daily")
    assert [b.window_start for b in batches] == [f.index[390], f.index[420], f.index[450]]
    parts = batches[0].path.relative_to(settings.home).parts
    assert parts[:5] == ("monitoring", "profiles", "batch", "bitcoin", "daily")
    window = merge_profiles(read_profile(b.path) for b in batches)
    assert profile_metadata(window)["rows"] == 90
    merged = data_drift(read_profile(ref_path), window, settings, meta={"coin": "bitcoin"})
    direct = data_drift(f.iloc[:300], f.iloc[390:], settings)
    pd.testing.assert_series_equal(merged.table["statistic"].sort_index(), direct.table["statistic"].sort_index(),
                                   atol=1e-9)
    assert merged.status == direct.status == "DRIFT"
    # merging takes the largest autocorrelation time of the parts; drift uses the reference's anyway
    assert merged.table.at["vol_30", "tau"] == pytest.approx(direct.table.at["vol_30", "tau"])


def test_report_and_picture_go_into_a_run(settings, tmp_path):
    f = example_features(480, seed=0, change_at=390)
    rep: DriftReport = data_drift(f.iloc[:300], f.iloc[390:], settings,
                                  meta={"coin": "bitcoin", "granularity": "daily"})
    d = json.loads(json.dumps(rep.to_dict(), allow_nan=False))
    assert d["status"] == "DRIFT" and set(VOL_LIKE) <= set(d["drifted"])
    assert {r["feature"] for r in d["features"]} == set(f.columns)
    png = save_figure(tmp_path / "run", drift_figure(rep), "drift_bitcoin")
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 20_000


def test_string_columns_and_missing_values_are_profiled(settings):
    "pandas' string dtype, NaN and inf (whylogs on numpy 2 needs the np.unicode_ shim for strings)."
    f = example_features(200, seed=1)
    cur = f.assign(regime=pd.array(["calm"] * 150 + ["storm"] * 50, dtype="string"))
    ref = f.assign(regime=pd.array(["calm"] * 200, dtype="string"))
    rep = data_drift(ref, cur.assign(ret=cur["ret"].where(cur.index.day != 1)), settings)
    assert rep.table.at["regime", "algorithm"] == "chi-square"
    assert rep.table.at["regime", "status"] == "DRIFT"
    assert rep.table.at["ret", "n_current"] == 200 - (cur.index.day == 1).sum()


def test_bad_inputs_are_named(settings):
    f = example_features(100)
    with pytest.raises(MonitorError, match="coin must be a lower-case name"):
        write_profile(profile_frame(f), settings, "batch", "Bit Coin", "daily", f.index[0], f.index[-1])
    with pytest.raises(MonitorError, match="window_start: 'yesterday' is not a timestamp"):
        write_profile(profile_frame(f), settings, "batch", "bitcoin", "daily", "yesterday", f.index[-1])
    bad = settings.monitoring_dir / "profiles" / "batch" / "bitcoin" / "daily" / "20250101T000000Z_20250102T000000Z.bin"
    bad.parent.mkdir(parents=True)
    bad.write_bytes(b"\x00garbage")
    with pytest.raises(MonitorError, match="is not a readable whylogs profile"):
        read_profile(bad)
    with pytest.raises(MonitorError, match="needs a pandas DataFrame"):
        profile_frame([1, 2, 3])


@pytest.mark.realdata
def test_real_bitcoin_rolling_windows_alarm_rarely_with_the_correction(settings, real_data_dir):
    """Real BTC daily data, 90-day windows against the 365 days before each: the plain KS p-value calls the slow
    rolling volatility DRIFT almost every time; counted by effective sample size it alarms rarely."""
    px = pd.read_csv(real_data_dir / "bitcoin_daily.csv", parse_dates=["timestamp"]).set_index("timestamp")["price"]
    r = np.log(px).diff()
    f = pd.DataFrame({"ret": r, "vol_7": r.rolling(7).std(), "vol_30": r.rolling(30).std()}).dropna().loc["2019-01-01":]
    plain = settings.model_copy(update={"drift_effective_n": False})
    fixed_hits, plain_hits, n = 0, 0, 0
    for start in range(365, len(f) - 90, 90):
        ref, cur = profile_frame(f.iloc[start - 365:start]), profile_frame(f.iloc[start:start + 90])
        fixed_hits += data_drift(ref, cur, settings).table.at["vol_30", "status"] == "DRIFT"
        plain_hits += data_drift(ref, cur, plain).table.at["vol_30", "status"] == "DRIFT"
        n += 1
    assert n >= 20
    assert plain_hits / n > 0.8
    assert fixed_hits / n < 0.2


def _serve_metrics(registry):
    server, thread = start_http_server(0, addr="127.0.0.1", registry=registry)
    return server, thread, f"http://127.0.0.1:{server.server_address[1]}/metrics"


def test_serving_health_from_a_live_metrics_endpoint(settings):
    "Scrape a real prometheus_client endpoint twice; the second report covers only the window between the scrapes."
    reg = CollectorRegistry()
    req = Counter("cryptopred_http_requests", "requests", ["route", "method", "status"], registry=reg)
    dur = Histogram("cryptopred_http_request_duration_seconds", "latency", ["route", "method"], registry=reg,
                    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0))
    server, thread, url = _serve_metrics(reg)
    try:
        for _ in range(100):
            req.labels("/predict", "POST", "200").inc(); dur.labels("/predict", "POST").observe(0.02)
        first = httpx.get(url, timeout=5).text
        h1 = serving_health(first, settings)
        assert h1.ok and h1.table.at["/predict", "requests"] == 100
        assert 10 <= h1.table.at["/predict", "p50_ms"] <= 25 and h1.table.at["/predict", "p99_ms"] <= 25
        for i in range(50):  # then the app degrades: slow, and 1 in 10 requests fails
            req.labels("/predict", "POST", "503" if i % 10 == 0 else "200").inc()
            dur.labels("/predict", "POST").observe(0.4)
        second = httpx.get(url, timeout=5).text
    finally:
        server.shutdown(); server.server_close(); thread.join(5)
    h2 = serving_health(second, settings, previous=first)
    row = h2.table.loc["/predict"]
    assert (row["requests"], row["errors_5xx"]) == (50, 5)
    assert row["error_rate"] == pytest.approx(0.1)
    assert 250 < row["p50_ms"] <= 500
    assert not h2.ok and len(h2.breaches) == 2
    whole = serving_health(second, settings)  # since start: the fast requests dilute the latency
    assert whole.table.at["/predict", "requests"] == 150 and whole.table.at["/predict", "p50_ms"] < 250


def test_retrain_decision_combines_drift_performance_and_age(settings):
    f = example_features(480, seed=0, change_at=390)
    drift = data_drift(f.iloc[:300], f.iloc[390:], settings)
    calm = data_drift(f.iloc[:300], f.iloc[300:390], settings)
    prices = random_walk_prices(80, seed=5)
    moves = np.diff(np.log(prices["price"].to_numpy())) > 0
    # a model that is always wrong, with confidence
    preds = pd.DataFrame([prediction(prices["timestamp"][i] + pd.Timedelta(minutes=1), prob_up=0.2 if moves[i] else 0.8)
                          for i in range(79)])
    perf = concept_drift(resolve_predictions(preds, prices), settings)
    assert perf.drift
    d = retrain_decision(drift, perf, "2025-01-01T00:00:00Z", settings, now="2025-01-20T00:00:00Z")
    assert d.retrain and len(d.reasons) == 3
    assert d.reasons[0].startswith("data drift on ") and "realized performance below baseline" in d.reasons[1]
    assert d.evidence["model_age_days"] == pytest.approx(19.0)
    quiet = retrain_decision(calm, None, "2025-01-01T00:00:00Z", settings, now="2025-01-03T00:00:00Z")
    assert not quiet.retrain and quiet.reasons == []
    only_mom = settings.model_copy(update={"drift_features": ("mom_10",)})
    assert drift.table.at["mom_10", "status"] != "DRIFT"
    assert not retrain_decision(drift, None, None, only_mom).retrain  # drift elsewhere does not matter
    json.dumps(d.to_dict(), allow_nan=False)


def test_prometheus_rules_pass_promtool(settings, tmp_path):
    "The generated alerting rules are valid for Prometheus (promtool is installed by CI; skipped where it is not)."
    import shutil

    from cryptopred.monitor.health import prometheus_rules
    promtool = shutil.which("promtool")
    if promtool is None: pytest.skip("promtool is not installed (CI installs the prometheus package)")
    path = tmp_path / "cryptopred_rules.yml"
    path.write_text(prometheus_rules(settings))
    r = subprocess.run([promtool, "check", "rules", str(path)], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "SUCCESS: 2 rules found" in r.stdout + r.stderr
