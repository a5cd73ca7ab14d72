"""`make bench`: run every `tests/benchmarks/bench_*.py` in its own process, then assemble `reports/benchmarks.md`.

Each script writes its results with `benchutil.write_result` into `$BENCH_RESULTS_DIR` (set here). A script that
fails is reported and makes the exit status non-zero; the table is assembled from whatever results exist.
"""
from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="run_all.py", description=__doc__.splitlines()[0])
    ap.add_argument("-k", dest="only", default="", help="run only the benchmarks whose file name contains this")
    ap.add_argument("--bench-dir", type=Path, default=HERE, help="where the bench_*.py scripts are")
    ap.add_argument("--results", type=Path, default=REPO / "reports" / "benchmarks", help="folder of the JSON results")
    ap.add_argument("--table", type=Path, default=REPO / "reports" / "benchmarks.md", help="the Markdown table")
    ap.add_argument("--timeout", type=float, default=1800.0, help="seconds one benchmark may take")
    a = ap.parse_args(argv)
    from cryptopred.report.bench import write_benchmarks_md

    scripts = sorted(p for p in a.bench_dir.glob("bench_*.py") if a.only in p.name)
    if not scripts:
        print(f"no benchmark scripts bench_*.py{' matching ' + repr(a.only) if a.only else ''} in {a.bench_dir}",
              file=sys.stderr)
        return 2
    env = {**os.environ, "BENCH_RESULTS_DIR": str(a.results.resolve()), "MPLBACKEND": "Agg",
           "PYTHONPATH": os.pathsep.join(filter(None, [str(HERE), os.environ.get("PYTHONPATH")]))}
    failed = []
    for script in scripts:
        print(f"== {script.name}", flush=True)
        t0 = time.perf_counter()
        try:
            rc = subprocess.run([sys.executable, str(script)], env=env, timeout=a.timeout).returncode
        except subprocess.TimeoutExpired:
            rc = f"timed out after {a.timeout:.0f} s"
        if rc != 0: failed.append(f"{script.name}: {rc if isinstance(rc, str) else f'exit status {rc}'}")
        print(f"   {script.name}: {'ok' if rc == 0 else 'FAILED'} in {time.perf_counter() - t0:.1f} s", flush=True)
    print(f"wrote {write_benchmarks_md(a.results, a.table)}")
    if failed:
        print("failed benchmarks:\n  " + "\n  ".join(failed), file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
