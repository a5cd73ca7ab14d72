"""How fast the web page is for a person (not part of `make test`): the app exactly as `cryptopred serve` runs it, on
the served default (`make run`'s: five simulated coins, 365 days, a champion classifier and forecaster each), driven
by Debian's headless Chromium on 127.0.0.1. Writes reports/benchmarks/ui.json.

Measured, each a median over several runs:
- **page interactive**: from the navigation's start to the first screen a person came for: the prediction shown
  (`#cp-prob` has its percentage) and the price chart drawn (plotly's SVG with its title), in a fresh browser context
  (nothing cached), at desktop (1360 px) and phone (390 px) width; also a reload in a warm context;
- **coin switch**: from choosing another coin (a click on its button; with many coins, its option in the dropdown)
  to every panel of the coin tab showing it: the prediction panel names the coin and the chart's title is the new
  coin's.

Goals (issue 11): page interactive <= 1.5 s, coin switch <= 300 ms. Bounded: every wait times out after 30 s."""
from __future__ import annotations

import statistics
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
sys.path.insert(0, str(HERE))
from bench_serve import start_server  # noqa: E402
from benchutil import row, write_result  # noqa: E402
from support.browser import CHROMIUM, CHROMIUM_ARGS, coin_choice  # noqa: E402
from support.fakes import free_port  # noqa: E402
from support.homes import make_champions, serve_settings  # noqa: E402

from cryptopred.common import coin_label  # noqa: E402
from cryptopred.config import Settings  # noqa: E402

COINS = tuple(Settings().coins)  # the served default's coins
DAYS = 365
LOADS, SWITCHES = 5, 10
GOAL_LOAD_S, GOAL_SWITCH_S = 1.5, 0.3
FIRST_SCREEN = ("() => { const p = document.querySelector('#cp-prob'); const t = document.querySelector('#cp-chart .gtitle');"
                " return !!(p && /%/.test(p.textContent) && t && t.textContent.length); }")


def first_screen(page, url: str) -> float:
    "Seconds from the navigation's start to the prediction and the chart on screen."
    t0 = time.perf_counter()
    page.goto(url + "/", wait_until="commit")
    page.wait_for_function(FIRST_SCREEN, timeout=30_000, polling="raf")
    return time.perf_counter() - t0


def switch(page, coin: str) -> float:
    "Seconds from choosing `coin` (its button, or its option in the dropdown) to the panel and the chart title showing it."
    label = coin_label(coin)
    choice = coin_choice(page, label)  # a button, or the option of the opened dropdown
    t0 = time.perf_counter()
    choice.click()
    page.wait_for_function(
        "(l) => document.querySelector('#cp-prediction').textContent.includes(l)"
        " && (document.querySelector('#cp-chart .gtitle') || {textContent: ''}).textContent.startsWith(l)",
        arg=label, timeout=30_000, polling="raf")
    return time.perf_counter() - t0


def stats(times: list[float]) -> dict:
    return {"time_median_s": statistics.median(times), "runs": len(times), "peak_memory_mb": None, "times_s": times}


def spread(times: list[float]) -> str:
    return f"min {min(times) * 1000:.0f} ms, max {max(times) * 1000:.0f} ms"


def main() -> None:
    from playwright.sync_api import sync_playwright
    with tempfile.TemporaryDirectory(prefix="bench-ui-") as d:
        s = serve_settings(Path(d) / "home", coins=COINS)
        make_champions(s, days=DAYS)
        port = free_port()
        proc = start_server(s.home, port, coins=COINS)
        url = f"http://127.0.0.1:{port}"
        try:
            with sync_playwright() as p:
                browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
                cold = {}
                for name, width, height in (("desktop", 1360, 1000), ("phone", 390, 844)):
                    first_screen(browser.new_page(viewport={"width": width, "height": height}), url)  # warm the server
                    times = []
                    for _ in range(LOADS):
                        ctx = browser.new_context(viewport={"width": width, "height": height})
                        times.append(first_screen(ctx.new_page(), url))
                        ctx.close()
                    cold[name] = times
                page = browser.new_page(viewport={"width": 1360, "height": 1000})
                first_screen(page, url)
                warm = [first_screen(page, url) for _ in range(LOADS)]  # a reload: scripts and fonts cached
                switches = [switch(page, COINS[(i + 1) % len(COINS)]) for i in range(SWITCHES)]
                browser.close()
        finally:
            proc.terminate(); proc.wait(30)
    home = f"{len(COINS)} simulated coins × {DAYS} d, champions per coin"
    def timed(workload, times, goal_s):
        goal = f"≤ {goal_s:g} s" if goal_s >= 1 else f"≤ {goal_s * 1000:.0f} ms"
        return row("ui", workload, stats(times), goal=goal, met=statistics.median(times) <= goal_s, notes=spread(times))
    rows = [timed(f"page interactive, desktop 1360 px, fresh context ({home})", cold["desktop"], GOAL_LOAD_S),
            timed(f"page interactive, phone 390 px, fresh context ({home})", cold["phone"], GOAL_LOAD_S),
            timed("page interactive, desktop, reload in a warm context (scripts cached)", warm, GOAL_LOAD_S),
            timed("coin switch: a coin button clicked → prediction panel and chart show the coin", switches, GOAL_SWITCH_S)]
    for r in rows: print(f"{r['workload']}: {r['time_median_s'] * 1000:.0f} ms ({r['notes']}) met={r['met']}")
    write_result("ui", rows)


if __name__ == "__main__":
    main()
