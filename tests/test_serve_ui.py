"""The web UI: headless Chromium (Debian's, driven by playwright) opens the page, switches coins, hovers the chart,
shrinks to a phone and signs in with the token; `gradio_client` calls the named events. The app runs under uvicorn on
a random loopback port; one browser serves the module."""
from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from urllib.parse import urlparse

import httpx
import pandas as pd
import pytest
from pydantic import SecretStr
from support.browser import CHROMIUM, CHROMIUM_ARGS, coin_choice
from support.fakes import live_server, parse_metrics
from support.homes import HUNDRED_COINS, registry_of

from cryptopred.common import coin_label, save_figure, utcnow, write_json
from cryptopred.data.store import Store
from cryptopred.features import build_panel
from cryptopred.monitor.alerts import raise_alert
from cryptopred.monitor.checks import drift_row
from cryptopred.monitor.drift import data_drift, drift_figure
from cryptopred.monitor.predictions import PredictionLog, read_predictions
from cryptopred.monitor.profiles import profile_frame
from cryptopred.runs import write_metrics
from cryptopred.serve.app import create_app
from cryptopred.serve.ui import PAGE_OUTPUTS

# `make screenshot` sets CRYPTOPRED_SCREENSHOT=reports/figures/frontend.png (the coin view the technical report shows)
# and the tests save frontend_overview/_track_record/_model_card/_monitoring/_phone.png beside it; a plain test run
# takes no pictures and leaves the checkout untouched.
SCREENSHOT_ENV = "CRYPTOPRED_SCREENSHOT"
SCREENSHOT = os.environ.get(SCREENSHOT_ENV)  # read at import: every test's environment is stripped of CRYPTOPRED_*


def monitor_run(settings, drift: dict[str, str]) -> Path:
    """A succeeded `monitor` run folder as the monitor run-book leaves it: metrics.json with drift per coin (`drift_row`)
    and the whole report (`drift_detail`), drift_<coin>.png."""
    run = settings.runs_dir / f"{utcnow():%Y%m%dT%H%M%SZ}_monitor"
    run.mkdir(parents=True)
    frames = {c: Store(settings).read(c, settings.granularity, "simulated") for c in settings.coins}
    panel = build_panel(frames, settings.granularity, settings=settings)
    rows, detail = {}, {}
    for coin, fe in panel.items():
        cols = ["ret_lag_1", "vol_7", "rsi_14", "bb_pctb"]
        ref, cur = fe[fe["usable"]][cols].iloc[:-60], fe[fe["usable"]][cols].iloc[-60:]
        if drift[coin] == "DRIFT": cur = cur * 3
        report = data_drift(profile_frame(ref), profile_frame(cur), settings)
        assert report.status == drift[coin], (coin, report.status)
        save_figure(run, drift_figure(report), f"drift_{coin}.png")
        rows[coin], detail[coin] = drift_row(report), report.to_dict()
    write_metrics(run, {"drift": rows, "drift_detail": detail})
    now = utcnow().isoformat()
    write_json(run / "status.json", {"step": "monitor", "status": "succeeded", "started_at": now, "finished_at": now,
                                     "parameters": {}})
    return run


def past_predictions(settings, coin: str, days: int = 45) -> int:
    "Log what the champion classifier would have said on each of the last `days` days (resolvable against the store)."
    loaded = registry_of(settings).load("classifier", coin, settings.granularity)
    frames = {c: Store(settings).read(c, settings.granularity, "simulated") for c in settings.coins}
    fe = build_panel(frames, settings.granularity, settings=settings)[coin]
    rows = fe[fe["usable"]].iloc[-days - 1:-1]
    probs = loaded.model.predict_proba(rows)
    with PredictionLog(settings) as log:
        for (ts, row), p in zip(rows.iterrows(), probs):
            log.append({"served_at": ts + pd.Timedelta(minutes=5), "coin": coin, "granularity": settings.granularity,
                        "as_of": ts, "horizon": 1, "target_time": ts + pd.Timedelta(days=1), "prob_up": float(p),
                        "direction": "up" if p >= 0.5 else "down", "classifier_version": loaded.version,
                        "forecaster_version": "v0001-20250101T000000Z", "price": float(row["price"]),
                        "source": "simulated", "latency_ms": 1.0, "channel": "api"})
    return len(rows)


@pytest.fixture(scope="module")
def ui_server(served_home):
    "The full app (API + UI) on a home that also holds a monitor run, an alert and a month and a half of predictions."
    monitor_run(served_home, {"bitcoin": "NO_DRIFT", "ethereum": "DRIFT"})
    raise_alert(served_home, "warning", "data_drift", "ethereum", "ethereum: DRIFT on 4 features", {"features": 4})
    past_predictions(served_home, "bitcoin")
    app = create_app(served_home)
    with live_server(app) as url:
        yield url, app


def _browser_or_skip():
    if shutil.which("chromium") or Path(CHROMIUM).exists(): return
    if os.environ.get("CRYPTOPRED_REQUIRE_BROWSER") == "1":
        pytest.fail(f"CRYPTOPRED_REQUIRE_BROWSER=1 but {CHROMIUM} is missing (apt-get install -y chromium)")
    pytest.skip(f"no Chromium at {CHROMIUM} (apt-get install -y chromium; CI installs it and requires this test)")


@pytest.fixture(scope="module")
def browser():
    "One headless Chromium for the module's browser tests."
    _browser_or_skip()
    from playwright.sync_api import sync_playwright
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        try: yield b
        finally: b.close()


def shoot(page, name: str) -> None:
    "Save a full-page picture beside CRYPTOPRED_SCREENSHOT (`make screenshot`); nothing in a plain run."
    if not SCREENSHOT: return
    path = Path(SCREENSHOT) if name == "frontend" else Path(SCREENSHOT).with_name(f"{name}.png")
    path.parent.mkdir(parents=True, exist_ok=True)
    page.wait_for_timeout(300)  # let plotly finish painting
    page.screenshot(path=str(path), full_page=True)


def open_page(browser, url: str, width: int = 1360, height: int = 1000):
    """A page on the app, its first screen loaded (the prediction panel and the chart drawn); (page, problems): every
    request outside 127.0.0.1, every answer >= 400 and every console error, as they happen."""
    page = browser.new_page(viewport={"width": width, "height": height}, device_scale_factor=1)
    outside: list[str] = []
    def watch(req):
        u = urlparse(req.url)
        if u.scheme not in ("data", "blob", "about") and u.hostname not in ("127.0.0.1", "localhost"): outside.append(req.url)
    page.on("request", watch)
    page.on("response", lambda r: outside.append(f"{r.status} {r.url}") if r.status >= 400 else None)
    page.on("console", lambda m: outside.append(f"console {m.type}: {m.text}") if m.type == "error" else None)
    page.set_default_timeout(30_000)
    page.goto(url + "/")
    page.wait_for_selector("#cp-prob")
    page.wait_for_selector("#cp-chart .js-plotly-plot .main-svg")
    return page, outside


TAB_LABELS = {"overview": "Overview", "coin": "Coin", "track": "Track record", "card": "Model card", "monitoring": "Monitoring"}
PICTURES = {"track": "frontend_track_record", "card": "frontend_model_card", "monitoring": "frontend_monitoring"}


def tab(page, name: str) -> None:
    "Open a tab (on a phone the tabs that do not fit are behind Gradio's overflow menu)."
    button = page.locator(f"#cp-tab-{name}-button")
    if not button.is_visible():
        page.locator(".overflow-menu button, button.overflow-menu").first.click()
        button = page.locator(".overflow-dropdown button", has_text=TAB_LABELS[name])
    button.click()


OVERFLOWING_FIGURES = """() => [...document.querySelectorAll('.js-plotly-plot')].filter(p => p.offsetParent).map(p => {
    const svg = p.querySelector('.main-svg'), box = p.closest('.block') || p.parentElement;
    return [box.id, Math.round(svg.getBoundingClientRect().width), Math.round(box.getBoundingClientRect().width)];
}).filter(([id, w, c]) => w > c + 1)"""


CHART_CONTROLS = """() => [...document.querySelectorAll('#cp-chart .updatemenu-button, #cp-chart .updatemenu-header')]
    .map(e => { const r = e.getBoundingClientRect(); return [e.textContent, r.left, r.right, r.top, r.bottom]; })
    .filter(([t, l, r, top, b]) => r > l && b > top)"""


def overlapping_controls(page) -> list:
    "Pairs of the chart's range buttons and scale menu drawn over each other (text of both); empty when none overlap."
    boxes = page.evaluate(CHART_CONTROLS)
    return [(a[0], b[0]) for i, a in enumerate(boxes) for b in boxes[i + 1:]
            if a[1] < b[2] - 1 and b[1] < a[2] - 1 and a[3] < b[4] - 1 and b[3] < a[4] - 1]


def figures_fit(page) -> list:
    "The open tab's figures drawn wider than their box ([id, figure px, box px]); empty when every figure fits."
    page.wait_for_timeout(250)  # the resize after a tab opens is debounced by plotly
    return page.evaluate(OVERFLOWING_FIGURES)


def panels(page) -> dict[str, str]:
    "The text of every coin panel, opening each tab in turn (Gradio draws only the open tab), back on the coin tab."
    out = {"panel": page.locator("#cp-prediction").inner_text(), "chart": page.locator("#cp-chart .gtitle").text_content()}
    for name, sel in (("track", "#cp-track"), ("card", "#cp-card"), ("monitoring", "#cp-monitoring")):
        tab(page, name)
        out[name] = page.locator(sel).inner_text()
    tab(page, "coin")
    page.wait_for_selector("#cp-prob")
    return out


@pytest.mark.browser
def test_browser_first_screen_switch_hover_and_overview(ui_server, browser):
    "The page opens on bitcoin's prediction; choosing ethereum changes every panel; the chart hovers; a row opens a coin."
    url, _ = ui_server
    api = {c: httpx.post(url + "/api/v1/predict", json={"coin": c}, timeout=30).json() for c in ("bitcoin", "ethereum")}
    page, outside = open_page(browser, url)
    try:
        first = panels(page)
        assert page.locator("#cp-prob").inner_text() == f"{api['bitcoin']['prob_up']:.1%}"
        assert all("Bitcoin (BTC)" in t for t in first.values()), first
        # the fixture's models lose to the best naive baseline: the neutral verdict, no colour, no arrow, the reason
        assert api["bitcoin"]["verdict"] == "no clear signal"
        assert page.locator("#cp-verdict").inner_text() == "no clear signal"
        assert "cp-neutral" in (page.locator("#cp-prob").get_attribute("class") or "")
        assert "▲" not in first["panel"] and "▼" not in first["panel"]
        assert "did not beat the best naive baseline" in first["panel"]
        assert "Size of the move by" in first["panel"]
        assert "SIMULATED DATA" in page.locator("#cp-banner").inner_text()
        shoot(page, "frontend")  # before the hover: the README's picture shows the chart, not a tooltip
        # hover: the date and the price with thousands separators
        box = page.locator("#cp-chart .nsewdrag").first.bounding_box()
        page.mouse.move(box["x"] + box["width"] * 0.6, box["y"] + box["height"] * 0.5)
        hover = page.locator("#cp-chart .hoverlayer").first
        page.wait_for_function("document.querySelector('#cp-chart .hoverlayer').textContent.includes('price')")
        text = hover.text_content()
        assert re.search(r"\d{4}-\d{2}-\d{2}", text) and re.search(r"price \d{1,3}(,\d{3})+\.\d{2} USD", text), text
        assert page.locator("#cp-chart .legendtext", has_text="served, right").count() >= 1  # past predictions marked

        coin_choice(page, "Ethereum (ETH)").click()
        page.wait_for_function("document.querySelector('#cp-prediction').textContent.includes('Ethereum (ETH)')")
        now = panels(page)
        assert all("Ethereum (ETH)" in t and "Bitcoin (BTC)" not in t for k, t in now.items() if k != "monitoring"), now
        assert "Ethereum (ETH): monitoring" in now["monitoring"]
        assert page.locator("#cp-prob").inner_text() == f"{api['ethereum']['prob_up']:.1%}"

        tab(page, "overview")
        table = page.locator("#cp-overview")
        table.locator(".cell-wrap span:visible", has_text="Ethereum (ETH)").first.wait_for()
        text = table.inner_text()
        assert "Bitcoin (BTC)" in text and re.search(r"\d{1,3}(,\d{3})+\.\d{2}", text) and "no clear signal" in text
        shoot(page, "frontend_overview")
        table.locator(".cell-wrap span:visible", has_text="Bitcoin (BTC)").first.click()  # bitcoin's row opens bitcoin
        page.wait_for_function("document.querySelector('#cp-prediction').textContent.includes('Bitcoin (BTC)')")
        assert page.locator("#cp-tab-coin-button").get_attribute("aria-selected") == "true"
        for name in ("track", "card", "monitoring"):
            tab(page, name)
            assert figures_fit(page) == [], name  # a figure first drawn in a hidden tab takes its box's width
            shoot(page, PICTURES[name])
        # the footer: the documented JSON API, rendered without the internet (no Gradio "Use via API" page)
        assert page.locator("text=Use via API").count() == 0
        page.locator("#cp-footer a", has_text="API reference").click()
        page.wait_for_url("**/docs")
        assert page.locator("h1").inner_text().startswith("cryptopred JSON API")
        assert page.locator("section#post-api-v1-predict").is_visible() and page.locator("#schema-PredictResponse").count() == 1
    finally:
        page.close()
    assert not outside, f"requests outside 127.0.0.1, failed answers or console errors: {outside}"


@pytest.mark.browser
def test_browser_phone_has_no_horizontal_scroll(ui_server, browser):
    "At 390 px the layout stacks, the chart keeps the width and nothing scrolls sideways, on every tab."
    page, _ = open_page(browser, ui_server[0], 390, 844)
    try:
        chart = page.locator("#cp-chart .js-plotly-plot").bounding_box()
        panel = page.locator("#cp-prediction").bounding_box()
        assert chart["width"] > 300 and chart["y"] > panel["y"] + panel["height"] - 1  # stacked, full width
        widths = {"coin": page.evaluate("document.documentElement.scrollWidth")}
        shoot(page, "frontend_phone")
        overflow = {"coin": figures_fit(page)}
        assert len(page.evaluate(CHART_CONTROLS)) >= 6  # 7D 1M 3M 1Y All and the log toggle
        assert overlapping_controls(page) == []  # every range button visible beside the log toggle
        for name in ("overview", "track", "monitoring"):
            tab(page, name)
            overflow[name] = figures_fit(page)
            widths[name] = page.evaluate("document.documentElement.scrollWidth")
        label = page.locator("#cp-coin .label, #cp-coin [data-testid='block-info']").first.bounding_box()
        assert label is None or label["x"] + label["width"] <= 390
    finally:
        page.close()
    assert all(w <= 390 for w in widths.values()), widths
    assert not any(overflow.values()), overflow  # every figure fits its box at phone width


@pytest.mark.browser
def test_browser_signs_in_with_the_token(served_home, browser):
    "With CRYPTOPRED_API_TOKEN set the page is a sign-in form; the token opens the UI, which then predicts."
    token = "browser-t0ken"
    app = create_app(served_home.model_copy(update={"api_token": SecretStr(token)}))
    with live_server(app) as url:
        page = browser.new_page()
        page.set_default_timeout(30_000)
        try:
            page.goto(url + "/")
            page.fill("#token", "wrong")
            page.click("button[type=submit]")
            assert "not the access token" in page.inner_text("body")
            page.fill("#token", token)
            page.click("button[type=submit]")
            page.wait_for_selector("#cp-prob")
            assert "Bitcoin (BTC)" in page.locator("#cp-prediction").inner_text()
        finally:
            page.close()


def test_gradio_client_calls_the_named_events(ui_server):
    url, app = ui_server
    home = app.state.serving.settings
    from gradio_client import Client
    client = Client(url + "/", verbose=False)
    names = set(client.view_api(print_info=False, return_format="dict")["named_endpoints"])
    assert names == {"/load", "/view"}

    out = dict(zip(PAGE_OUTPUTS, client.predict("ethereum", 14, api_name="/view")))
    assert "SIMULATED DATA" in out["banner"] and 'id="cp-prob"' in out["panel"]
    assert all("Ethereum (ETH)" in out[k] for k in ("panel", "track", "card", "monitoring"))
    assert out["chart"] is not None
    v = registry_of(home).champion_version("classifier", "ethereum", "daily")
    assert v in out["card"] and v in out["monitoring"]
    assert "**⚠ Drift** for Ethereum (ETH): 4 features moved away from the training data" in out["monitoring"]
    assert out["monitoring_figure"] is not None  # the drift bars
    assert [r[0] for r in out["overview"]["data"]] == ["Bitcoin (BTC)", "Ethereum (ETH)"]

    bitcoin = dict(zip(PAGE_OUTPUTS, client.predict("bitcoin", 30, api_name="/load")))
    assert "**No drift**: Bitcoin (BTC)'s recent features" in bitcoin["monitoring"]
    assert bitcoin["track_figure"] is not None, bitcoin["track"]  # 45 resolved predictions: the hit-rate figure
    assert bitcoin["calibration"] is not None and "45 resolved" in bitcoin["track"]
    m = parse_metrics(httpx.get(url + "/metrics", timeout=30).text)
    events = sum(v for k, v in m.items() if k[0] == "cryptopred_http_requests_total" and dict(k[1])["route"] == "gradio_api")
    timed = sum(v for k, v in m.items() if k[0] == "cryptopred_http_request_duration_seconds_count"
                and dict(k[1])["route"] == "gradio_api")
    assert events > timed > 0  # Gradio's event streams are counted, not timed (they last as long as the job)
    assert app.state.serving.flush_log(timeout=30)
    assert (read_predictions(home)["channel"] == "ui").sum() >= 2  # the page's predictions are logged like API calls


def test_ui_login_when_credentials_are_set(ui_server):
    "CRYPTOPRED_UI_USERNAME/PASSWORD put Gradio's login in front of the UI and its API; the JSON API is unaffected."
    from gradio_client import Client
    home = ui_server[1].state.serving.settings
    s = home.model_copy(update={"ui_username": "ana", "ui_password": SecretStr("pw-123")})
    with live_server(create_app(s)) as url, httpx.Client(base_url=url, timeout=30) as c:
        assert c.get("/config").status_code == 401 and c.get("/gradio_api/info").status_code == 401
        assert c.post("/login", data={"username": "ana", "password": "wrong"}).status_code == 400
        assert c.post("/login", data={"username": "ana", "password": "pw-123"}).json() == {"success": True}
        assert c.get("/config").status_code == 200 and "pw-123" not in c.get("/config").text
        assert c.get("/api/v1/coins").status_code == 200
        out = Client(url + "/", auth=("ana", "pw-123"), verbose=False).predict("bitcoin", 30, api_name="/view")
        assert "Bitcoin (BTC)" in out[1]


GRADIO_PROBE = """
import sys
from cryptopred.serve.ui import import_gradio
gr = import_gradio()
import gradio.component_meta as meta
with gr.Blocks() as demo:
    gr.Dropdown(["a", "b"], value="a"); gr.Plot(); gr.Dataframe()
print(meta.create_or_modify_pyi.__name__, any(type(f).__name__ == "_NoStubWriting" for f in sys.meta_path), len(demo.blocks))
"""


def test_gradio_is_imported_without_rewriting_its_stubs_and_still_builds_blocks():
    """`import_gradio` turns off Gradio's stub writer (2.3 s of every import), steps out of the import system after
    one use, and the components still build."""
    p = subprocess.run([sys.executable, "-c", GRADIO_PROBE], capture_output=True, text=True, timeout=120,
                       env={**os.environ, "GRADIO_ANALYTICS_ENABLED": "False", "HF_HUB_OFFLINE": "1"})
    assert p.returncode == 0, p.stderr
    name, finder_left, blocks = p.stdout.split()
    assert (name, finder_left) == ("<lambda>", "False") and int(blocks) >= 3, p.stdout


@pytest.mark.browser
def test_browser_serves_a_hundred_coins(served_home, browser):
    """With 100 configured coins (two of them trained) the page opens on the first coin's prediction, the coin chooser
    is a dropdown that lists all 100 and filters as one types, a trained coin switches every coin panel, a coin
    without data says what to run instead of failing, and the overview has a row per coin."""
    s = served_home.model_copy(update={"coins": HUNDRED_COINS})
    with live_server(create_app(s, log_predictions=False)) as url:
        page, outside = open_page(browser, url)
        try:
            assert "Bitcoin (BTC)" in page.locator("#cp-prediction").inner_text()
            box = page.locator("#cp-coin")
            assert box.locator("input[type=radio]").count() == 0  # too many for buttons
            box.locator("input").click()
            page.get_by_role("option").first.wait_for()
            assert page.get_by_role("option").count() == 100
            box.locator("input").fill("Ether")  # typing filters the list
            page.get_by_role("option", name="Ethereum (ETH)", exact=True).click()
            page.wait_for_function("document.querySelector('#cp-prediction').textContent.includes('Ethereum (ETH)')")
            assert page.locator("#cp-chart .gtitle").text_content().startswith("Ethereum (ETH)")
            coin_choice(page, "Solana (SOL)").click()  # configured, never ingested
            page.wait_for_selector(".cp-empty")  # the panel's empty state in place of a prediction
            panel = page.locator(".cp-empty").first.inner_text()
            assert "solana" in panel.lower() and "make" in panel and page.locator("#cp-prob").count() == 0, panel
            tab(page, "overview")
            table = page.locator("#cp-overview")
            table.locator(".cell-wrap span:visible", has_text="Bitcoin (BTC)").first.wait_for()
            assert overview_coins(page, [coin_label(c) for c in HUNDRED_COINS]) == {coin_label(c) for c in HUNDRED_COINS}
            assert outside == [], outside
        finally:
            page.close()


def overview_coins(page, labels: list[str]) -> set[str]:
    """The coin labels of `labels` that the overview shows in its rows, scrolling through its virtual table (Gradio's
    dataframe draws only the rows in view)."""
    return set(page.evaluate("""async (labels) => {
        const want = new Set(labels), seen = new Set();
        const view = document.querySelector('#cp-overview .virtual-table-viewport');
        const collect = () => document.querySelectorAll('#cp-overview .cell-wrap span').forEach(
            e => { const t = e.textContent.trim(); if (want.has(t)) seen.add(t); });
        collect();
        for (let top = 0; view && top <= view.scrollHeight; top += view.clientHeight / 2) {
            view.scrollTop = top; view.dispatchEvent(new Event('scroll'));
            await new Promise(r => setTimeout(r, 60)); collect();
        }
        return [...seen]; }""", labels))
