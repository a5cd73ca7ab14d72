"""The web UI: headless Chromium (Debian's, driven by playwright) picks a coin and asks for a prediction, and
`gradio_client` calls every named event. The app runs under uvicorn on a random loopback port."""
from __future__ import annotations

import os
import re
import shutil
from pathlib import Path
from urllib.parse import urlparse

import httpx
import pandas as pd
import pytest
from support.fakes import live_server, parse_metrics
from support.homes import registry_of

from cryptopred.common import save_figure, utcnow, write_json
from cryptopred.data.store import Store
from cryptopred.features import build_panel
from cryptopred.monitor.alerts import raise_alert
from cryptopred.monitor.drift import data_drift, drift_figure
from cryptopred.monitor.predictions import PredictionLog, read_predictions
from cryptopred.monitor.profiles import profile_frame
from cryptopred.runs import write_metrics
from cryptopred.serve.app import create_app

# `make screenshot` sets CRYPTOPRED_SCREENSHOT=reports/figures/frontend.png (the picture the technical report shows);
# a plain test run keeps its screenshot in the test's temporary folder and leaves the checkout untouched.
SCREENSHOT_ENV = "CRYPTOPRED_SCREENSHOT"
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--no-first-run"]


def monitor_run(settings, drift: dict[str, str]) -> Path:
    "A succeeded `monitor` run folder as the monitor run-book leaves it: metrics.json with drift per coin, drift_<coin>.png."
    run = settings.runs_dir / f"{utcnow():%Y%m%dT%H%M%SZ}_monitor"
    run.mkdir(parents=True)
    frames = {c: Store(settings).read(c, settings.granularity, "simulated") for c in settings.coins}
    panel = build_panel(frames, settings.granularity, settings=settings)
    for coin, fe in panel.items():
        cols = ["ret_lag_1", "vol_7", "rsi_14", "bb_pctb"]
        ref, cur = fe[fe["usable"]][cols].iloc[:-60], fe[fe["usable"]][cols].iloc[-60:]
        if drift[coin] == "DRIFT": cur = cur * 3
        report = data_drift(profile_frame(ref), profile_frame(cur), settings)
        save_figure(run, drift_figure(report), f"drift_{coin}.png")
    write_metrics(run, {"drift": {c: {"status": s} for c, s in drift.items()}})
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


@pytest.mark.browser
def test_browser_picks_a_coin_and_predicts(ui_server, tmp_path):
    url, _ = ui_server
    shot = Path(os.environ.get(SCREENSHOT_ENV) or tmp_path / "frontend.png")
    _browser_or_skip()
    from playwright.sync_api import sync_playwright
    api = httpx.post(url + "/api/v1/predict", json={"coin": "ethereum"}, timeout=30).json()
    outside: list[str] = []
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        try:
            page = browser.new_page(viewport={"width": 1360, "height": 1000}, device_scale_factor=1)
            def watch(req):
                u = urlparse(req.url)
                if u.scheme in ("data", "blob", "about"): return
                if u.hostname not in ("127.0.0.1", "localhost"): outside.append(req.url)
            page.on("request", watch)
            page.set_default_timeout(60_000)
            page.goto(url + "/")
            page.wait_for_selector("#cp-banner .cp-banner")  # the load event ran: simulated data is flagged
            page.locator("#cp-coin input").click()
            page.get_by_role("option", name="Ethereum (ETH)", exact=True).click()
            page.locator("#cp-predict").click()
            prob = page.locator("#cp-prob")
            prob.wait_for()
            page.wait_for_selector("#cp-chart img")
            shown = prob.inner_text()
            panel = page.locator("#cp-prediction").inner_text()
            chart = page.locator("#cp-chart img").bounding_box()
            page.wait_for_timeout(300)  # let the chart image finish painting before the screenshot
            shot.parent.mkdir(parents=True, exist_ok=True)
            page.screenshot(path=str(shot), full_page=True)
        finally:
            browser.close()
    assert re.fullmatch(r"\d{1,3}\.\d%", shown), shown
    assert shown == f"{api['prob_up']:.1%}"
    assert "ethereum" in panel and ("UP" in panel if api["direction"] == "up" else "DOWN" in panel)
    assert api["models"]["classifier"] in panel
    assert chart["width"] > 400 and chart["height"] > 200
    assert not outside, f"the page requested URLs outside 127.0.0.1: {outside}"
    assert shot.stat().st_size > 20_000


def test_gradio_client_calls_every_named_event(ui_server):
    url, app = ui_server
    home = app.state.serving.settings
    from gradio_client import Client
    client = Client(url + "/", verbose=False)
    names = set(client.view_api(print_info=False, return_format="dict")["named_endpoints"])
    assert names == {"/load", "/predict", "/model_card", "/monitoring"}

    banner, panel, plot = client.predict("bitcoin", 14, api_name="/predict")
    assert "SIMULATED DATA" in banner and 'id="cp-prob"' in panel and "bitcoin" in panel
    assert plot is not None

    card, calibration = client.predict("ethereum", api_name="/model_card")
    v = registry_of(home).champion_version("classifier", "ethereum", "daily")
    assert "### ethereum" in card and v in card and "| momentum baseline accuracy |" in card
    assert calibration is not None

    drift_md, drift_pic, real_md, real_fig, health, alerts, champs = client.predict("ethereum", api_name="/monitoring")
    assert "| ethereum | **DRIFT** |" in drift_md and "| bitcoin | NO_DRIFT |" in drift_md
    assert drift_pic and Path(drift_pic).stat().st_size > 10_000
    assert "No predictions logged for ethereum yet" in real_md or "distinct predictions for ethereum" in real_md
    assert "/api/v1/predict" in health and "p99 ms" in health
    assert "data_drift" in alerts and "DRIFT on 4 features" in alerts
    assert v in champs and "Last promotion" in champs

    bitcoin = client.predict("bitcoin", api_name="/monitoring")
    assert "| bitcoin | **NO_DRIFT** |" in bitcoin[0]
    assert bitcoin[3] is not None, bitcoin[2]  # 45 resolved predictions: the rolling realized-accuracy figure
    assert "| model | served | resolved | pending | accuracy | always up | momentum |" in bitcoin[2]

    loaded = client.predict("bitcoin", api_name="/load")
    assert "SIMULATED DATA" in loaded[0] and "Pick a coin and press Predict" in loaded[1] and "### bitcoin" in loaded[2]
    m = parse_metrics(httpx.get(url + "/metrics", timeout=30).text)
    events = sum(v for k, v in m.items() if k[0] == "cryptopred_http_requests_total" and dict(k[1])["route"] == "gradio_api")
    timed = sum(v for k, v in m.items() if k[0] == "cryptopred_http_request_duration_seconds_count"
                and dict(k[1])["route"] == "gradio_api")
    assert events > timed > 0  # Gradio's event streams are counted, not timed (they last as long as the job)
    assert app.state.serving.flush_log(timeout=30)
    logged = read_predictions(home)
    assert (logged["channel"] == "ui").sum() >= 1  # the UI's Predict is logged like an API call


def test_ui_login_when_credentials_are_set(ui_server):
    "CRYPTOPRED_UI_USERNAME/PASSWORD put Gradio's login in front of the UI and its API; the JSON API is unaffected."
    from gradio_client import Client
    from pydantic import SecretStr
    home = ui_server[1].state.serving.settings
    s = home.model_copy(update={"ui_username": "ana", "ui_password": SecretStr("pw-123")})
    with live_server(create_app(s)) as url, httpx.Client(base_url=url, timeout=30) as c:
        assert c.get("/config").status_code == 401 and c.get("/gradio_api/info").status_code == 401
        assert c.post("/login", data={"username": "ana", "password": "wrong"}).status_code == 400
        assert c.post("/login", data={"username": "ana", "password": "pw-123"}).json() == {"success": True}
        assert c.get("/config").status_code == 200 and "pw-123" not in c.get("/config").text
        assert c.get("/api/v1/coins").status_code == 200
        card, _ = Client(url + "/", auth=("ana", "pw-123"), verbose=False).predict("bitcoin", api_name="/model_card")
        assert "### bitcoin" in card
