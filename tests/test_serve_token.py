"""With CRYPTOPRED_API_TOKEN set, nothing around the token: every route of the served app (the JSON API, the
operations routes, Gradio's UI, API, config and uploads), enumerated from the app's own router so that a new route
cannot slip by, answers 401/403 without credentials under uvicorn on a real socket, and works with them."""
from __future__ import annotations

import re

import httpx
import pytest
from pydantic import SecretStr
from starlette.routing import Mount
from support.fakes import live_server

from cryptopred.serve.app import OPEN_PATHS, create_app, protections, refused, session_value

TOKEN = "t0ken-for-the-test"


def routes(app, prefix: str = "") -> list[tuple[str, str]]:
    "(path, method) of every route of `app` and of every app mounted in it, path parameters filled in."
    out = []
    for r in app.routes:
        if isinstance(r, Mount):
            out += routes(r.app if hasattr(r.app, "routes") else r, prefix + r.path)
            continue
        if (sub := getattr(r, "original_router", None)) is not None:  # a router FastAPI includes lazily (Gradio's API)
            out += routes(sub, prefix + (getattr(getattr(r, "include_context", None), "prefix", "") or ""))
            continue
        path = re.sub(r"\{[^}]+\}", "x", prefix + getattr(r, "path", ""))
        methods = getattr(r, "methods", None) or {"GET"}
        out += [(path or "/", m) for m in sorted(methods) if m not in ("HEAD", "OPTIONS")]
    return sorted(set(out))


@pytest.fixture(scope="module")
def locked(served_home):
    "The whole app (JSON API and Gradio UI) with a token, under uvicorn: (base URL, app)."
    app = create_app(served_home.model_copy(update={"api_token": SecretStr(TOKEN)}), ui=True)
    with live_server(app) as url:
        yield url, app


def test_every_route_needs_the_token(locked):
    url, app = locked
    found = routes(app)
    paths = {p for p, _ in found}
    # the router really holds the UI's and Gradio's routes, not only ours
    assert {"/api/v1/predict", "/metrics", "/openapi.json", "/signin"} <= paths
    assert any(p.startswith("/gradio_api/") for p in paths) and any(p.endswith("/config") for p in paths), sorted(paths)
    bearer = {"Authorization": f"Bearer {TOKEN}"}
    without, with_token = {}, {}
    fresh = httpx.Limits(max_keepalive_connections=0)  # a connection per request: one a route closes cannot spoil the next
    with httpx.Client(base_url=url, timeout=30, limits=fresh) as c:
        for path, method in found:
            if path in OPEN_PATHS: continue
            without[(path, method)] = c.request(method, path, json={}).status_code
            wrong = c.request(method, path, json={}, headers={"Authorization": "Bearer nope"}).status_code
            assert wrong in (401, 403), (path, method, wrong)
            with c.stream(method, path, json={}, headers=bearer) as r:  # the status only: event streams stay open
                with_token[(path, method)] = r.status_code
    open_doors = {k: v for k, v in without.items() if v not in (401, 403)}
    assert not open_doors, open_doors
    closed = {k for k in with_token if refused(k[0])}  # uploads and Gradio's dashboard: refused to everyone
    assert ("/gradio_api/upload", "POST") in closed
    # with the token nothing is turned away for want of it (Gradio's own 403s for a file or a feature it does not
    # serve are about the made-up parameters, not the token)
    refusing = {k: v for k, v in with_token.items() if v == 401 and k not in closed}
    assert not refusing, refusing
    assert all(with_token[k] == 403 for k in closed)
    # with credentials the data routes really answer
    with httpx.Client(base_url=url, timeout=30, headers=bearer) as c:
        assert c.post("/api/v1/predict", json={"coin": "bitcoin"}).status_code == 200
        assert c.get("/config").status_code == 200 and c.get("/gradio_api/info").status_code == 200


def test_a_person_signs_in_with_the_token_and_the_cookie_opens_the_ui(locked):
    url, _ = locked
    with httpx.Client(base_url=url, timeout=30) as c:
        page = c.get("/", headers={"accept": "text/html"})
        assert page.status_code == 401 and 'action="/signin"' in page.text
        assert c.post("/signin", data={"token": "guess"}).status_code == 401
        signed = c.post("/signin", data={"token": TOKEN}, follow_redirects=False)
        assert signed.status_code == 303 and TOKEN not in signed.headers["set-cookie"]
        assert c.cookies.get("cryptopred_session") == session_value(TOKEN)
        assert c.get("/", headers={"accept": "text/html"}).status_code == 200  # the Gradio page itself
        assert c.get("/config").status_code == 200 and c.post("/api/v1/predict", json={"coin": "bitcoin"}).status_code == 200
    for p in ("/healthz", "/readyz"): assert httpx.get(url + p, timeout=30).status_code == 200


def test_uploads_are_refused_even_without_a_token(served_home):
    app = create_app(served_home, ui=True)
    with live_server(app) as url:
        r = httpx.post(url + "/gradio_api/upload", files={"files": ("x.txt", b"hello")}, timeout=30)
        assert r.status_code == 403 and "uploads are disabled" in r.text
        assert httpx.get(url + "/config", timeout=30).status_code == 200  # no token set: the UI is open, as configured
    lines = protections(served_home)
    assert any(line.startswith("access token: off") for line in lines) and any("uploads: refused" in line for line in lines)
