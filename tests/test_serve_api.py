"""The JSON API, its errors, the metrics, the prediction log and hot reload, against the real app served by uvicorn
on a random loopback port (one server for the module; small extra servers for the 503 and token cases)."""
from __future__ import annotations

import json
import shutil
import statistics
import time
from pathlib import Path

import httpx
import pandas as pd
import pytest
from pydantic import SecretStr
from support.fakes import live_server, parse_metrics, sample
from support.homes import HUNDRED_COINS, last_row_time, register_classifier, register_forecaster, registry_of, serve_settings

from cryptopred.data.ingest import ingest
from cryptopred.monitor.predictions import read_predictions
from cryptopred.serve.app import create_app
from cryptopred.serve.schemas import MAX_FORECAST_DAYS
from cryptopred.volatility import VolProphetForecaster

PREDICT = "/api/v1/predict"


@pytest.fixture(scope="module")
def server(served_home):
    "The API (no UI) under uvicorn: (client, app); `app.state.serving.settings` is the served home."
    app = create_app(served_home, ui=False)
    with live_server(app) as url, httpx.Client(base_url=url, timeout=30) as client:
        yield client, app


@pytest.fixture
def home(server):
    return server[1].state.serving.settings


def champion(settings, kind: str, coin: str) -> str:
    return registry_of(settings).champion_version(kind, coin, settings.granularity)


def metrics(client) -> dict:
    r = client.get("/metrics")
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/plain")
    return parse_metrics(r.text)


def test_predict_answers_from_the_champions(server, home):
    client, _ = server
    r = client.post(PREDICT, json={"coin": "ethereum"})
    assert r.status_code == 200, r.text
    a = r.json()
    assert a["coin"] == "ethereum" and a["granularity"] == "daily" and a["horizon"] == 1
    assert 0 < a["prob_up"] < 1 and a["direction"] == ("up" if a["prob_up"] >= 0.5 else "down")
    assert a["models"] == {"classifier": champion(home, "classifier", "ethereum"),
                           "forecaster": champion(home, "forecaster", "ethereum")}
    assert pd.Timestamp(a["as_of"]) == last_row_time(home, "ethereum")
    assert pd.Timestamp(a["target_time"]) - pd.Timestamp(a["as_of"]) == pd.Timedelta(days=1)
    f = a["forecast"]
    assert f["timestamp"] == a["target_time"] and f["step"] == 1
    assert f["lower_95"] < f["lower_80"] < f["yhat"] < f["upper_80"] < f["upper_95"]
    mv = a["move"]  # the size of the move, read off the forecaster's 80% band at target_time
    assert abs(mv["low_80_pct"] - 100 * (f["lower_80"] / a["price"] - 1)) < 1e-6
    assert abs(mv["high_80_pct"] - 100 * (f["upper_80"] / a["price"] - 1)) < 1e-6
    assert 0 < mv["expected_abs_move_pct"] < max(-mv["low_80_pct"], mv["high_80_pct"]) * 1.5
    assert mv["basis"] == "80% band" and mv["prob_above_typical"] is None  # a v1 champion: no typical size
    assert a["data_source"] == "simulated" and a["simulated"] is True and a["price"] > 0
    # the verdict follows the evidence: the fixture's models do not beat the best naive baseline on their holdout
    md = registry_of(home).load("classifier", "ethereum", "daily").metadata["holdout_metrics"]
    assert md["accuracy_gain_lo"] <= 0 and a["verdict"] == "no clear signal"
    assert a["reason"].startswith("on its holdout the model") and "naive baseline" in a["reason"]
    assert "95% interval" in a["reason"]
    assert client.post(PREDICT, json={"coin": "ethereum", "horizon": 1}).json() == a


def test_the_move_comes_from_the_volatility_aware_forecasters_distribution(server, home):
    "A volprophet champion: median = the price; the move, its typical size and P(|move| > typical) from its distribution."
    client, _ = server
    v = register_forecaster(home, "ethereum", model_cls=VolProphetForecaster)
    try:
        a = client.post(PREDICT, json={"coin": "ethereum"}).json()
        f, mv = a["forecast"], a["move"]
        assert a["models"]["forecaster"] == v and f["yhat"] == pytest.approx(a["price"], rel=1e-9)
        assert mv["basis"] == "predictive distribution"
        assert abs(mv["low_80_pct"] - 100 * (f["lower_80"] / a["price"] - 1)) < 1e-6   # the same 80% band
        assert abs(mv["high_80_pct"] - 100 * (f["upper_80"] / a["price"] - 1)) < 1e-6
        assert 0 < mv["prob_above_typical"] < 1 and mv["typical_abs_move_pct"] > 0
        assert 0 < mv["expected_abs_move_pct"] < max(-mv["low_80_pct"], mv["high_80_pct"]) * 1.5
    finally: registry_of(home).rollback("forecaster", "ethereum", home.granularity, reason="test: back to the v1 champion")
    assert client.post(PREDICT, json={"coin": "ethereum"}).json()["move"]["basis"] == "80% band"


def test_forecast_coins_models(server, home):
    client, _ = server
    f = client.get("/api/v1/forecast", params={"coin": "bitcoin", "days": 5}).json()
    assert [p["step"] for p in f["points"]] == [1, 2, 3, 4, 5]
    ts = pd.to_datetime([p["timestamp"] for p in f["points"]])
    assert (ts.to_series().diff().dropna() == pd.Timedelta(days=1)).all() and ts[0] > pd.Timestamp(f["as_of"])
    assert all(p["lower_95"] < p["lower_80"] < p["yhat"] < p["upper_80"] < p["upper_95"] for p in f["points"])
    assert f["forecaster_version"] == champion(home, "forecaster", "bitcoin") and f["simulated"] is True
    assert len(client.get("/api/v1/forecast", params={"coin": "bitcoin"}).json()["points"]) == 7
    assert len(client.get("/api/v1/forecast", params={"coin": "bitcoin", "days": MAX_FORECAST_DAYS}).json()["points"]) == 90

    coins = client.get("/api/v1/coins").json()
    assert [(c["coin"], c["servable"], c["data_source"]) for c in coins["coins"]] == \
        [("bitcoin", True, "simulated"), ("ethereum", True, "simulated")]

    models = client.get("/api/v1/models").json()["models"]
    assert sorted((m["coin"], m["kind"]) for m in models) == [(c, k) for c in ("bitcoin", "ethereum")
                                                             for k in ("classifier", "forecaster")]
    clf = next(m for m in models if m["coin"] == "bitcoin" and m["kind"] == "classifier")
    assert clf["version"] == champion(home, "classifier", "bitcoin")
    assert 0 <= clf["holdout_metrics"]["accuracy"] <= 1 and 0 <= clf["holdout_metrics"]["roc_auc"] <= 1
    assert set(clf["baselines"]) == {"majority", "always_up", "momentum", "climatology"}
    assert clf["n_features"] > 10 and clf["data_source"] == "simulated"


def test_operations_routes(server):
    client, _ = server
    assert client.get("/healthz").json()["status"] == "ok"
    r = client.get("/readyz")
    assert r.status_code == 200 and r.json()["ready"] is True
    assert r.json()["coins"] == {"bitcoin": "ok", "ethereum": "ok"}
    assert r.json()["status"] in ("ok", "degraded") and set(r.json()["freshness"]) == {"bitcoin", "ethereum"}
    spec = client.get("/openapi.json").json()
    assert {"/api/v1/predict", "/api/v1/forecast", "/api/v1/coins", "/api/v1/models", "/healthz", "/readyz",
            "/metrics"} <= set(spec["paths"])
    schemas = spec["components"]["schemas"]
    assert schemas["PredictRequest"]["additionalProperties"] is False
    assert {"prob_up", "direction", "forecast", "models", "model", "data_source"} <= set(schemas["PredictResponse"]["properties"])
    assert {"404", "422", "503"} <= set(spec["paths"]["/api/v1/predict"]["post"]["responses"])
    docs = client.get("/docs")  # our own offline reference, not the CDN-backed Swagger page
    assert docs.status_code == 200 and "swagger-ui" not in docs.text.lower() and "<script" not in docs.text
    assert client.get("/redoc", follow_redirects=False).status_code == 307


@pytest.mark.parametrize("typed", ["BTC", "btc", " Bitcoin ", "BitCoin", "bitcoin "])
def test_a_coin_is_named_by_ticker_or_name_in_any_case(server, typed):
    client, _ = server
    r = client.post(PREDICT, json={"coin": typed})
    assert r.status_code == 200, r.text
    assert r.json()["coin"] == "bitcoin"
    f = client.get("/api/v1/forecast", params={"coin": typed})
    assert f.status_code == 200 and f.json()["coin"] == "bitcoin", f.text


BAD = [  # (method, path, kwargs, status, text in the detail)
    ("post", PREDICT, {"json": {"coin": "dogecoin"}}, 404, "unknown coin 'dogecoin': this app serves bitcoin, ethereum"),
    ("get", "/api/v1/forecast", {"params": {"coin": "dogecoin"}}, 404, "unknown coin 'dogecoin'"),
    ("post", PREDICT, {"json": {"coin": " BTCX "}}, 404, "unknown coin ' BTCX ': this app serves bitcoin, ethereum"),
    ("post", PREDICT, {"json": {"coin": "DOGE"}}, 404, "unknown coin 'DOGE'"),
    ("post", PREDICT, {"json": {"coin": "bitcoin", "horizon": 0}}, 422, "horizon: Input should be greater than or equal to 1"),
    ("post", PREDICT, {"json": {"coin": "bitcoin", "horizon": 10**9}}, 422, "horizon: Input should be less than or equal"),
    ("post", PREDICT, {"json": {"coin": "bitcoin", "horizon": "1"}}, 422, "horizon: Input should be a valid integer"),
    ("post", PREDICT, {"json": {"coin": "bitcoin", "horizon": 1.5}}, 422, "horizon: Input should be a valid integer"),
    ("post", PREDICT, {"json": {"coin": "bitcoin", "horizon": 2}}, 422, "predicts 1 daily step(s) ahead"),
    ("post", PREDICT, {"json": {"coin": "bitcoin", "x": 1}}, 422, "x: Extra inputs are not permitted"),
    ("post", PREDICT, {"json": {"coin": 7}}, 422, "coin: Input should be a valid string"),
    ("post", PREDICT, {"json": {}}, 422, "coin: Field required"),
    ("post", PREDICT, {"json": ["bitcoin"]}, 422, "invalid request"),
    ("post", PREDICT, {"content": b"{not json", "headers": {"content-type": "application/json"}}, 422, "JSON decode error"),
    ("get", "/api/v1/forecast", {"params": {"coin": "bitcoin", "days": 0}}, 422, "days: Input should be greater than"),
    ("get", "/api/v1/forecast", {"params": {"coin": "bitcoin", "days": 91}}, 422, "days: Input should be less than"),
    ("get", "/api/v1/forecast", {"params": {"coin": "bitcoin", "days": "week"}}, 422, "days: Input should be a valid integer"),
    ("get", "/api/v1/forecast", {"params": {"coin": "bitcoin", "extra": 1}}, 422, "extra: Extra inputs are not permitted"),
    ("post", PREDICT, {"json": {"coin": "bitcoin", "pad": "x" * 5000}}, 413, "request body larger than 4096 bytes"),
    ("post", PREDICT, {"content": iter([b'{"coin": "bitcoin", "pad": "', b"x" * 3000, b"x" * 3000, b'"}']),
                       "headers": {"content-type": "application/json"}}, 413, "request body larger than 4096 bytes"),
]


@pytest.mark.parametrize("method,path,kw,status,text", BAD, ids=[f"{b[3]}-{i}" for i, b in enumerate(BAD)])
def test_bad_input_gets_a_clear_4xx(server, method, path, kw, status, text):
    client, _ = server
    r = getattr(client, method)(path, **kw)
    assert r.status_code == status, r.text
    body = r.json()
    assert text in body["detail"], body
    assert "Traceback" not in r.text
    if status == 404: assert body["known_coins"] == ["bitcoin", "ethereum"]


def test_bad_input_never_counts_as_a_server_error(server):
    client, _ = server
    for method, path, kw, _status, _text in BAD:
        if not isinstance(kw.get("content"), bytes | None): continue  # a streamed body cannot be replayed
        getattr(client, method)(path, **kw)
    m = metrics(client)
    fives = [k for k, v in m.items() if k[0] == "cryptopred_http_requests_total" and dict(k[1])["status"][0] == "5" and v]
    assert not fives
    assert sample(m, "cryptopred_errors_total", kind="unhandled") == 0


def test_no_champion_is_a_503_with_the_hint(tmp_path):
    s = serve_settings(tmp_path / "empty")
    with live_server(create_app(s, ui=False)) as url:
        r = httpx.post(url + PREDICT, json={"coin": "bitcoin"}, timeout=30)
        assert r.status_code == 503 and r.json()["hint"] == "run `make train`"
        assert "no model yet for bitcoin (daily)" in r.json()["detail"]
        ready = httpx.get(url + "/readyz", timeout=30)
        assert ready.status_code == 503 and not ready.json()["ready"]
        assert "run `make train`" in ready.json()["coins"]["ethereum"]
        assert httpx.get(url + "/api/v1/forecast", params={"coin": "bitcoin"}, timeout=30).status_code == 503
        text = httpx.get(url + "/metrics", timeout=30).text
        assert sample(parse_metrics(text), "cryptopred_ready") == 0
        assert httpx.get(url + "/healthz", timeout=30).status_code == 200


def test_bearer_token_guards_the_json_api(home):
    s = home.model_copy(update={"api_token": SecretStr("s3cret-token")})
    with live_server(create_app(s, ui=False)) as url:
        assert httpx.post(url + PREDICT, json={"coin": "bitcoin"}).status_code == 401
        wrong = httpx.post(url + PREDICT, json={"coin": "bitcoin"}, headers={"Authorization": "Bearer nope"})
        assert wrong.status_code == 401 and wrong.headers["www-authenticate"] == "Bearer" and "s3cret" not in wrong.text
        ok = httpx.post(url + PREDICT, json={"coin": "bitcoin"}, headers={"Authorization": "Bearer s3cret-token"})
        assert ok.status_code == 200
        assert httpx.get(url + "/api/v1/coins").status_code == 401
        for open_route in ("/healthz", "/readyz"): assert httpx.get(url + open_route).status_code == 200
        assert httpx.get(url + "/metrics").status_code == 401  # Prometheus sends the token (deploy/prometheus.yml)


def test_metrics_increase_as_requests_are_served(server, home):
    client, _ = server
    before = metrics(client)
    for _ in range(3): assert client.post(PREDICT, json={"coin": "bitcoin"}).status_code == 200
    assert client.post(PREDICT, json={"coin": "dogecoin"}).status_code == 404
    after = metrics(client)
    d = lambda name, **lb: sample(after, name, **lb) - sample(before, name, **lb)
    route = {"route": PREDICT, "method": "POST"}
    assert d("cryptopred_http_requests_total", **route, status="200") == 3
    assert d("cryptopred_http_requests_total", **route, status="404") == 1
    assert d("cryptopred_http_request_duration_seconds_count", **route) == 4
    direction = client.post(PREDICT, json={"coin": "bitcoin"}).json()["direction"]
    after = metrics(client)
    assert d("cryptopred_predictions_total", coin="bitcoin", direction=direction) == 4
    assert d("cryptopred_prediction_probability_count", coin="bitcoin") == 4
    assert d("cryptopred_http_requests_total", route="/metrics", method="GET", status="200") == 2
    info = {k: v for k, v in after.items() if k[0] == "cryptopred_champion_info" and dict(k[1])["coin"] == "bitcoin"}
    assert {dict(k[1])["kind"]: dict(k[1])["version"] for k in info} == {
        "classifier": champion(home, "classifier", "bitcoin"), "forecaster": champion(home, "forecaster", "bitcoin")}
    assert sample(after, "cryptopred_model_load_seconds_count", kind="forecaster") >= 2
    assert sample(after, "cryptopred_ready") == 1
    assert sample(after, "cryptopred_data_as_of_seconds", coin="bitcoin") == last_row_time(home, "bitcoin").timestamp()


def test_every_prediction_is_logged(server, home):
    client, app = server
    a = client.post(PREDICT, json={"coin": "ethereum"}).json()
    assert app.state.serving.flush_log(timeout=30)
    logged = read_predictions(home)
    mine = logged[(logged["coin"] == "ethereum") & (logged["channel"] == "api")].iloc[-1]
    assert mine["prob_up"] == a["prob_up"] and mine["direction"] == a["direction"]
    assert mine["classifier_version"] == a["models"]["classifier"] and mine["forecaster_version"] == a["models"]["forecaster"]
    assert mine["as_of"] == pd.Timestamp(a["as_of"]) and mine["target_time"] == pd.Timestamp(a["target_time"])
    assert mine["horizon"] == 1 and mine["source"] == "simulated" and 0 < mine["latency_ms"] < 60_000
    assert mine["served_at"] >= mine["as_of"]


def test_hot_reload_after_a_promotion(server, home):
    "Promote a new champion while the server runs: the next prediction uses it; a damaged one keeps the old model."
    client, _ = server
    old = client.post(PREDICT, json={"coin": "ethereum"}).json()["models"]["classifier"]
    new = register_classifier(home, "ethereum", family="random_forest", reason="test: hot reload")
    assert new != old
    assert client.post(PREDICT, json={"coin": "ethereum"}).json()["models"]["classifier"] == new

    before = sample(metrics(client), "cryptopred_errors_total", kind="model_load")
    broken = register_classifier(home, "ethereum", reason="test: damaged after promotion")
    folder = registry_of(home).root / "classifier" / "ethereum" / "daily" / broken
    model_file = next(p for p in folder.iterdir() if p.suffix == ".skops")
    model_file.write_bytes(model_file.read_bytes()[:-10])
    a = client.post(PREDICT, json={"coin": "ethereum"})
    assert a.status_code == 200 and a.json()["models"]["classifier"] == new  # still the last good champion
    assert sample(metrics(client), "cryptopred_errors_total", kind="model_load") == before + 1
    registry_of(home).rollback("classifier", "ethereum", "daily", reason="test: damaged")
    assert client.post(PREDICT, json={"coin": "ethereum"}).json()["models"]["classifier"] == new


def test_new_data_is_served_without_restart(server, home):
    client, _ = server
    before = client.post(PREDICT, json={"coin": "bitcoin"}).json()
    ingest(home, source="simulated", coins=list(home.coins)).raise_for_failures()  # up to now
    after = client.post(PREDICT, json={"coin": "bitcoin"}).json()
    assert pd.Timestamp(after["as_of"]) == last_row_time(home, "bitcoin")
    assert pd.Timestamp(after["as_of"]) - pd.Timestamp(before["as_of"]) >= pd.Timedelta(days=2)
    assert after["models"] == before["models"]
    # the same champion forecaster, re-anchored at the newest price (not at its training data's last price)
    f = client.get("/api/v1/forecast", params={"coin": "bitcoin", "days": 3}).json()
    assert pd.Timestamp(f["origin"]) == pd.Timestamp(after["as_of"])
    assert f["points"][0]["lower_80"] < after["price"] < f["points"][0]["upper_80"]
    assert abs(after["forecast"]["yhat"] / after["price"] - 1) < 0.02
    assert abs(after["forecast"]["yhat"] / before["price"] - 1) > abs(after["forecast"]["yhat"] / after["price"] - 1)


def test_shutdown_writes_every_logged_prediction(tmp_path, home):
    "A server started and stopped: every prediction it answered is in the log files afterwards."
    s = home.model_copy(update={"home": tmp_path / "own"})
    for d in ("data", "models"):  # share data and models, not the monitoring folder
        (tmp_path / "own").mkdir(exist_ok=True)
        (tmp_path / "own" / d).symlink_to(Path(home.home) / d)
    with live_server(create_app(s, ui=False)) as url:
        answers = [httpx.post(url + PREDICT, json={"coin": c}, timeout=30).json() for c in ("bitcoin", "ethereum") * 5]
    logged = read_predictions(s)
    assert len(logged) == 10 and list(logged["coin"]) == [a["coin"] for a in answers]
    lines = sorted((s.monitoring_dir / "predictions").glob("*.jsonl"))
    assert sum(len(p.read_text().splitlines()) for p in lines) == 10
    assert all(json.loads(line)["channel"] == "api" for p in lines for line in p.read_text().splitlines())


def test_an_app_that_does_not_log_answers_and_leaves_the_prediction_log_alone(tmp_path, home):
    "`log_predictions=False` (the report's photograph of the app): the answers go out, the log gets no line."
    s = home.model_copy(update={"home": tmp_path / "own"})
    (tmp_path / "own").mkdir()
    for d in ("data", "models"): (tmp_path / "own" / d).symlink_to(Path(home.home) / d)
    with live_server(create_app(s, ui=False, log_predictions=False)) as url:
        answers = [httpx.post(url + PREDICT, json={"coin": c}, timeout=30) for c in ("bitcoin", "ethereum")]
    assert [a.status_code for a in answers] == [200, 200] and [a.json()["coin"] for a in answers] == ["bitcoin", "ethereum"]
    assert read_predictions(s).empty and not list((s.monitoring_dir / "predictions").glob("*.jsonl"))


def test_a_hundred_coins_are_listed_and_predicted_as_fast_as_two(server, served_home, tmp_path):
    """The module's champions served among 100 configured coins: `/coins` lists the 100 ids in order, a coin without
    a model is a 503 with the hint, and a prediction costs what it costs when 2 coins are served (requests to both
    apps interleaved, so the machine's load hits both alike; the answers are the same)."""
    small = server[0]
    home = tmp_path / "home100"
    shutil.copytree(served_home.home, home, ignore=shutil.ignore_patterns("monitoring", "runs"))
    app = create_app(serve_settings(home, coins=HUNDRED_COINS), ui=False)
    with live_server(app) as url, httpx.Client(base_url=url, timeout=30) as big:
        listed = big.get("/api/v1/coins").json()["coins"]
        assert [c["coin"] for c in listed] == list(HUNDRED_COINS)
        assert {c["coin"] for c in listed if c["servable"]} == {"bitcoin", "ethereum"}
        r = big.post(PREDICT, json={"coin": HUNDRED_COINS[-1]})
        assert r.status_code == 503 and r.json()["hint"] == "run `make train`"
        seconds = {"small": [], "big": []}
        for _ in range(30):
            for name, c in (("small", small), ("big", big)):
                t0 = time.perf_counter()
                r = c.post(PREDICT, json={"coin": "ethereum"})
                seconds[name].append(time.perf_counter() - t0)
                assert r.status_code == 200, r.text
        assert big.post(PREDICT, json={"coin": "ethereum"}).json()["prob_up"] == small.post(
            PREDICT, json={"coin": "ethereum"}).json()["prob_up"]
        p50 = {k: statistics.median(v) for k, v in seconds.items()}
        assert p50["big"] <= 1.5 * p50["small"] + 0.005, p50
