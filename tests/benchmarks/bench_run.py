"""Benchmark: `make run` from a set-up venv to a served app -> reports/benchmarks/run.json.

Runs what `make run` runs (`cryptopred pipeline --budget $TRAIN_BUDGET --serve`) in a fresh home on the simulated
default market (5 coins, 365 daily rows each, the `auto` source falling back offline), with the report written to a
temporary folder, and measures the wall time from launching the command to the line that prints the served URL
(printed by uvicorn's start-up hook, once the app accepts connections). It then checks the app answers
`GET /readyz`, stops it with Ctrl-C (SIGINT) and records the time of each step from the pipeline's output.
Goal: <= 3 minutes on this 2-core machine. One run (it takes minutes); no assertions.

Run `python tests/benchmarks/bench_run.py` (or `make bench ARGS="-k run"`).
"""
from __future__ import annotations

import os
import re
import resource
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
sys.path[:0] = [str(HERE)]

from benchutil import row, write_result  # noqa: E402

GOAL_S = 180.0


def train_budget() -> int:
    "The budget `make run` passes (the Makefile's TRAIN_BUDGET)."
    line = next(ln for ln in (REPO / "Makefile").read_text().splitlines() if ln.startswith("TRAIN_BUDGET"))
    return int(line.split("=")[-1].strip())


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def main() -> None:
    budget, port = train_budget(), free_port()
    home = Path(tempfile.mkdtemp(prefix="bench-run-"))
    env = {k: v for k, v in os.environ.items() if not k.startswith(("CRYPTOPRED_", "COINGECKO_"))}
    env.update(CRYPTOPRED_HOME=str(home), GRADIO_ANALYTICS_ENABLED="False", HF_HUB_OFFLINE="1",
               WHYLOGS_NO_ANALYTICS="1", MPLBACKEND="Agg", PYTHONWARNINGS="ignore::DeprecationWarning")
    cli = Path(sys.executable).with_name("cryptopred")
    cmd = [str(cli), "pipeline", "--budget", str(budget), "--serve", "--port", str(port),
           "--out-dir", str(home / "report")]
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, cwd=REPO)
    lines, served = [], None
    for line in proc.stdout:
        print(line, end="", flush=True)
        lines.append(line)
        if line.startswith("serving http"):
            served = time.perf_counter() - t0
            break
    if served is None:
        proc.wait()
        raise SystemExit(f"make run did not serve (exit {proc.returncode}):\n{''.join(lines[-20:])}")
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=30) as r:
        ready = r.status
    proc.send_signal(signal.SIGINT)
    proc.communicate(timeout=60)
    steps = dict(re.findall(r"^(\w+): succeeded in ([0-9.]+) s", "".join(lines), re.M))
    pages = re.search(r"\((\d+) pages\)", "".join(lines))
    rss = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss * 1024 / 1e6
    notes = ("steps: " + ", ".join(f"{k} {float(v):.0f} s" for k, v in steps.items())
             + f"; GET /readyz {ready}" + (f"; report {pages.group(1)} pages" if pages else "")
             + "; peak memory: the largest process's RSS (a papermill kernel or the app)")
    write_result("run", [row("make run", f"set-up venv to served app: 5 simulated coins × 365 d daily, budget {budget} "
                                         f"(ingest, profile, train ×2, monitor, report with PDF, serve)",
                             {"time_median_s": served, "runs": 1, "peak_memory_mb": rss},
                             goal="≤ 180 s", met=served <= GOAL_S, notes=notes)])
    shutil.rmtree(home, ignore_errors=True)


if __name__ == "__main__":
    main()
