"""Benchmark: building the technical report from a complete set of synthetic runs (Markdown + HTML, then the PDF)."""
from __future__ import annotations

import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # tests/, for report_helpers

from benchutil import measure, row, write_result  # noqa: E402
from report_helpers import make_benchmarks, make_extras, make_full_runs, make_library_notebooks  # noqa: E402

from cryptopred.config import load_settings  # noqa: E402
from cryptopred.report import build_report, find_browser, html_to_pdf  # noqa: E402


def main() -> None:
    with tempfile.TemporaryDirectory(prefix="bench-report-") as d:
        d = Path(d)
        settings = load_settings(environ={}, env_file=None, home=d / "home")
        make_full_runs(settings)
        nbs, bench = make_library_notebooks(d / "nbs"), make_benchmarks(d / "bench")
        shot, real = make_extras(d / "extras")
        kw = dict(nbs_dir=nbs, bench_dir=bench, screenshot=shot, real_data_md=real)
        build = lambda: build_report(settings, out_dir=d / "out", pdf=False, **kw)
        res = build()
        assert not res.problems, res.problems
        workload = "Markdown + HTML from a full synthetic run set (5 steps, 2 coins)"
        rows = [row("report", workload, measure(build, repeat=5), goal="≤ 5 s", met=None)]
        rows[0]["met"] = rows[0]["time_median_s"] <= 5
        if find_browser():
            pdf = measure(lambda: html_to_pdf(res.html, d / "out" / "report.pdf"), repeat=3, memory=False)
            rows.append(row("report", "HTML → PDF by headless Chromium", pdf, goal="≤ 10 s",
                            met=pdf["time_median_s"] <= 10, notes="Chromium's memory is not measured"))
        write_result("report", rows)


if __name__ == "__main__":
    main()
