"""Shared by the benchmark scripts: time a workload, measure its peak memory, write `reports/benchmarks/<name>.json`.

A benchmark script `tests/benchmarks/bench_<name>.py` measures one or more workloads and ends with::

    from benchutil import measure, row, write_result
    stats = measure(lambda: build_features(...), repeat=5)
    write_result("features", [row("features", "10 coins × 5 y hourly (simulated)", stats, goal="≤ 2 s",
                                  met=stats["time_median_s"] <= 2)])

The file format is documented (and validated) by `cryptopred.report.validate_benchmark`; `make bench` runs every
script (`run_all.py`) and assembles `reports/benchmarks.md`.
"""
from __future__ import annotations

import gc
import os
import platform
import resource
import statistics
import sys
import time
import tracemalloc
from collections.abc import Callable
from datetime import datetime, timezone
from pathlib import Path

from cryptopred.report.bench import write_benchmark_json
from cryptopred.report.cite import REPORTS_DIR

RESULTS_ENV = "BENCH_RESULTS_DIR"  # run_all.py points this at the results folder


def measure(fn: Callable[[], object], repeat: int = 5, warmup: int = 1, memory: bool = True) -> dict:
    """Run `fn` `warmup` times untimed, then `repeat` timed runs; then once more under tracemalloc for the peak.

    The timed runs are not traced (tracemalloc slows allocation-heavy code down). tracemalloc sees Python and numpy
    allocations; memory allocated by native libraries on their own (Arrow, Stan) is not in it: add `max_rss_mb()` to
    the row's notes for those."""
    if repeat < 1: raise ValueError("repeat must be at least 1")
    for _ in range(warmup): fn()
    times = []
    for _ in range(repeat):
        gc.collect()
        t0 = time.perf_counter(); fn(); times.append(time.perf_counter() - t0)
    peak = None
    if memory:
        gc.collect(); tracemalloc.start()
        try:
            fn(); peak = tracemalloc.get_traced_memory()[1] / 1e6
        finally:
            tracemalloc.stop()
    return {"time_median_s": statistics.median(times), "runs": repeat, "peak_memory_mb": peak, "times_s": times}


def max_rss_mb() -> float:
    "The process's peak resident memory so far, MB (Linux reports KiB)."
    kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return kib * 1024 / 1e6 if sys.platform != "darwin" else kib / 1e6


def row(stage: str, workload: str, stats: dict, goal: str | None = None, met: bool | None = None,
        notes: str | None = None) -> dict:
    "One table row from `measure`'s stats."
    out = {"stage": stage, "workload": workload, "time_median_s": round(stats["time_median_s"], 6),
           "runs": stats["runs"], "peak_memory_mb": None if stats.get("peak_memory_mb") is None
           else round(stats["peak_memory_mb"], 1), "goal": goal, "met": met}
    return {**out, "notes": notes} if notes else out


def write_result(name: str, rows: list[dict], **extra) -> Path:
    "Validate and write the benchmark file (into $BENCH_RESULTS_DIR, default reports/benchmarks); `extra`: e.g. details."
    folder = Path(os.environ.get(RESULTS_ENV) or REPORTS_DIR / "benchmarks")
    machine = {"cpus": os.cpu_count(), "python": platform.python_version(), "platform": platform.platform(terse=True)}
    path = write_benchmark_json(name, rows, folder, created_at=datetime.now(timezone.utc).isoformat(timespec="seconds"),
                                machine=machine, **extra)
    print(f"{name}: wrote {path}")
    return path
