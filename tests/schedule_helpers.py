"""Helpers for the profile/monitor run-book, scheduler and drift-loop tests: a simulated store with the simulated
market's regime change injected, champions trained on the time before it, and a Prometheus endpoint on 127.0.0.1
instrumented with the app's metric names."""
from __future__ import annotations

import contextlib
import hashlib
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pandas as pd
from prometheus_client import CollectorRegistry, Counter, Histogram, start_http_server
from sklearn.linear_model import LogisticRegression

from cryptopred.config import Settings, load_settings
from cryptopred.monitor.checks import monitored_features
from cryptopred.artifacts import frame_sha256
from cryptopred.registry import ModelRegistry
from cryptopred.data.simulated import SimulatedMarket
from cryptopred.data.ingest import ingest

T_END = pd.Timestamp("2026-03-01", tz="UTC")  # the last stored day
T_CHANGE = pd.Timestamp("2025-12-31", tz="UTC")  # volatility x3 and autocorrelation flipped from here on


def drift_settings(home: Path, **kw) -> Settings:
    "Settings on `home` for two simulated coins with the regime change injected."
    base = dict(home=home, coins=("bitcoin", "ethereum"), source="simulated", scheduled_source="simulated",
                sim_regime_change=T_CHANGE.to_pydatetime())
    return load_settings(environ={}, env_file=None, **{**base, **kw})


def drifted_store(settings: Settings, days: int = 300, end: pd.Timestamp = T_END) -> None:
    "Ingest `days` of the simulated market (regime change included) up to `end`."
    src = SimulatedMarket(seed=settings.seed, regime_change=settings.sim_regime_change, now=lambda: end)
    rep = ingest(settings, source=src, days=days, now=end)
    assert rep.ok, rep.table()


def register_champions(settings: Settings, until: pd.Timestamp = T_CHANGE) -> dict[str, str]:
    "A logistic-regression champion per coin trained on the feature rows before `until` (what it learned is beside the point)."
    feats, errors = monitored_features(settings)
    assert not errors, errors
    reg, out = ModelRegistry(settings=settings), {}
    for coin, f in feats.items():
        train = f.loc[: until - pd.Timedelta(days=1)]
        X, y = train.fillna(0).to_numpy(), (np.arange(len(train)) % 2).astype(int)
        v = reg.register("classifier", coin, settings.granularity, LogisticRegression().fit(X, y), horizon=1,
                         data_source="simulated", data_hash=frame_sha256(train), train_start=train.index[0],
                         train_end=train.index[-1], features=list(train))
        reg.promote("classifier", coin, settings.granularity, v)
        out[coin] = v
    return out


def tree_digest(folder: Path) -> dict[str, str]:
    "sha256 of every file below `folder` (relative path -> digest): to prove a folder was left untouched."
    if not folder.is_dir(): return {}
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file() and not p.name.endswith(".lock")}


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
