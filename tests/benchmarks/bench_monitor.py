"""Benchmarks of the monitoring module (not part of `make test`): drift false-alarm and detection rates with and
without the effective-sample-size correction, on simulated and real data; prediction-log append latency.
Writes reports/benchmarks/monitor.json."""
from __future__ import annotations

import json
import platform
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from cryptopred.monitor.core import example_features
from cryptopred.monitor.drift import data_drift
from cryptopred.monitor.predictions import PredictionLog, prediction_line
from cryptopred.monitor.profiles import profile_frame
from cryptopred.report.bench import write_benchmark_json

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from support.market import prediction  # noqa: E402

REPO = Path(__file__).resolve().parents[2]
OUT = REPO / "reports" / "benchmarks" / "monitor.json"
RESULTS: dict = {}


def _rates(reports: list, level: str = "DRIFT") -> dict:
    feats = reports[0].table.index
    return {f: round(float(np.mean([r.table.at[f, "status"] == level for r in reports])), 3) for f in sorted(feats)}


def _any(reports: list) -> float:
    return round(float(np.mean([r.status == "DRIFT" for r in reports])), 3)


def test_drift_rates_on_simulated_features(settings):
    "60 seeds: a same-regime 90-day window and a tripled-volatility 90-day window against 300 reference days."
    plain = settings.model_copy(update={"drift_effective_n": False})
    out = {"same": {"corrected": [], "plain": []}, "tripled": {"corrected": [], "plain": []}}
    for seed in range(60):
        f = example_features(480, seed=seed, change_at=390)
        ref, same, new = profile_frame(f.iloc[:300]), profile_frame(f.iloc[300:390]), profile_frame(f.iloc[390:])
        for name, cur in (("same", same), ("tripled", new)):
            out[name]["corrected"].append(data_drift(ref, cur, settings))
            out[name]["plain"].append(data_drift(ref, cur, plain))
    RESULTS["simulated"] = {
        "setup": "example_features(480, change_at=390): reference rows 0-299, same-regime window 300-389, "
                 "tripled-volatility window 390-479; 60 seeds; thresholds DRIFT p<0.05, POSSIBLE p<0.15",
        **{f"{w}_{m}_drift_rate": _rates(out[w][m]) for w in out for m in out[w]},
        **{f"{w}_{m}_any_feature_drift_rate": _any(out[w][m]) for w in out for m in out[w]},
    }


def test_drift_rates_on_real_data(settings, real_data_dir):
    "Every 90-day window since 2019 against the 365 days before it, for BTC, ETH and SOL daily."
    plain = settings.model_copy(update={"drift_effective_n": False})
    corrected, uncorrected, n = [], [], 0
    for coin in ("bitcoin", "ethereum", "solana"):
        px = pd.read_csv(real_data_dir / f"{coin}_daily.csv", parse_dates=["timestamp"]).set_index("timestamp")["price"]
        r = np.log(px).diff()
        f = pd.DataFrame({"ret": r, "abs_ret": r.abs(), "vol_7": r.rolling(7).std(), "vol_30": r.rolling(30).std(),
                          "mom_10": r.rolling(10).sum()}).dropna().loc["2018-01-01":]
        for start in range(365, len(f) - 90, 90):
            ref, cur = profile_frame(f.iloc[start - 365:start]), profile_frame(f.iloc[start:start + 90])
            corrected.append(data_drift(ref, cur, settings)); uncorrected.append(data_drift(ref, cur, plain)); n += 1
    RESULTS["real"] = {"setup": "BTC/ETH/SOL daily, 90-day windows vs the preceding 365 days, since 2019",
                       "windows": n, "corrected_drift_rate": _rates(corrected), "plain_drift_rate": _rates(uncorrected),
                       "corrected_any_feature_drift_rate": _any(corrected),
                       "plain_any_feature_drift_rate": _any(uncorrected)}


def test_prediction_log_append_latency(settings):
    "What `append` costs the serving thread, against writing each record synchronously."
    recs = [prediction(pd.Timestamp("2025-06-01", tz="UTC") + pd.Timedelta(seconds=i)) for i in range(20_000)]
    log = PredictionLog(settings)
    lat = np.empty(len(recs))
    t0 = time.perf_counter()
    for i, r in enumerate(recs):
        a = time.perf_counter(); log.append(r); lat[i] = time.perf_counter() - a
    t_append = time.perf_counter() - t0
    log.close()
    t_total = time.perf_counter() - t0
    sync_path = settings.home / "sync.jsonl"
    sync = np.empty(2000)
    for i, r in enumerate(recs[:2000]):
        a = time.perf_counter()
        _, line = prediction_line(r)
        with open(sync_path, "a") as fh: fh.write(line + "\n"); fh.flush()
        sync[i] = time.perf_counter() - a
    us = lambda x, q: round(float(np.percentile(x, q)) * 1e6, 1)
    RESULTS["prediction_log"] = {"records": len(recs), "append_p50_us": us(lat, 50), "append_p99_us": us(lat, 99),
                                 "append_max_ms": round(float(lat.max()) * 1e3, 2),
                                 "appends_per_s": round(len(recs) / t_append), "all_on_disk_s": round(t_total, 3),
                                 "sync_open_write_p50_us": us(sync, 50), "sync_open_write_p99_us": us(sync, 99)}


def _rows(details: dict) -> list[dict]:
    "The report's benchmark rows (schema: `cryptopred.report.validate_benchmark`); drift rates stay in `details`."
    p = details["prediction_log"]
    return [{"stage": "monitor", "workload": f"PredictionLog.append on the serving thread ({p['records']:,} records)",
             "time_median_s": p["append_p50_us"] / 1e6, "runs": p["records"], "peak_memory_mb": None,
             "goal": None, "met": None,
             "notes": f"p99 {p['append_p99_us']} µs, max {p['append_max_ms']} ms; all on disk after {p['all_on_disk_s']} s"},
            {"stage": "monitor", "workload": "for comparison: one synchronous open+write per record (2,000 records)",
             "time_median_s": p["sync_open_write_p50_us"] / 1e6, "runs": 2000, "peak_memory_mb": None,
             "goal": None, "met": None, "notes": f"p99 {p['sync_open_write_p99_us']} µs"}]


@pytest.fixture(scope="module", autouse=True)
def _write_results():
    yield
    if RESULTS:
        old = json.loads(OUT.read_text()).get("details", {}) if OUT.is_file() else {}
        details = {**old, **RESULTS}
        if "prediction_log" in details:
            write_benchmark_json("monitor", _rows(details), OUT.parent, details=details,
                                 machine=f"{platform.machine()}, {platform.python_version()}")


if __name__ == "__main__":  # `make bench` runs every bench_*.py as a script
    sys.exit(pytest.main([__file__, "-q", "-p", "no:cacheprovider", "-o", "addopts=", "--rootdir", str(REPO)]))
