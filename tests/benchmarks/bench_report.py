"""Benchmark: building the technical report (Markdown + HTML, then the PDF) from a small simulated run of the real
run-books (`make pipeline` on two coins, as `tests/test_report.py` runs it) -> reports/benchmarks/report.json."""
from __future__ import annotations

import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # tests/, for support.runs

from benchutil import measure, row, write_result  # noqa: E402
from support.runs import small_pipeline  # noqa: E402

from cryptopred.report.build import build_report  # noqa: E402
from cryptopred.report.render import find_browser, html_to_pdf  # noqa: E402


def main() -> None:
    with tempfile.TemporaryDirectory(prefix="bench-report-") as d:
        d = Path(d)
        settings, res = small_pipeline(d / "home", d / "pipeline-report", pdf=False)
        if not res.ok: raise SystemExit(f"the small pipeline failed at {res.failed.step}: {res.failed.error}")
        build = lambda: build_report(settings, out_dir=d / "out", pdf=False)
        rep = build()
        if rep.problems: raise SystemExit("the report has problems:\n" + "\n".join(rep.problems))
        stats = measure(build, repeat=5)
        rows = [row("report", f"Markdown + HTML + notebook from a simulated pipeline run (2 coins, {len(rep.citations)} "
                              f"cited numbers, figures compacted)", stats, goal="≤ 5 s", met=stats["time_median_s"] <= 5)]
        if find_browser():
            pdf = measure(lambda: html_to_pdf(rep.html, d / "out" / "report.pdf"), repeat=3, memory=False)
            rows.append(row("report", "HTML → PDF by headless Chromium", pdf, goal="≤ 10 s",
                            met=pdf["time_median_s"] <= 10, notes="Chromium's memory is not measured"))
        write_result("report", rows)


if __name__ == "__main__":
    main()
