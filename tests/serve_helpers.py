"""Fixtures for the serving tests: a runtime home with simulated data and registered champions, and the real app
served by uvicorn on a random loopback port in a background thread.

Until `cryptopred.train` exists, champions are made here through public APIs only: `store.ingest` (simulated),
`features.build_panel`, `classify.evaluate_classifier` + `fit_final_model`, `forecast.ProphetForecaster`,
`registry.ModelRegistry.register/promote` — with small data and budgets (a few seconds for two coins)."""
from __future__ import annotations

import logging
import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pandas as pd
import pytest

from cryptopred.classify import DirectionModel, evaluate_classifier, fit_final_model
from cryptopred.studies.classifier import coin_inputs
from cryptopred.config import Settings, load_settings
from cryptopred.features import build_panel
from cryptopred.forecast import ProphetForecaster, forecast_metrics
from cryptopred.common import to_jsonable
from cryptopred.artifacts import frame_sha256
from cryptopred.registry import ModelRegistry, open_registry
from cryptopred.data.simulated import SimulatedMarket
from cryptopred.data.ingest import ingest
from cryptopred.data.store import Store
from cryptopred.train.classifier import calibration_records

logging.getLogger("cmdstanpy").disabled = True

COINS = ("bitcoin", "ethereum")
SOURCE = "simulated"


def serve_settings(home: Path | str, coins=COINS, **overrides) -> Settings:
    "Settings on `home` serving `coins` from the simulated source, small training budgets, nothing from the environment."
    return load_settings(environ={"CRYPTOPRED_HOME": str(home)}, env_file=None, coins=tuple(coins), source=SOURCE,
                         search_budget=1, cv_folds=2, n_jobs=1, **overrides)


def registry_of(settings: Settings) -> ModelRegistry:
    "The registry the app uses (the classifier's skops types trusted)."
    return open_registry(settings)


def register_classifier(settings: Settings, coin: str, family: str = "logistic", promote: bool = True,
                        reason: str = "test fixture") -> str:
    "Evaluate and fit a small direction classifier for `coin` on the stored data, register it, optionally force-promote."
    st = Store(settings)
    frames = {c: st.read(c, settings.granularity, SOURCE) for c in settings.coins}
    fe = build_panel(frames, settings.granularity, settings=settings)[coin]
    X, y, fwd, usable = coin_inputs(fe)
    cols = list(X.columns)
    ev = evaluate_classifier(X, y, fwd, settings, usable=usable, families=[family], ensemble=False, n_boot=100,
                             calibrations=("none",), name=coin)
    fitted = fit_final_model(X, y, settings, usable=usable, evaluation=ev)
    model = DirectionModel(fitted.estimator, fitted.features, to_jsonable(fitted.metadata))  # NaN -> null, as train does
    reg = registry_of(settings)
    used = fe[fe["usable"]].index
    v = reg.register("classifier", coin, settings.granularity, model, horizon=settings.horizon, data_source=SOURCE,
                     data_hash=frame_sha256(frames[coin]), train_start=used[0], train_end=used[-1], features=cols,
                     params={"family": ev.family, **ev.params}, holdout_metrics=ev.summary(),
                     extra={"calibration": calibration_records(ev)})
    if promote: reg.promote("classifier", coin, settings.granularity, v, force=True, reason=reason)
    return v


def register_forecaster(settings: Settings, coin: str, promote: bool = True, holdout_days: int = 14) -> str:
    "Fit the Prophet forecaster on the stored prices, score it on the last `holdout_days`, refit on all, register."
    frame = Store(settings).read(coin, settings.granularity, SOURCE)
    train, test = frame.iloc[:-holdout_days], frame.iloc[-holdout_days:]
    path = ProphetForecaster().fit(train, settings.granularity).forecast(holdout_days)
    metrics = forecast_metrics(test["price"].to_numpy(), path["yhat"].to_numpy(), path["yhat_lower_80"],
                               path["yhat_upper_80"], path["yhat_lower_95"], path["yhat_upper_95"])
    model = ProphetForecaster().fit(frame, settings.granularity)
    reg = registry_of(settings)
    v = reg.register("forecaster", coin, settings.granularity, model, horizon=holdout_days, data_source=SOURCE,
                     data_hash=frame_sha256(frame), train_start=frame["timestamp"].iloc[0],
                     train_end=frame["timestamp"].iloc[-1], params=model.params.to_dict(), holdout_metrics=metrics)
    if promote: reg.promote("forecaster", coin, settings.granularity, v, force=True, reason="test fixture")
    return v


def make_champions(settings: Settings, days: int = 240, coins=None, lag_days: int = 3) -> dict[tuple[str, str], str]:
    """Ingest `days` of simulated data ending `lag_days` ago (so a test can ingest newer days later) and register +
    promote a classifier and a forecaster per coin."""
    coins = list(coins or settings.coins)
    end = pd.Timestamp.now(tz="UTC") - pd.Timedelta(days=lag_days)
    src = SimulatedMarket.from_settings(settings, now=lambda: end)
    report = ingest(settings, source=src, coins=list(settings.coins), granularity=settings.granularity, days=days, now=end)
    report.raise_for_failures()
    out = {}
    for coin in coins:
        out["classifier", coin] = register_classifier(settings, coin)
        out["forecaster", coin] = register_forecaster(settings, coin)
    return out


@pytest.fixture(scope="session")
def served_home(tmp_path_factory) -> Settings:
    "A home with 240 days of simulated bitcoin and ethereum and a champion classifier and forecaster for each."
    s = serve_settings(tmp_path_factory.mktemp("serve") / "home")
    make_champions(s)
    return s


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextmanager
def live_server(app, timeout: float = 60.0) -> Iterator[str]:
    "Serve `app` with uvicorn on 127.0.0.1 at a random port in a background thread; yield its base URL."
    import uvicorn

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
    from prometheus_client.parser import text_string_to_metric_families
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for fam in text_string_to_metric_families(text) for s in fam.samples}


def sample(metrics: dict, name: str, **labels) -> float:
    "The value of one sample (0 when absent)."
    return metrics.get((name, tuple(sorted(labels.items()))), 0.0)


def last_row_time(settings: Settings, coin: str) -> pd.Timestamp:
    return Store(settings).read(coin, settings.granularity, SOURCE)["timestamp"].iloc[-1]
