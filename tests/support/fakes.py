"""Real servers on 127.0.0.1 standing in for the outside world.

A fake CoinGecko API on 127.0.0.1 for tests: real sockets, CoinGecko's JSON shapes, injectable faults.

Use it as a context manager (or through the `coingecko_fake` pytest fixture) and point the client at `fake.url`::

    with FakeCoinGecko(coins={"bitcoin": 60_000}) as fake:
        fake.inject("429", retry_after=1)             # the next matching request gets a 429 with Retry-After: 1
        fake.inject("503", times=2, path="market_chart")
        settings = load_settings(environ={}, env_file=None, coingecko_url=fake.url)
        ...
        fake.requests[-1].headers["x-cg-demo-api-key"]

Endpoints (all under `/api/v3/`): `ping`, `coins/{id}/market_chart` (`vs_currency`, `days`, `interval`),
`coins/{id}/market_chart/range` (`vs_currency`, `from`, `to` in Unix seconds, `interval`), `simple/price`
(`ids`, `vs_currencies`, `include_market_cap`, `include_24hr_vol`, `include_last_updated_at`).

Data are a deterministic function of (coin, time): daily points at exactly 00:00 UTC, hourly points a few seconds
after each hour (as CoinGecko's are), and a series that reaches the present ends with the current price at the
current time (CoinGecko's live point). Like CoinGecko, the fake answers an unknown coin with 404
`{"error": "coin not found"}`, refuses more than 365 days of history without a pro key (error 10012), and answers a
pro key on the public host with 10010 and a demo key on the pro host with 10011.

Faults (`inject(kind, times=1, path=None, retry_after=None)`), consumed in order by requests whose path contains
`path`: `429`, `500` (HTML body), `503` (JSON body), `timeout` (the answer is held until the client gives up),
`disconnect` (connection closed without an answer), `malformed` (truncated JSON), `empty` (empty arrays),
`duplicates` (every point twice), `out_of_order` (points shuffled), `404`, `10012`, `10010`, `10011`.
`times=None` keeps a fault forever (CoinGecko down); `clear()` removes all faults.
"""
from __future__ import annotations

import contextlib
import json
import math
import re
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qsl, urlsplit

import pandas as pd
import uvicorn
from prometheus_client import CollectorRegistry, Counter, Histogram, start_http_server
from prometheus_client.parser import text_string_to_metric_families

from cryptopred.data.coingecko import CoinGecko

from .homes import cg_settings

DAY_MS = 86_400_000
HOUR_MS = 3_600_000
FAULTS = ("429", "500", "503", "timeout", "disconnect", "malformed", "empty", "duplicates", "out_of_order",
          "404", "10012", "10010", "10011")
PRO_HEADER, DEMO_HEADER = "x-cg-pro-api-key", "x-cg-demo-api-key"

RATE_LIMIT_JSON = {"status": {"error_code": 429, "error_message": "You've exceeded the Rate Limit. Please visit "
                              "https://www.coingecko.com/en/api/pricing to subscribe to our API plans for higher "
                              "rate limits."}}
NOT_FOUND_JSON = {"error": "coin not found"}
HISTORY_LIMIT_JSON = {"error": {"status": {"timestamp": "2026-01-01T00:00:00.000+00:00", "error_code": 10012,
                      "error_message": "Your request exceeds the allowed time range. Public API users are limited to "
                      "querying historical data within the past 365 days. Upgrade to a paid plan to enjoy full "
                      "historical data access: https://www.coingecko.com/en/api/pricing. "}}}
PRO_ON_PUBLIC_JSON = {"status": {"error_code": 10010, "error_message": "If you are using Pro API key, please change "
                      "your root URL from api.coingecko.com to pro-api.coingecko.com"}}
DEMO_ON_PRO_JSON = {"status": {"error_code": 10011, "error_message": "If you are using Demo API key, please change "
                    "your root URL from pro-api.coingecko.com to api.coingecko.com"}}
KEY_MISSING_JSON = {"status": {"error_code": 10002, "error_message": "API Key Missing"}}


@dataclass
class Recorded:
    "One request the fake received: path, decoded query, headers (lower-case names) and the status it answered."
    method: str
    path: str
    query: dict
    headers: dict
    status: int | None = None
    raw_target: str = ""


@dataclass
class Fault:
    kind: str
    times: int | None = 1
    path: str | None = None
    retry_after: float | str | None = None


@dataclass
class FakeCoinGecko:
    "A CoinGecko lookalike on 127.0.0.1 with a random port; see the module docstring."
    coins: dict = field(default_factory=lambda: {"bitcoin": 60_000.0, "ethereum": 3_000.0, "solana": 150.0})
    host_kind: str = "public"  # "public" (api.coingecko.com) or "pro" (pro-api.coingecko.com): decides 10010/10011
    history_limit_days: int | None = 365  # history reachable without a pro key (None: unlimited)
    now: object = None  # callable returning the fake's current time in ms (default: the wall clock)
    hold_s: float = 10.0  # how long a `timeout` fault holds its answer at most

    def __post_init__(self):
        self.requests: list[Recorded] = []
        self._faults: list[Fault] = []
        self._lock = threading.Lock()
        self._release = threading.Event()
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # ---- lifecycle
    def start(self) -> FakeCoinGecko:
        fake = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            def do_GET(self): fake._handle(self)
            def log_message(self, *a): pass

        self._release.clear()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._release.set()
        if self._server:
            self._server.shutdown(); self._server.server_close(); self._server = None
        if self._thread: self._thread.join(timeout=5); self._thread = None

    def __enter__(self) -> FakeCoinGecko: return self.start()
    def __exit__(self, *exc) -> None: self.stop()

    @property
    def port(self) -> int: return self._server.server_address[1]
    @property
    def url(self) -> str: return f"http://127.0.0.1:{self.port}/api/v3/"

    # ---- faults and inspection
    def inject(self, kind: str, times: int | None = 1, path: str | None = None,
               retry_after: float | str | None = None) -> FakeCoinGecko:
        "Queue a fault for the next `times` requests whose path contains `path` (None: any; times=None: forever)."
        if kind not in FAULTS: raise ValueError(f"unknown fault {kind!r}; known: {', '.join(FAULTS)}")
        if kind == "timeout": self._release.clear()
        with self._lock: self._faults.append(Fault(kind, times, path, retry_after))
        return self

    def clear(self) -> None:
        "Remove every queued fault and let held (`timeout`) answers go."
        with self._lock: self._faults.clear()
        self._release.set()

    def release(self) -> None:
        "Let requests held by a `timeout` fault finish."
        self._release.set()

    def calls(self, path: str = "") -> list[Recorded]:
        "The recorded requests whose path contains `path`."
        return [r for r in self.requests if path in r.path]

    def reset_requests(self) -> None: self.requests.clear()

    # ---- data
    def now_ms(self) -> int: return int(self.now() if self.now else time.time() * 1000)

    def price(self, coin: str, ms: int) -> float:
        "The fake's price of `coin` at `ms`: a smooth deterministic wave around the coin's level."
        level = self.coins[coin]
        d = ms / DAY_MS
        wave = 0.2 * math.sin(d / 17.0) + 0.05 * math.sin(d * 1.3) + 0.01 * math.sin(d * 29.0)
        return round(level * math.exp(wave), 8)

    def point(self, coin: str, ms: int) -> tuple[float, float, float]:
        p = self.price(coin, ms)
        supply = 1e7 * (1 + (sum(map(ord, coin)) % 90))
        return p, p * supply, p * supply * (0.03 + 0.01 * math.cos(ms / DAY_MS))

    def series(self, coin: str, start_ms: int, end_ms: int, step_ms: int, live: bool) -> dict:
        "CoinGecko's market_chart shape for points in [start_ms, end_ms] (plus the live point at `end_ms`)."
        offset = 0 if step_ms == DAY_MS else 1
        first = -(-start_ms // step_ms) * step_ms
        times = [t + (offset * (7 + (t // step_ms) % 23) * 1000) for t in range(first, end_ms + 1, step_ms)]
        times = [t for t in times if t <= end_ms]
        if live and (not times or times[-1] < end_ms): times.append(end_ms)
        pts = [(t, *self.point(coin, t)) for t in times]
        return {"prices": [[t, p] for t, p, _, _ in pts], "market_caps": [[t, c] for t, _, c, _ in pts],
                "total_volumes": [[t, v] for t, _, _, v in pts]}

    # ---- request handling
    def _take_fault(self, path: str) -> Fault | None:
        with self._lock:
            for f in self._faults:
                if f.path is None or f.path in path:
                    if f.times is not None:
                        f.times -= 1
                        if f.times <= 0: self._faults.remove(f)
                    return f
        return None

    def _handle(self, h: BaseHTTPRequestHandler) -> None:
        parts = urlsplit(h.path)
        path = parts.path
        query = dict(parse_qsl(parts.query, keep_blank_values=True))
        rec = Recorded("GET", path, query, {k.lower(): v for k, v in h.headers.items()}, raw_target=h.path)
        with self._lock: self.requests.append(rec)
        fault = self._take_fault(path)
        try:
            status, body, headers = self._answer(rec, fault)
        except Exception as e:  # a bug in the fake must show, not hang the client
            status, body, headers = 500, json.dumps({"error": f"fake failed: {e!r}"}), {}
        if status == 0:  # disconnect
            rec.status = 0
            h.close_connection = True
            try: h.connection.shutdown(2)
            except OSError: pass
            return
        rec.status = status
        data = body.encode() if isinstance(body, str) else body
        try:
            h.send_response(status)
            h.send_header("Content-Type", "text/html" if status == 500 else "application/json; charset=utf-8")
            h.send_header("Content-Length", str(len(data)))
            for k, v in headers.items(): h.send_header(k, v)
            h.end_headers()
            h.wfile.write(data)
        except (BrokenPipeError, ConnectionResetError):
            pass

    def _answer(self, rec: Recorded, fault: Fault | None) -> tuple[int, str, dict]:
        kind = fault.kind if fault else None
        if kind == "timeout":
            self._release.wait(self.hold_s)
            kind = None
        if kind == "disconnect": return 0, "", {}
        retry_after = {"Retry-After": str(fault.retry_after)} if fault and fault.retry_after is not None else {}
        if kind == "429": return 429, json.dumps(RATE_LIMIT_JSON), retry_after
        if kind == "500": return 500, "<html><body><h1>500 Internal Server Error</h1></body></html>", {}
        if kind == "503": return 503, json.dumps({"error": "Service Unavailable"}), retry_after
        if kind == "404": return 404, json.dumps(NOT_FOUND_JSON), {}
        if kind == "10012": return 401, json.dumps(HISTORY_LIMIT_JSON), {}
        if kind == "10010": return 401, json.dumps(PRO_ON_PUBLIC_JSON), {}
        if kind == "10011": return 401, json.dumps(DEMO_ON_PRO_JSON), {}
        auth = self._auth_error(rec)
        if auth: return auth
        status, payload = self._route(rec)
        if kind == "malformed" and status == 200:
            text = json.dumps(payload)
            return 200, text[: max(5, len(text) // 2)], {}
        if status == 200 and isinstance(payload, dict) and "prices" in payload:
            if kind == "empty": payload = {"prices": [], "market_caps": [], "total_volumes": []}
            elif kind == "duplicates": payload = {k: [p for p in v for _ in (0, 1)] for k, v in payload.items()}
            elif kind == "out_of_order": payload = {k: v[1::2][::-1] + v[0::2] for k, v in payload.items()}
        return status, json.dumps(payload), {}

    def _auth_error(self, rec: Recorded) -> tuple[int, str, dict] | None:
        pro, demo = PRO_HEADER in rec.headers, DEMO_HEADER in rec.headers
        if self.host_kind == "public" and pro: return 401, json.dumps(PRO_ON_PUBLIC_JSON), {}
        if self.host_kind == "pro" and demo: return 401, json.dumps(DEMO_ON_PRO_JSON), {}
        if self.host_kind == "pro" and not pro: return 401, json.dumps(KEY_MISSING_JSON), {}
        return None

    def _limited(self, rec: Recorded, oldest_ms: int) -> bool:
        if self.history_limit_days is None or PRO_HEADER in rec.headers: return False
        return oldest_ms < self.now_ms() - (self.history_limit_days + 1) * DAY_MS

    def _route(self, rec: Recorded) -> tuple[int, object]:
        p = rec.path.removeprefix("/api/v3/")
        q = rec.query
        if p == "ping": return 200, {"gecko_says": "(V3) To the Moon!"}
        if p == "simple/price":
            ids = [i for i in q.get("ids", "").split(",") if i]
            cur = q.get("vs_currencies", "usd").split(",")[0]
            now = self.now_ms()
            out = {}
            for c in ids:
                if c not in self.coins: continue  # CoinGecko leaves unknown ids out
                price, cap, vol = self.point(c, now)
                d = {cur: price}
                if q.get("include_market_cap") == "true": d[f"{cur}_market_cap"] = cap
                if q.get("include_24hr_vol") == "true": d[f"{cur}_24h_vol"] = vol
                if q.get("include_last_updated_at") == "true": d["last_updated_at"] = now // 1000
                out[c] = d
            return 200, out
        m = re.fullmatch(r"coins/([^/]+)/market_chart(/range)?", p)
        if not m: return 404, {"error": "Incorrect path. Please check https://www.coingecko.com/api/documentation"}
        coin = m.group(1)
        if coin not in self.coins: return 404, NOT_FOUND_JSON
        now = self.now_ms()
        if m.group(2):  # range: from/to in Unix seconds
            try: start, end = int(float(q["from"]) * 1000), int(float(q["to"]) * 1000)
            except (KeyError, ValueError): return 400, {"error": "invalid from/to"}
            if self._limited(rec, start): return 401, HISTORY_LIMIT_JSON
            span = end - start
            step = DAY_MS if q.get("interval") == "daily" or span > 90 * DAY_MS else HOUR_MS
            live = end >= now - 300_000  # a range reaching the present ends with the live point
            return 200, self.series(coin, start, min(end, now), step, live)
        try: days = float(q["days"]) if q.get("days") != "max" else 10_000.0
        except (KeyError, ValueError): return 400, {"error": "invalid days"}
        start = now - int(days * DAY_MS)
        if self._limited(rec, start): return 401, HISTORY_LIMIT_JSON
        step = DAY_MS if q.get("interval") == "daily" or days > 90 else HOUR_MS
        return 200, self.series(coin, start, now, step, live=True)


# ---- a CoinGecko frozen at a fixed time, and clients on it (was tests/data_helpers.py)
NOW = pd.Timestamp("2026-03-10 15:27:13", tz="UTC")  # the fake's and the client's "now" (never across a midnight)
SECRET = "CG-test-SECRET-9f8e7d"  # an API key that must never show up anywhere but in a request header


def ms(t) -> int: return int(pd.Timestamp(t).value // 1_000_000)


def frozen_fake(**kw) -> Iterator[FakeCoinGecko]:
    "A started fake CoinGecko (bitcoin, ethereum, solana) whose clock stands at `NOW`; for `yield from` in a fixture."
    with FakeCoinGecko(now=lambda: ms(NOW), **kw) as f:
        yield f


def client(fake: FakeCoinGecko, home: Path, now=NOW, **kw) -> CoinGecko:
    "A CoinGecko client on `fake` whose waits are only recorded (see `.waits`)."
    return CoinGecko(cg_settings(fake, home, **kw), sleep=lambda s: None, now=lambda: now)


def retry_waits(cg: CoinGecko) -> list[float]: return [d for kind, d in cg.waits if kind == "retry"]


def expected_days(end: pd.Timestamp, n: int) -> list[pd.Timestamp]:
    "The `n` daily grid instants up to `end` (floored to the day)."
    end = end.floor("D")
    return list(pd.date_range(end - pd.Timedelta(days=n - 1), end, freq="D"))


def fake_prices(fake: FakeCoinGecko, coin: str, times) -> list[float]:
    return [fake.price(coin, ms(t)) for t in times]


# ---- webhook receivers (was tests/monitor_helpers.py)
# A path shaped like a Slack webhook's secret part: it must never show up in records or logs.
SECRET_PATH = "/services/T0CRYPTO/B0PRED/s3cr3t-w3bh00k-t0k3n"


class _Receiver(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, mode: str, fail_first: int):
        super().__init__(("127.0.0.1", 0), _Handler)
        self.mode, self.fail_first = mode, fail_first
        self.posts: list[dict] = []
        self.paths: list[str] = []
        self.release = threading.Event()  # set at shutdown: frees handlers of the `hang` receiver
        self.lock = threading.Lock()

    @property
    def url(self) -> str: return f"http://127.0.0.1:{self.server_address[1]}{SECRET_PATH}"


class _Handler(BaseHTTPRequestHandler):
    def log_message(self, *args): pass

    def do_POST(self):
        srv: _Receiver = self.server
        body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
        with srv.lock:
            srv.paths.append(self.path)
            srv.posts.append(json.loads(body))
            n = len(srv.posts)
        if srv.mode == "hang":
            srv.release.wait(30)  # hangs past any client timeout until the test ends
            return
        code = 500 if srv.mode == "flaky" and n <= srv.fail_first else 404 if srv.mode == "gone" else 200
        self.send_response(code)
        self.send_header("Content-Length", "2")
        self.end_headers()
        self.wfile.write(b"ok")


@contextlib.contextmanager
def webhook_receiver(mode: str = "ok", fail_first: int = 1):
    """A webhook receiver on 127.0.0.1 recording every POST. `mode`: `ok` (200), `flaky` (500 for the first
    `fail_first` posts, then 200), `hang` (never answers), `gone` (404)."""
    srv = _Receiver(mode, fail_first)
    t = threading.Thread(target=srv.serve_forever, daemon=True)
    t.start()
    try: yield srv
    finally:
        srv.release.set()
        srv.shutdown()
        srv.server_close()
        t.join(5)


# ---- a Prometheus endpoint with the app's metric names (was tests/schedule_helpers.py)
@contextlib.contextmanager
def metrics_endpoint(slow: int = 0) -> Iterator[tuple[str, Counter, Histogram]]:
    "A real prometheus_client endpoint on 127.0.0.1 with the app's request metrics; yields (base URL, counter, histogram)."
    reg = CollectorRegistry()
    req = Counter("cryptopred_http_requests", "requests", ["route", "method", "status"], registry=reg)
    dur = Histogram("cryptopred_http_request_duration_seconds", "latency", ["route", "method"], registry=reg,
                    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0))
    server, thread = start_http_server(0, addr="127.0.0.1", registry=reg)
    try: yield f"http://127.0.0.1:{server.server_address[1]}", req, dur
    finally:
        server.shutdown(); server.server_close(); thread.join(5)


# ---- the app under uvicorn, ports, Prometheus text (was tests/serve_helpers.py)
def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def live_server(app, timeout: float = 60.0) -> Iterator[str]:
    "Serve `app` with uvicorn on 127.0.0.1 at a random port in a background thread; yield its base URL."
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    started = threading.Event()

    class Server(uvicorn.Server):
        async def startup(self, sockets=None):
            await super().startup(sockets=sockets)
            started.set()

    server = Server(uvicorn.Config(app, log_level="warning", lifespan="on"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    try:
        if not started.wait(timeout): raise RuntimeError(f"uvicorn did not start within {timeout} s")
        if server.should_exit: raise RuntimeError("uvicorn failed to start (see the log above)")
        yield f"http://127.0.0.1:{sock.getsockname()[1]}"
    finally:
        server.should_exit = True
        thread.join(timeout)
        sock.close()


def parse_metrics(text: str) -> dict[tuple[str, tuple], float]:
    "Prometheus text -> {(sample name, sorted label items): value}."
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for fam in text_string_to_metric_families(text) for s in fam.samples}


def sample(metrics: dict, name: str, **labels) -> float:
    "The value of one sample (0 when absent)."
    return metrics.get((name, tuple(sorted(labels.items()))), 0.0)
