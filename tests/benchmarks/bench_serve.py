"""Load test of `POST /api/v1/predict` (not part of `make test`): the app exactly as `cryptopred serve` runs it (API +
UI, uvicorn), in its own process on 127.0.0.1, driven from this process at 1 and 32 concurrent clients, 2,000
requests each after a warm-up, three times per level. Writes reports/benchmarks/serve.json.

The load generator is a small asyncio HTTP/1.1 keep-alive client (one connection per simulated client; each answer's
status is checked and its JSON parsed). httpx.AsyncClient is also run at 32 clients for comparison: on this 2-core
machine its own per-request CPU makes the *client* the bottleneck, so its latencies measure httpx more than the
server. Also recorded: the server's own latency histogram over the same window, its CPU time per request and the
machine's load average (the cores are shared with other jobs).

Goal (issue 5): p99 <= 25 ms at 32 clients with zero errors. Bounded: each level stops after 2,000 requests or
120 s; each request times out after 10 s."""
from __future__ import annotations

import asyncio
import json
import os
import platform
import subprocess
import sys
import tempfile
import threading
import time
from datetime import datetime, timezone
from pathlib import Path

import httpx
import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
sys.path.insert(0, str(HERE))
from benchutil import RESULTS_ENV  # noqa: E402
from support.fakes import free_port  # noqa: E402
from support.homes import make_champions, serve_settings  # noqa: E402

from cryptopred.monitor.health import serving_health  # noqa: E402
from cryptopred.report.bench import write_benchmark_json  # noqa: E402
from cryptopred.report.cite import REPORTS_DIR  # noqa: E402

REQUESTS, WARMUP, LEVELS, DEADLINE_S, TIMEOUT_S = 2000, 300, (1, 32), 120.0, 10.0
REPEATS = 3  # each level runs this many times; the row is the run with the median p99, the notes give the range
COINS = ("bitcoin", "ethereum")
GOAL_P99_MS = 25.0
TICK = os.sysconf("SC_CLK_TCK")


def start_server(home: Path, port: int, coins=COINS) -> subprocess.Popen:
    "`cryptopred serve` on 127.0.0.1:port over `home`, serving `coins`; returns once uvicorn says it is listening."
    exe = Path(sys.executable).parent / "cryptopred"
    env = {**os.environ, "CRYPTOPRED_HOME": str(home), "CRYPTOPRED_COINS": ",".join(coins), "CRYPTOPRED_SOURCE": "simulated",
           "GRADIO_ANALYTICS_ENABLED": "False", "HF_HUB_OFFLINE": "1", "MPLBACKEND": "Agg"}
    proc = subprocess.Popen([str(exe), "serve", "--host", "127.0.0.1", "--port", str(port), "--log-level", "info"],
                            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    log = []
    for line in proc.stderr:
        log.append(line)
        if "Uvicorn running on" in line: break
    else:
        raise RuntimeError(f"the server exited before listening (status {proc.wait()}):\n{''.join(log[-20:])}")
    threading.Thread(target=lambda: [None for _ in proc.stderr], daemon=True).start()  # never block on a full pipe
    return proc


def cpu_seconds(pid: int) -> float:
    "User + system CPU time of a process so far."
    f = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(f[11]) + int(f[12])) / TICK


def summary(lat: list[float], errors: list[str], clients: int, wall: float) -> dict:
    ms = np.array(lat) * 1000
    return {"clients": clients, "requests": len(lat), "errors": len(errors), "error_kinds": sorted(set(errors)),
            "p50_ms": float(np.percentile(ms, 50)), "p95_ms": float(np.percentile(ms, 95)),
            "p99_ms": float(np.percentile(ms, 99)), "max_ms": float(ms.max()), "mean_ms": float(ms.mean()),
            "throughput_rps": len(lat) / wall, "wall_s": wall}


async def raw_load(port: int, clients: int, n: int) -> dict:
    "`n` predictions over `clients` keep-alive HTTP/1.1 connections; each status checked, each JSON body parsed."
    lat, errors, sent = [], [], 0
    deadline = time.monotonic() + DEADLINE_S

    async def worker():
        nonlocal sent
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        try:
            while sent < n and time.monotonic() < deadline:
                body = json.dumps({"coin": COINS[sent % len(COINS)]}).encode(); sent += 1
                t0 = time.perf_counter()
                try:
                    writer.write(b"POST /api/v1/predict HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
                                 b"Content-Length: %d\r\n\r\n%s" % (len(body), body))
                    head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), TIMEOUT_S)
                    lines = head.decode("latin-1").split("\r\n")
                    size = next(int(v) for k, _, v in (h.partition(":") for h in lines[1:]) if k.lower() == "content-length")
                    data = await asyncio.wait_for(reader.readexactly(size), TIMEOUT_S)
                    status = int(lines[0].split()[1])
                    if status != 200 or "prob_up" not in json.loads(data): errors.append(f"HTTP {status}")
                except (OSError, asyncio.TimeoutError, asyncio.IncompleteReadError, ValueError, StopIteration) as e:
                    errors.append(type(e).__name__)
                    return
                finally:
                    lat.append(time.perf_counter() - t0)
        finally:
            writer.close()

    t0 = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(clients)))
    return summary(lat, errors, clients, time.perf_counter() - t0)


async def httpx_load(url: str, clients: int, n: int) -> dict:
    "The same load through httpx.AsyncClient (for comparison)."
    lat, errors, sent = [], [], 0
    deadline = time.monotonic() + DEADLINE_S
    limits = httpx.Limits(max_connections=clients, max_keepalive_connections=clients)
    async with httpx.AsyncClient(base_url=url, limits=limits, timeout=TIMEOUT_S) as client:
        async def worker():
            nonlocal sent
            while sent < n and time.monotonic() < deadline:
                body = {"coin": COINS[sent % len(COINS)]}; sent += 1
                t0 = time.perf_counter()
                try:
                    r = await client.post("/api/v1/predict", json=body)
                    if r.status_code != 200 or "prob_up" not in r.json(): errors.append(f"HTTP {r.status_code}")
                except httpx.HTTPError as e:
                    errors.append(type(e).__name__)
                lat.append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(clients)))
        return summary(lat, errors, clients, time.perf_counter() - t0)


def measured(url: str, proc: subprocess.Popen, settings, run) -> dict:
    "Run one load level and add the server's view: its histogram p50/p99 and its CPU time per request."
    before, cpu0, load0 = httpx.get(url + "/metrics").text, cpu_seconds(proc.pid), os.getloadavg()[0]
    res = asyncio.run(run())
    after, cpu1 = httpx.get(url + "/metrics").text, cpu_seconds(proc.pid)
    h = serving_health(after, settings, previous=before).table.loc["/api/v1/predict"]
    return {**res, "server_p50_ms": round(float(h["p50_ms"]), 3), "server_p99_ms": round(float(h["p99_ms"]), 3),
            "server_cpu_us_per_request": round((cpu1 - cpu0) / max(res["requests"], 1) * 1e6, 1),
            "load_average_1m": [round(load0, 2), round(os.getloadavg()[0], 2)]}


def main() -> None:
    home = Path(tempfile.mkdtemp(prefix="bench-serve-")) / "home"
    settings = serve_settings(home, coins=COINS)
    make_champions(settings)
    port = free_port()
    proc = start_server(home, port)
    url = f"http://127.0.0.1:{port}"
    try:
        raw, runs, versus = [], {}, None
        for clients in LEVELS:
            asyncio.run(raw_load(port, clients, WARMUP))
            runs[clients] = [measured(url, proc, settings, lambda c=clients: raw_load(port, c, REQUESTS))
                             for _ in range(REPEATS)]
            raw.append(sorted(runs[clients], key=lambda r: r["p99_ms"])[REPEATS // 2])
        asyncio.run(httpx_load(url, 32, WARMUP))
        versus = measured(url, proc, settings, lambda: httpx_load(url, 32, REQUESTS))
    finally:
        proc.terminate()
        proc.wait(timeout=30)
    for r in [*raw, versus]:
        print(f"{r['clients']:>2} clients: p50 {r['p50_ms']:.2f} ms, p95 {r['p95_ms']:.2f} ms, p99 {r['p99_ms']:.2f} ms, "
              f"{r['throughput_rps']:.0f} req/s, {r['errors']} errors; "
              f"server p50/p99 {r['server_p50_ms']}/{r['server_p99_ms']} ms, "
              f"{r['server_cpu_us_per_request']} us CPU/request; load {r['load_average_1m']}", flush=True)
    rows = []
    for r in raw:
        goal = r["clients"] == 32
        met = (r["p99_ms"] <= GOAL_P99_MS and all(x["errors"] == 0 for x in runs[r["clients"]])) if goal else None
        p99s = [x["p99_ms"] for x in runs[r["clients"]]]
        notes = (f"p95 {r['p95_ms']:.1f} ms, p99 {r['p99_ms']:.1f} ms (median of {REPEATS} runs; range {min(p99s):.1f}–"
                 f"{max(p99s):.1f} ms), {r['throughput_rps']:.0f} req/s, {sum(x['errors'] for x in runs[r['clients']])} errors; "
                 f"server-side p99 {r['server_p99_ms']:.1f} ms, {r['server_cpu_us_per_request']:.0f} µs CPU/request; "
                 f"load average {r['load_average_1m'][0]:g}")
        if goal: notes += (f"; with httpx.AsyncClient as the client: p99 {versus['p99_ms']:.0f} ms at "
                           f"{versus['throughput_rps']:.0f} req/s (client-bound)")
        rows.append({"stage": "serve", "workload": f"POST /api/v1/predict, {r['clients']} concurrent client"
                     f"{'s' if r['clients'] > 1 else ''}, {r['requests']:,} requests over loopback",
                     "time_median_s": round(r["p50_ms"] / 1000, 6), "runs": r["requests"], "peak_memory_mb": None,
                     "goal": f"p99 ≤ {GOAL_P99_MS:g} ms, 0 errors" if goal else None, "met": met, "notes": notes})
    folder = Path(os.environ.get(RESULTS_ENV) or REPORTS_DIR / "benchmarks")
    machine = {"cpus": os.cpu_count(), "python": platform.python_version(), "platform": platform.platform(terse=True)}
    details = {"setup": "cryptopred serve (API + UI, uvicorn with uvloop/httptools) in its own process on 127.0.0.1, "
                        "two coins with simulated data and champions; this process drives it with an asyncio HTTP/1.1 "
                        f"keep-alive client; {WARMUP} warm-up requests per level; coins alternate; latency measured by "
                        "the client around each request; server view = cryptopred_http_request_duration_seconds over the "
                        "same window; the 2 cores are shared with the client and with other jobs (load average)",
               "levels": raw, "runs": {str(c): v for c, v in runs.items()}, "httpx_client_32": versus}
    path = write_benchmark_json("serve", rows, folder, created_at=datetime.now(timezone.utc).isoformat(timespec="seconds"),
                                machine=machine, details=details)
    print(f"serve: wrote {path}")


if __name__ == "__main__":
    main()
