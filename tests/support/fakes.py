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
import socket
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pandas as pd
from prometheus_client import CollectorRegistry, Counter, Histogram, start_http_server
from prometheus_client.parser import text_string_to_metric_families

from cryptopred.data.coingecko import CoinGecko
from cryptopred.data.fake import (  # the fake CoinGecko lives in the package (the notebooks use it too)
    DAY_MS,  # noqa: F401
    PRO_HEADER,  # noqa: F401  (re-exported)
    FakeCoinGecko,
)
from cryptopred.serve.deploy import serve_in_thread

from .homes import cg_settings

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


def live_server(app, timeout: float = 60.0):
    "Serve `app` with uvicorn on 127.0.0.1 at a random port in a background thread (a context that yields its base URL)."
    return serve_in_thread(app=app, timeout=timeout)


def parse_metrics(text: str) -> dict[tuple[str, tuple], float]:
    "Prometheus text -> {(sample name, sorted label items): value}."
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for fam in text_string_to_metric_families(text) for s in fam.samples}


def sample(metrics: dict, name: str, **labels) -> float:
    "The value of one sample (0 when absent)."
    return metrics.get((name, tuple(sorted(labels.items()))), 0.0)
