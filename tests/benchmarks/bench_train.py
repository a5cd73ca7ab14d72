"""Benchmark: training -> reports/benchmarks/train.json.

Three workloads on the simulated market (5 coins, 365 days, as a first `make ingest` leaves it):

1. Prophet fit + forecast per coin (one fit on the coin's history, 30 steps ahead, the training parameters);
2. training one coin: the forecaster (tuning + rolling-origin holdout + final fit) and the classifier (nested
   walk-forward tuning of every family, calibration choice, holdout assessment, refit, importance), each with the
   budgets `make train` uses;
3. the whole `make train` for the 5 coins (both run-books through papermill, n_jobs from the settings).
   Goal: <= 2 minutes on this 2-core machine.

Run `python tests/benchmarks/bench_train.py` (or `make bench`). Timings only; no assertions.
"""
from __future__ import annotations

import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
sys.path[:0] = [str(HERE), str(REPO / "tests")]

from benchutil import max_rss_mb, measure, row, write_result  # noqa: E402
from support.homes import SIM_NOW as NOW  # noqa: E402

from cryptopred.config import load_settings  # noqa: E402
from cryptopred.data.ingest import ingest  # noqa: E402
from cryptopred.features import build_panel  # noqa: E402
from cryptopred.train.classifier import fit_classifier  # noqa: E402
from cryptopred.train.core import load_market  # noqa: E402
from cryptopred.train.forecaster import fit_forecaster  # noqa: E402

COINS = ("bitcoin", "ethereum", "solana", "binancecoin", "ripple")
DAYS = 365
GOAL_S = 120.0


def make_train_settings():
    "The make-train defaults, read the way `make train` reads them (the Makefile's TRAIN_ARGS)."
    text = (REPO / "Makefile").read_text()
    line = next(ln for ln in text.splitlines() if ln.startswith("TRAIN_BUDGET"))
    return int(line.split("=")[-1].strip())


def main() -> None:
    budget = make_train_settings()
    home = Path(tempfile.mkdtemp(prefix="bench-train-"))
    env = {"CRYPTOPRED_HOME": str(home), "CRYPTOPRED_SOURCE": "simulated", "CRYPTOPRED_COINS": ",".join(COINS)}
    s = load_settings(environ=env, env_file=None)
    assert ingest(s, days=DAYS, now=NOW).ok
    frames, _ = load_market(s, COINS)
    sb = s.model_copy(update={"search_budget": budget})
    rows = []

    from cryptopred.forecast import ProphetForecaster, default_params
    for coin in COINS:
        st = measure(lambda coin=coin: ProphetForecaster(default_params()).fit(frames[coin]).forecast(30), repeat=5)
        rows.append(row("Prophet fit + forecast", f"{coin}, {DAYS} d simulated, 30 steps", st))

    panel = build_panel(frames, "daily", settings=s)
    for coin in COINS:
        st = measure(lambda coin=coin: fit_forecaster(coin, frames[coin], sb), repeat=3, memory=False)
        rows.append(row("forecaster training, one coin", f"{coin}: tune (budget {budget}) + holdout + fit", st))
    for coin in COINS:
        st = measure(lambda coin=coin: fit_classifier(coin, panel[coin], sb), repeat=1, warmup=0, memory=False)
        rows.append(row("classifier tuning, one coin", f"{coin}: 3 families + ensemble, budget {budget}, "
                        f"{s.cv_folds} inner folds, calibration, 1000 bootstraps", st))

    load = os.getloadavg()[0]
    cpu0 = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    proc = subprocess.run(["make", "-s", "train"], cwd=REPO, env={**os.environ, **env}, capture_output=True, text=True)
    wall = time.perf_counter() - t0
    cpu1 = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (cpu1.ru_utime + cpu1.ru_stime) - (cpu0.ru_utime + cpu0.ru_stime)
    runs = {}
    for d in sorted((home / "runs").glob("*_train_*")):
        st = json.loads((d / "status.json").read_text())
        runs[st["step"]] = f"{st['status']} {st['duration_s']:.0f} s"
    notes = (f"exit {proc.returncode}; " + ", ".join(f"{k}: {v}" for k, v in runs.items())
             + f"; n_jobs {s.n_jobs}; budget {budget}; CPU {cpu:.0f} s (user+sys of every process); "
             f"load average before {load:.1f}, after {os.getloadavg()[0]:.1f}")
    if proc.returncode: notes += "; " + proc.stderr.strip()[-300:]
    rows.append(row("make train", f"5 coins × {DAYS} d simulated, forecaster + classifier",
                    {"time_median_s": wall, "runs": 1, "peak_memory_mb": None}, goal=f"≤ {GOAL_S:.0f} s",
                    met=proc.returncode == 0 and wall <= GOAL_S, notes=notes))
    rows[-1]["notes"] += f"; bench process max RSS {max_rss_mb():.0f} MB"
    write_result("train", rows)


if __name__ == "__main__":
    main()
