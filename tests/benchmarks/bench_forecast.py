"""Benchmark: Prophet fit + predict per coin on the real data (default parameters) -> reports/benchmarks/forecast.json.

Run `python tests/benchmarks/bench_forecast.py` (or through pytest, as `make bench` does). Timings only; no assertions.
"""
from __future__ import annotations

import os
import platform
import statistics
import time
from pathlib import Path

from cryptopred.data.csv import read_real, real_data_dir
from cryptopred.forecast import ProphetForecaster, log_price_series, plain_prophet_forecast
from cryptopred.report.bench import write_benchmark_json
from cryptopred.studies.forecaster import ALL_DAILY_COINS

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
              "per_coin": rows, "plain_prophet_bitcoin_daily_full_history": plain,
              "total_fit_and_forecast_median_s": sum(r["fit_and_forecast"]["median_s"] for r in rows)}
    write_benchmark_json(out.stem, table_rows(result), out.parent, details=result,
                         machine={"cpus": os.cpu_count(), "python": platform.python_version(),
                                  "platform": platform.platform()})
    return result


def table_rows(result: dict) -> list[dict]:
    "The report's benchmark rows (schema: `cryptopred.report.validate_benchmark`); per-coin detail stays in `details`."
    def r(workload, t, notes=None):
        return {"stage": "forecast", "workload": workload, "time_median_s": t["median_s"], "runs": t["repeats"],
                "peak_memory_mb": None, "goal": None, "met": None, **({"notes": notes} if notes else {})}
    daily = [x for x in result["per_coin"] if x["granularity"] == "daily"]
    hourly = [x for x in result["per_coin"] if x["granularity"] == "hourly"]
    med = lambda xs, k: {"median_s": statistics.median(x[k]["median_s"] for x in xs), "repeats": xs[0][k]["repeats"]}
    out = [r(f"ProphetForecaster fit, one daily coin (median over {len(daily)} real coins)", med(daily, "fit")),
           r(f"ProphetForecaster fit + 30-day forecast, one daily coin (median over {len(daily)} coins)",
             med(daily, "fit_and_forecast"))]
    if hourly:
        out.append(r(f"ProphetForecaster fit + 24-hour forecast, one hourly coin (median over {len(hourly)} coins)",
                     med(hourly, "fit_and_forecast")))
    out.append(r("plain Prophet on bitcoin's full daily history + 30-day forecast (for comparison)",
                 result["plain_prophet_bitcoin_daily_full_history"]))
    return out


def test_bench_forecast():
    r = run_benchmark()
    assert len(r["per_coin"]) == 12


if __name__ == "__main__":
    res = run_benchmark()
    for r in res["per_coin"]:
        print(f"{r['coin']:<12} {r['granularity']:<7} fit+forecast {r['fit_and_forecast']['median_s']:.3f} s")
    print(f"wrote {OUT}")
