"""Benchmark: the pipeline's stages at 10, 30 and 100 coins -> reports/benchmarks/scale.json.

Each market size gets a fresh home on the simulated market (3 years of daily rows per coin, search budget 1, the
configured `n_jobs`), and each stage runs as `cryptopred run <step>` in its own process, as `make pipeline` runs it:
ingest, profile, train_forecaster, train_classifier, monitor, report (no PDF). Recorded per stage and size: the wall
time, and the peak memory of the stage's whole process tree (the CLI, the papermill kernel and its joblib workers),
sampled every 0.2 s with psutil: the sum of the processes' PSS (shared pages divided among the processes that share
them), with the summed RSS (which counts shared libraries once per process) beside it. Goals (issue 15): a stage's
time per coin at 100 coins at most 1.2x that at 10; the whole pipeline at 100 coins within 10 minutes and under 2 GB
on this 2-core machine.

Then the two training steps run again on the 10-coin store with `CRYPTOPRED_DASK_SCHEDULER` pointing at a Dask
`LocalCluster` (2 worker processes): the models must be identical (the same chosen parameters, holdout scores and
data hashes per coin) to the local run's.

Run `python tests/benchmarks/bench_scale.py [--coins 10,30,100]` (or `make bench ARGS="-k scale"`). One run per size
(it takes many minutes on a shared machine); the machine's load average is recorded beside the numbers.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import psutil

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
sys.path.insert(0, str(HERE.parent))
sys.path.insert(0, str(HERE))
from benchutil import row, write_result  # noqa: E402
from support.homes import HUNDRED_COINS  # noqa: E402

STAGES = ("ingest", "profile", "train_forecaster", "train_classifier", "monitor", "report")
DAYS, BUDGET = 3 * 365, 1
GOAL_RATIO, GOAL_TOTAL_S, GOAL_MB = 1.2, 600.0, 2048.0
SAME = ("params", "data_hashes", "holdout", "per_coin", "pool")  # what must agree between the loky and the Dask run


def tree_memory_mb(proc: psutil.Process) -> tuple[float, float]:
    """Memory of `proc` and all its descendants, MB: (PSS, RSS) summed over the processes. PSS (proportional set size)
    counts a page shared by k processes as 1/k in each, so the sum is the tree's footprint; summed RSS counts each
    shared page (numpy, scipy and Prophet's libraries in every joblib worker) once per process and overstates it.
    PSS falls back to RSS where the system does not report it."""
    pss = rss = 0
    for p in [proc, *proc.children(recursive=True)]:
        try:
            m = p.memory_full_info()
            rss += m.rss; pss += getattr(m, "pss", m.rss)
        except psutil.Error: pass
    return pss / 1e6, rss / 1e6


def run_stage(step: str, env: dict, params: dict | None = None) -> dict:
    "Run `cryptopred run step` in its own process; wall time, peak tree memory, the run's metrics."
    cmd = [str(Path(sys.executable).with_name("cryptopred")), "run", step]
    for k, v in (params or {}).items(): cmd += ["-p", k, str(v)]
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, env=env, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    ps, peak, done = psutil.Process(proc.pid), [0.0, 0.0], threading.Event()
    def sample():
        while not done.wait(0.2): peak[:] = map(max, peak, tree_memory_mb(ps))
    th = threading.Thread(target=sample, daemon=True); th.start()
    out = proc.communicate()[0]
    done.set(); th.join()
    wall = time.perf_counter() - t0
    if proc.returncode != 0: raise SystemExit(f"{step} failed (exit {proc.returncode}):\n{out[-3000:]}")
    line = next(ln for ln in reversed(out.splitlines()) if ln.startswith(f"{step}: ") and " -> " in ln)
    run_dir = Path(line.rsplit(" -> ", 1)[-1].strip())
    metrics = json.loads((run_dir / "metrics.json").read_text()) if (run_dir / "metrics.json").is_file() else {}
    return {"wall_s": round(wall, 2), "peak_mb": round(peak[0], 1), "peak_rss_mb": round(peak[1], 1), "metrics": metrics}


def bench_env(home: Path, coins, **extra) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("CRYPTOPRED_", "COINGECKO_"))}
    env.update(CRYPTOPRED_HOME=str(home), CRYPTOPRED_COINS=",".join(coins), CRYPTOPRED_SOURCE="simulated",
               CRYPTOPRED_HISTORY_DAYS=str(DAYS), CRYPTOPRED_SEARCH_BUDGET=str(BUDGET), GRADIO_ANALYTICS_ENABLED="False",
               HF_HUB_OFFLINE="1", WHYLOGS_NO_ANALYTICS="1", MPLBACKEND="Agg", PYTHONWARNINGS="ignore", **extra)
    return env


def run_size(n: int, home: Path, out: dict, after=lambda: None) -> dict[str, dict]:
    "Every stage at `n` coins in `home`, into `out`; `after()` once each stage is done."
    env = bench_env(home, HUNDRED_COINS[:n])
    for step in STAGES:
        params = {"pdf": "false", "out_dir": home / "report"} if step == "report" else None
        out[step] = run_stage(step, env, params)
        print(f"  {n} coins {step}: {out[step]['wall_s']:.1f} s, {out[step]['peak_mb']:.0f} MB PSS "
              f"({out[step]['peak_rss_mb']:.0f} MB summed RSS)", flush=True)
        after()
    return out


def dask_check(home10: Path, local: dict[str, dict]) -> dict:
    "Train again on the 10-coin store on a Dask LocalCluster (through the environment variable); compare the models."
    from dask.distributed import LocalCluster
    home = home10.with_name(home10.name + "-dask")
    shutil.copytree(home10 / "data", home / "data")
    diffs, timing = [], {}
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None) as cluster:
        env = bench_env(home, HUNDRED_COINS[:10], CRYPTOPRED_DASK_SCHEDULER=cluster.scheduler_address)
        for step in ("train_forecaster", "train_classifier"):
            got = run_stage(step, env)
            timing[step] = got["wall_s"]
            if got["metrics"].get("backend") != "dask": diffs.append(f"{step}: ran on {got['metrics'].get('backend')}")
            for key in SAME:
                a, b = local[step]["metrics"].get(key), got["metrics"].get(key)
                if a != b: diffs.append(f"{step}.{key} differs")
    shutil.rmtree(home, ignore_errors=True)
    return {"identical": not diffs, "differences": diffs, "wall_s": timing}


def table(sizes: list[int], results: dict, dask: dict | None) -> list[dict]:
    "The rows: each stage at each size (the goal on the largest), the whole pipeline per size, the Dask comparison."
    ref, big, rows = sizes[0], max(results), []
    for n in sorted(results):
        res = results[n]
        for step in STAGES:
            if step not in res: continue
            r, base = res[step], results[ref].get(step)
            ratio = (r["wall_s"] / n) / (base["wall_s"] / ref) if base else None
            last = n == big and n != ref and ratio is not None
            rows.append(row(f"{step} @ {n} coins", f"simulated, {n} coins × {DAYS} d daily, budget {BUDGET}",
                            {"time_median_s": r["wall_s"], "runs": 1, "peak_memory_mb": r["peak_mb"]},
                            goal=f"per coin ≤ {GOAL_RATIO}× that at {ref}" if last else None,
                            met=bool(ratio <= GOAL_RATIO) if last else None,
                            notes=f"{r['wall_s'] / n:.2f} s per coin"
                            + (f" ({ratio:.2f}× that at {ref} coins)" if ratio else "")
                            + (f"; memory: PSS, {r['peak_rss_mb']:,.0f} MB as summed RSS" if "peak_rss_mb" in r else "")))
        if all(s in res for s in STAGES):
            total, peak = sum(res[s]["wall_s"] for s in STAGES), max(res[s]["peak_mb"] for s in STAGES)
            rows.append(row(f"pipeline @ {n} coins", f"the {len(STAGES)} stages one after the other",
                            {"time_median_s": total, "runs": 1, "peak_memory_mb": peak},
                            goal="≤ 600 s and < 2 GB" if n == 100 else None,
                            met=bool(total <= GOAL_TOTAL_S and peak < GOAL_MB) if n == 100 else None,
                            notes=f"{total / n:.2f} s per coin"))
    if dask is not None:
        rows.append(row("dask LocalCluster @ 10 coins", "train_forecaster + train_classifier with CRYPTOPRED_DASK_SCHEDULER",
                        {"time_median_s": sum(dask["wall_s"].values()) or 0.0, "runs": 1, "peak_memory_mb": None},
                        goal="identical models", met=dask["identical"],
                        notes="; ".join(dask["differences"]) or "params, holdout scores and data hashes equal per coin"))
    return rows


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--coins", default="10,100,30", help="market sizes in the order run (the first is the reference)")
    ap.add_argument("--no-dask", action="store_true", help="skip the Dask LocalCluster comparison")
    a = ap.parse_args(argv)
    sizes = [int(x) for x in a.coins.split(",")]
    load0, t0 = os.getloadavg(), time.perf_counter()
    root = Path(tempfile.mkdtemp(prefix="bench-scale-"))
    results, dask, failures = {}, None, []
    def record():  # after every stage, so a run cut short still leaves what it measured
        details = {"load_average_start": [round(x, 2) for x in load0], "load_average_now": [round(x, 2) for x in os.getloadavg()],
                   "wall_s": round(time.perf_counter() - t0, 1), "dask": dask, "sizes_run": sorted(results), "failures": failures,
                   "stages": {str(n): {s: {k: v for k, v in r.items() if k != "metrics"} for s, r in res.items()}
                              for n, res in results.items()}}
        write_result("scale", table(sizes, results, dask), details=details)
    for n in sizes:
        print(f"== {n} coins", flush=True)
        results[n] = {}
        try: run_size(n, root / f"coins{n}", results[n], record)
        except SystemExit as e: print(f"{n} coins stopped: {e}", flush=True); failures.append(f"{n} coins: {str(e)[:300]}")
        record()
        if n == max(sizes) and 10 in results and not a.no_dask:
            try:
                import dask.distributed  # noqa: F401
                dask = dask_check(root / "coins10", results[10])
            except ImportError: dask = {"identical": None, "differences": ["dask is not installed"], "wall_s": {}}
            record()
    shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
