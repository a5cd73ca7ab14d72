"""Benchmark: Prophet fit + predict per coin on the real data (default parameters) -> reports/benchmarks/forecast.json.

Run `python tests/benchmarks/bench_forecast.py` (or through pytest, as `make bench` does). Timings only; no assertions.
"""
from __future__ import annotations

import os
import platform
import statistics
import time
from pathlib import Path

from cryptopred.forecast import (
    ALL_DAILY_COINS,
    ProphetForecaster,
    log_price_series,
    plain_prophet_forecast,
    read_real,
    real_data_dir,
)
from cryptopred.pipeline import write_json

REPO = Path(__file__).resolve().parents[2]
OUT = REPO / "reports" / "benchmarks" / "forecast.json"
REPEATS = 5


def _time(fn, repeats=REPEATS) -> dict:
    secs = []
    for _ in range(repeats):
        t0 = time.perf_counter(); fn(); secs.append(time.perf_counter() - t0)
    return {"median_s": statistics.median(secs), "min_s": min(secs), "max_s": max(secs), "repeats": repeats}


def run_benchmark(out: Path = OUT) -> dict:
    data = real_data_dir()
    coins = [(c, "daily", 30) for c in ALL_DAILY_COINS] + [("bitcoin", "hourly", 24), ("ethereum", "hourly", 24)]
    rows = []
    for coin, gran, steps in coins:
        frame = read_real(coin, gran, data)
        fit = _time(lambda frame=frame, gran=gran: ProphetForecaster().fit(frame, gran))
        f = ProphetForecaster().fit(frame, gran)
        pred = _time(lambda f=f, steps=steps: f.forecast(steps))
        both = _time(lambda frame=frame, gran=gran, steps=steps: ProphetForecaster().fit(frame, gran).forecast(steps))
        rows.append({"coin": coin, "granularity": gran, "steps": steps, "rows": len(frame),
                     "fit_window_returns": f.fit_info["n_returns"], "fit": fit, "forecast": pred,
                     "fit_and_forecast": both})
    btc = log_price_series(read_real("bitcoin", "daily", data))
    plain = _time(lambda: plain_prophet_forecast(btc, 30), repeats=2)
    result = {"benchmark": "forecast", "what": "ProphetForecaster fit + forecast per coin (default params), real data",
              "machine": {"cpus": os.cpu_count(), "python": platform.python_version(), "platform": platform.platform()},
              "per_coin": rows, "plain_prophet_bitcoin_daily_full_history": plain,
              "total_fit_and_forecast_median_s": sum(r["fit_and_forecast"]["median_s"] for r in rows)}
    write_json(out, result)
    return result


def test_bench_forecast():
    r = run_benchmark()
    assert len(r["per_coin"]) == 12


if __name__ == "__main__":
    res = run_benchmark()
    for r in res["per_coin"]:
        print(f"{r['coin']:<12} {r['granularity']:<7} fit+forecast {r['fit_and_forecast']['median_s']:.3f} s")
    print(f"wrote {OUT}")
