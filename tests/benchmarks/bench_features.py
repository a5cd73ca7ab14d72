"""Benchmark: building features for 10 coins x 5 years of hourly data (simulated, ~44k rows each) and for the 10 real
daily series. Goal: the hourly panel in <= 2 s on this 2-core machine.

Run as a script (`python tests/benchmarks/bench_features.py`) or with pytest (`pytest tests/benchmarks`); both write
the figures to `reports/benchmarks/features.json`. Timings are wall-clock medians of a few repeats after one warm-up
run, with the CPU time the process used (close to the wall time an idle machine would show); the machine's load
average is recorded beside them, since other work on the machine slows every wall-clock figure.
"""
from __future__ import annotations

import json
import os
import platform
import statistics
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import pandas as pd

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "tests"))

from support.market import simulated_market  # noqa: E402
from support.realdata import REAL_COINS, REAL_DIR, read_real  # noqa: E402

from cryptopred.features import build_features, build_panel, feature_columns  # noqa: E402
from cryptopred.preprocess import clean  # noqa: E402
from cryptopred.report.bench import write_benchmark_json  # noqa: E402

OUT = REPO / "reports" / "benchmarks" / "features.json"
GOAL_S = 2.0
HOURLY_COINS = ("bitcoin", "ethereum", "solana", "binancecoin", "ripple", "cardano", "dogecoin", "litecoin", "tron",
                "chainlink")


def timed(fn, repeat: int = 5) -> dict:
    "Median and best wall-clock seconds of `repeat` runs after a warm-up, and the median CPU seconds they used."
    fn()
    wall, cpu = [], []
    for _ in range(repeat):
        t0, c0 = time.perf_counter(), time.process_time()
        fn()
        wall.append(time.perf_counter() - t0); cpu.append(time.process_time() - c0)
    return {"median_s": round(statistics.median(wall), 4), "best_s": round(min(wall), 4),
            "cpu_s": round(statistics.median(cpu), 4), "repeats": repeat}


def hourly_market(years: int = 5) -> dict[str, pd.DataFrame]:
    n = 24 * 365 * years
    return {coin: simulated_market(n, "hourly", seed=i, start="2021-01-01", short_gaps=20, long_gaps=3, spikes=5,
                                   zero_volumes=50)
            for i, coin in enumerate(HOURLY_COINS)}


def main(repeat: int = 5) -> dict:
    frames = hourly_market()
    rows = {c: len(f) for c, f in frames.items()}
    panel = build_panel(frames, "hourly")
    result = {
        "machine": {"cpus": os.cpu_count(), "load_average_1m": round(os.getloadavg()[0], 2),
                    "python": platform.python_version(), "pandas": pd.__version__, "numpy": np.__version__},
        "hourly_panel": {"coins": len(frames), "rows_per_coin": int(statistics.median(rows.values())),
                         "rows_total": int(sum(rows.values())), "features": len(feature_columns(panel["ethereum"])),
                         **timed(lambda: build_panel(frames, "hourly"), repeat)},
        "hourly_one_coin": {"rows": rows["ethereum"], **timed(
            lambda: build_features(frames["ethereum"], "hourly", btc=frames["bitcoin"]), repeat)},
        "hourly_clean_one_coin": {"rows": rows["ethereum"],
                                  **timed(lambda: clean(frames["ethereum"], "hourly"), repeat)},
        "goal_s": GOAL_S,
    }
    hp = result["hourly_panel"]
    hp["goal_met"], hp["rows_per_s"] = hp["median_s"] <= GOAL_S, int(hp["rows_total"] / hp["median_s"])
    if REAL_DIR is not None:
        real = {c: read_real(c) for c in REAL_COINS}
        result["real_daily_panel"] = {"coins": len(real), "rows_total": int(sum(len(f) for f in real.values())),
                                      **timed(lambda: build_panel(real, "daily"), repeat)}
        result["real_daily_one_coin"] = {"coin": "ethereum", "rows": len(real["ethereum"]),
                                         **timed(lambda: build_features(real["ethereum"], btc=real["bitcoin"]), repeat)}
    result["machine"]["load_average_1m_after"] = round(os.getloadavg()[0], 2)
    write_benchmark_json("features", benchmark_rows(result), OUT.parent, machine=result.pop("machine"),
                         created_at=datetime.now(timezone.utc).isoformat(timespec="seconds"), details=result)
    return result


def benchmark_rows(result: dict) -> list[dict]:
    "The report's benchmark rows (schema: `cryptopred.report.validate_benchmark`) from the detailed figures."
    def r(workload, d, goal=None, met=None):
        return {"stage": "features", "workload": workload, "time_median_s": d["median_s"], "runs": d["repeats"],
                "peak_memory_mb": None, "goal": goal, "met": met,
                "notes": f"best {d['best_s']} s, CPU {d['cpu_s']} s"}
    hp = result["hourly_panel"]
    rows = [r(f"build_panel: {hp['coins']} coins × 5 y hourly (simulated, {hp['rows_total']:,} rows, "
              f"{hp['features']} features)", hp, f"≤ {GOAL_S:g} s", hp["goal_met"]),
            r(f"build_features: one hourly coin with bitcoin features ({result['hourly_one_coin']['rows']:,} rows)",
              result["hourly_one_coin"]),
            r(f"clean: one hourly coin ({result['hourly_clean_one_coin']['rows']:,} rows)",
              result["hourly_clean_one_coin"])]
    if "real_daily_panel" in result:
        rd = result["real_daily_panel"]
        rows += [r(f"build_panel: the {rd['coins']} real daily series ({rd['rows_total']:,} rows)", rd),
                 r(f"build_features: real daily {result['real_daily_one_coin']['coin']} "
                   f"({result['real_daily_one_coin']['rows']:,} rows)", result["real_daily_one_coin"])]
    return rows


def test_features_benchmark():
    "Runs the benchmark and records it (no timing assertion: timings are for the report, not a pass/fail)."
    result = main(repeat=3)
    assert OUT.is_file() and result["hourly_panel"]["rows_total"] > 400_000


if __name__ == "__main__":
    print(json.dumps(main(), indent=2))
