"""Benchmark: the direction classifier's default training cost on the data `make run` trains on (5 simulated coins,
365 days, default settings: 12 candidates per family, 5 inner folds), one model per coin and pooled over the coins.

Per coin = `evaluate_classifier` (tuning, selection, calibration choice, holdout assessment with 1000 bootstrap
resamples) + `fit_final_model`, one core. Pooled, the coins of one process share the selection and the fits
(`cryptopred.classify._select_once` / `_fit_once`), so the first coin carries nearly all of the cost: the row
reports the whole panel. The remembered selections are cleared before every timed run.

Run as a script (`python tests/benchmarks/bench_classify.py`, or `make bench`); writes
`reports/benchmarks/classify.json`.
"""
from __future__ import annotations

import pandas as pd
from benchutil import max_rss_mb, measure, row, write_result

import cryptopred.classify as C
from cryptopred.config import load_settings
from cryptopred.data.simulated import SimulatedMarket
from cryptopred.features import build_panel

GOAL_S = 120.0  # the budget for the whole `make train` of 5 coins; the classifier is only part of it


def make_run_inputs(days: int = 365) -> tuple[dict, object]:
    "The inputs `make run` would train on: the default coins from the simulated market, `days` of daily history."
    s = load_settings(environ={}, env_file=None)
    market, end = SimulatedMarket.from_settings(s), pd.Timestamp("2026-02-01", tz="UTC")
    frames = {c: market.history(c, "daily", start=end - pd.Timedelta(days=days), end=end).frame for c in s.coins}
    panel = build_panel(frames, "daily", settings=s)
    return {c: C.coin_inputs(panel[c]) for c in s.coins}, s


def train_all(inputs: dict, s, pooled: bool) -> None:
    C._SELECTIONS_DONE.clear(); C._FITS_DONE.clear()
    for coin, (X, y, r, u) in inputs.items():
        pool = inputs if pooled else None
        ev = C.evaluate_classifier(X, y, r, settings=s, usable=u, name=coin, pool=pool)
        C.fit_final_model(X, y, settings=s, usable=u, evaluation=ev, pool=pool, coin=coin)


def main(repeat: int = 2) -> list[dict]:
    inputs, s = make_run_inputs()
    n = len(inputs)
    rows = []
    for pooled in (False, True):
        st = measure(lambda pooled=pooled: train_all(inputs, s, pooled), repeat=repeat, warmup=0, memory=False)
        label = "pooled over the coins" if pooled else "one model per coin"
        rows.append(row("classifier", f"evaluate + final fit, {n} simulated coins × 365 d, budget {s.search_budget}, "
                        f"{label} (one core, sequential)", st, goal=f"≤ {GOAL_S:g} s", met=st["time_median_s"] <= GOAL_S,
                        notes=f"{st['time_median_s'] / n:.1f} s per coin; peak RSS {max_rss_mb():.0f} MB"))
    write_result("classify", rows)
    return rows


def test_classify_benchmark():
    "Runs the benchmark and records it (no timing assertion: timings are for the report, not a pass/fail)."
    rows = main(repeat=1)
    assert len(rows) == 2 and all(r["time_median_s"] > 0 for r in rows)


if __name__ == "__main__":
    for r in main(): print(r)
