"""Fixtures for the monitoring tests: prediction records, Prometheus scrapes and webhook receivers on 127.0.0.1."""
from __future__ import annotations

import contextlib
import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import numpy as np
import pandas as pd

# A path shaped like a Slack webhook's secret part: it must never show up in records or logs.
SECRET_PATH = "/services/T0CRYPTO/B0PRED/s3cr3t-w3bh00k-t0k3n"


def prediction(served_at, coin="bitcoin", prob_up=0.6, version="clf-1", horizon=1, granularity="daily",
               **extra) -> dict:
    "A prediction record as the app logs it: as_of is the last full step before `served_at`."
    step = pd.Timedelta(days=1) if granularity == "daily" else pd.Timedelta(hours=1)
    served = pd.Timestamp(served_at)
    served = served.tz_localize("UTC") if served.tzinfo is None else served
    as_of = served.floor("D" if granularity == "daily" else "h")
    return {"served_at": served.isoformat(), "coin": coin, "granularity": granularity, "as_of": as_of.isoformat(),
            "horizon": horizon, "target_time": (as_of + horizon * step).isoformat(), "prob_up": prob_up,
            "direction": "up" if prob_up >= 0.5 else "down", "classifier_version": version,
            "forecaster_version": None, "price": 100.0, "source": "simulated", "latency_ms": 3.0, **extra}


def random_walk_prices(n: int, seed: int = 0, freq: str = "D", start: str = "2025-01-01",
                       vol: float = 0.03) -> pd.DataFrame:
    "Store rows (timestamp, price, market_cap, total_volume, source) of a geometric random walk."
    rng = np.random.default_rng(seed)
    ts = pd.date_range(start, periods=n, freq=freq, tz="UTC")
    price = 100 * np.exp(np.cumsum(rng.normal(0, vol, n)))
    return pd.DataFrame({"timestamp": ts, "price": price, "market_cap": price * 1e7, "total_volume": price * 1e5,
                         "source": "simulated"})


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
