"""Benchmark: does the app answer as fast with 100 coins as with 5? -> reports/benchmarks/serve_scale.json.

For each size (5 and 100 coins) a fresh home gets 240 days of the simulated market and a champion classifier and
forecaster per coin (the test fixtures' small models), then `cryptopred serve` runs in its own process on 127.0.0.1,
exactly as `bench_serve.py` starts it. One client in this process then sends, after a warm-up that touches every coin
once, 1,000 `POST /api/v1/predict` cycling over all the served coins (so every model is in play, not one cached
answer) and 100 `GET /api/v1/coins` (every coin's state: the API's overview). Latency is measured by the client
around each request (httpx, one keep-alive connection).

Goal (issue 15): `POST /api/v1/predict` p99 at 100 coins at most 1.2x that at 5 coins; `/api/v1/coins` grows with the
coin list by nature (it lists them), so its latency is recorded beside, with no goal. Not part of `make test`.
Run `python tests/benchmarks/bench_serve_scale.py` (or `make bench ARGS="-k serve_scale"`)."""
from __future__ import annotations

import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

import httpx
import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
sys.path.insert(0, str(HERE))
from bench_serve import start_server  # noqa: E402
from benchutil import row, write_result  # noqa: E402
from support.fakes import free_port  # noqa: E402
from support.homes import HUNDRED_COINS, make_champions, serve_settings  # noqa: E402

SIZES, PREDICTS, LISTINGS, GOAL_RATIO = (5, 100), 1000, 100, 1.2


def timed(client: httpx.Client, n: int, request) -> np.ndarray:
    "Latencies (ms) of `n` calls of `request(client, i)`; each answer must be 200."
    out = np.empty(n)
    for i in range(n):
        t0 = time.perf_counter()
        r = request(client, i)
        out[i] = (time.perf_counter() - t0) * 1000
        if r.status_code != 200: raise SystemExit(f"{r.request.method} {r.request.url.path}: HTTP {r.status_code} {r.text[:300]}")
    return out


def measure(n: int, root: Path) -> dict:
    "Train champions for `n` coins, serve them, measure predict and coins latency."
    coins = HUNDRED_COINS[:n]
    home = root / f"coins{n}"
    t0 = time.perf_counter()
    make_champions(serve_settings(home, coins=coins))
    setup_s = time.perf_counter() - t0
    port = free_port()
    proc = start_server(home, port, coins)
    try:
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=30) as c:
            predict = lambda cl, i: cl.post("/api/v1/predict", json={"coin": coins[i % n]})
            listing = lambda cl, i: cl.get("/api/v1/coins")
            timed(c, max(n, 50), predict); timed(c, 5, listing)  # warm-up: every coin's models loaded once
            pred, lst = timed(c, PREDICTS, predict), timed(c, LISTINGS, listing)
            served = len(c.get("/api/v1/coins").json()["coins"])
    finally:
        proc.terminate(); proc.wait(timeout=30)
    stats = lambda a: {"p50_ms": round(float(np.percentile(a, 50)), 3), "p99_ms": round(float(np.percentile(a, 99)), 3)}
    out = {"coins": n, "served": served, "setup_s": round(setup_s, 1), "predict": stats(pred), "coins_listing": stats(lst)}
    print(f"{n} coins: predict p50 {out['predict']['p50_ms']} ms p99 {out['predict']['p99_ms']} ms; /coins p50 "
          f"{out['coins_listing']['p50_ms']} ms p99 {out['coins_listing']['p99_ms']} ms (setup {setup_s:.0f} s)", flush=True)
    return out


def main() -> None:
    root = Path(tempfile.mkdtemp(prefix="bench-serve-scale-"))
    load0 = os.getloadavg()
    try: res = {n: measure(n, root) for n in SIZES}
    finally: shutil.rmtree(root, ignore_errors=True)
    small, big = res[SIZES[0]], res[SIZES[-1]]
    ratio = big["predict"]["p99_ms"] / small["predict"]["p99_ms"]
    rows = []
    for n, r in res.items():
        last = n == SIZES[-1]
        p99 = f"p99 {r['predict']['p99_ms']:.2f} ms" + (f" ({ratio:.2f}× that at {SIZES[0]} coins)" if last else "")
        rows.append(row(f"serve @ {n} coins",
                        f"POST /api/v1/predict, {n} served coins (cycling over all), 1 client, {PREDICTS:,} requests",
                        {"time_median_s": r["predict"]["p50_ms"] / 1000, "runs": PREDICTS, "peak_memory_mb": None},
                        goal=f"p99 ≤ {GOAL_RATIO}× that at {SIZES[0]} coins" if last else None,
                        met=bool(ratio <= GOAL_RATIO) if last else None, notes=f"{p99}; {r['served']} coins served"))
        rows.append(row(f"serve @ {n} coins",
                        f"GET /api/v1/coins (every coin's state), {n} served coins, 1 client, {LISTINGS} requests",
                        {"time_median_s": r["coins_listing"]["p50_ms"] / 1000, "runs": LISTINGS, "peak_memory_mb": None},
                        notes=f"p99 {r['coins_listing']['p99_ms']:.2f} ms; grows with the list it returns"))
    load1 = os.getloadavg()
    write_result("serve_scale", rows, details={"sizes": {str(n): r for n, r in res.items()},
                                               "load_average_start": [round(x, 2) for x in load0],
                                               "load_average_end": [round(x, 2) for x in load1]})

if __name__ == "__main__":
    main()
