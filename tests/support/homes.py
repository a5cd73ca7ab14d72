"""ONE factory for settings on a temporary home (`home_settings`), its presets, and homes filled with the simulated
market and registered champions. Every preset is `home_settings` with a few settings fixed; nothing is read from the
environment or a .env file."""
from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.linear_model import LogisticRegression

from cryptopred.artifacts import frame_sha256
from cryptopred.classify import DirectionModel, evaluate_classifier, fit_final_model
from cryptopred.common import to_jsonable
from cryptopred.config import Settings, load_settings
from cryptopred.data.ingest import ingest
from cryptopred.data.simulated import SimulatedMarket
from cryptopred.data.store import Store
from cryptopred.features import build_panel
from cryptopred.forecast import ProphetForecaster, forecast_metrics
from cryptopred.monitor.checks import monitored_features
from cryptopred.registry import ModelRegistry, open_registry
from cryptopred.studies.classifier import coin_inputs
from cryptopred.train.classifier import calibration_records

COINS = ("bitcoin", "ethereum")
SOURCE = "simulated"
QUICK_TRAIN = dict(search_budget=1, cv_folds=2)  # the smallest search the trainers accept
# a hundred CoinGecko ids (the default five first) for the tests and the benchmark at scale
HUNDRED_COINS = (
    "bitcoin", "ethereum", "solana", "binancecoin", "ripple", "tether", "usd-coin", "cardano", "dogecoin", "tron",
    "avalanche-2", "chainlink", "polkadot", "the-open-network", "shiba-inu", "litecoin", "bitcoin-cash", "near",
    "uniswap", "internet-computer", "dai", "leo-token", "ethereum-classic", "aptos", "stellar", "monero", "okb",
    "cosmos", "filecoin", "hedera-hashgraph", "crypto-com-chain", "mantle", "arbitrum", "vechain", "render-token",
    "immutable-x", "maker", "injective-protocol", "optimism", "the-graph", "fantom", "thorchain", "algorand",
    "lido-dao", "quant", "aave", "bittensor", "sui", "flow", "theta-token", "axie-infinity", "the-sandbox",
    "decentraland", "elrond-erd-2", "tezos", "eos", "kucoin-shares", "chiliz", "neo", "gala", "iota", "klay-token",
    "bitcoin-sv", "pancakeswap-token", "curve-dao-token", "frax-share", "mina-protocol", "zcash", "ecash",
    "conflux-token", "dash", "gmx", "havven", "1inch", "compound-governance-token", "enjincoin",
    "basic-attention-token", "loopring-v2", "nexo", "kava", "zilliqa", "rocket-pool", "celo", "qtum", "ravencoin",
    "harmony", "ankr", "ocean-protocol", "iotex", "yearn-finance", "sushi", "convex-finance", "balancer-v2", "waves",
    "holotoken", "icon", "golem", "siacoin", "decred", "nervos-network",
)


def home_settings(home: Path | str, **settings) -> Settings:
    "Settings on `home` with `settings` fixed and every other setting at its default (no environment, no .env)."
    return load_settings(environ={}, env_file=None, home=Path(home), **settings)


# ---- presets
def cg_settings(fake, home: Path, **kw) -> Settings:
    "Settings on `home` pointed at a fake CoinGecko (`fake.url`), with fast limits (retry waits are recorded, not slept)."
    return home_settings(home, **{**dict(coingecko_url=fake.url, calls_per_minute=60_000, request_timeout=5.0,
                                         max_retries=3, backoff_base=1.0, backoff_cap=60.0), **kw})


def serve_settings(home: Path | str, coins=COINS, **overrides) -> Settings:
    "Settings on `home` serving `coins` from the simulated source, small training budgets."
    return home_settings(home, coins=tuple(coins), source=SOURCE, **QUICK_TRAIN, n_jobs=1, **overrides)


T_END = pd.Timestamp("2026-03-01", tz="UTC")  # the last stored day of the drifted store
T_CHANGE = pd.Timestamp("2025-12-31", tz="UTC")  # volatility x3 and autocorrelation flipped from here on


def drift_settings(home: Path, **kw) -> Settings:
    "Settings on `home` for two simulated coins with the regime change injected."
    return home_settings(home, **{**dict(coins=COINS, source=SOURCE, scheduled_source=SOURCE,
                                         sim_regime_change=T_CHANGE.to_pydatetime()), **kw})


SIM_NOW = pd.Timestamp("2026-03-01 12:00", tz="UTC")  # the simulated market's "now" (a fixed history every run)
QUICK = {"families": ["logistic"], "n_boot": 100, "importance_repeats": 2}  # a classifier run of a few seconds


def simulated_home(home, coins=COINS, days: int = 300, **settings) -> Settings:
    "Settings on `home` (simulated source, tiny budgets) with `days` of the simulated market up to `SIM_NOW` ingested."
    s = home_settings(home, source=SOURCE, coins=tuple(coins), **{**QUICK_TRAIN, **settings})
    report = ingest(s, days=days, now=SIM_NOW)
    assert report.ok, report.failed
    return s


# ---- stores with the regime change, champions trained before it (was tests/schedule_helpers.py)
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


# ---- champions trained through the public APIs (was tests/serve_helpers.py)
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


def register_forecaster(settings: Settings, coin: str, promote: bool = True, holdout_days: int = 14,
                        model_cls: type = ProphetForecaster) -> str:
    "Fit a forecaster (v1, or `VolProphetForecaster`) on the stored prices, score it on the last `holdout_days`, refit, register."
    frame = Store(settings).read(coin, settings.granularity, SOURCE)
    train, test = frame.iloc[:-holdout_days], frame.iloc[-holdout_days:]
    path = model_cls().fit(train, settings.granularity).forecast(holdout_days)
    metrics = forecast_metrics(test["price"].to_numpy(), path["yhat"].to_numpy(), path["yhat_lower_80"],
                               path["yhat_upper_80"], path["yhat_lower_95"], path["yhat_upper_95"])
    model = model_cls().fit(frame, settings.granularity)
    params = model.params.to_dict() if hasattr(model, "params") else {"model": "volprophet", **model.cfg}
    reg = registry_of(settings)
    v = reg.register("forecaster", coin, settings.granularity, model, horizon=holdout_days, data_source=SOURCE,
                     data_hash=frame_sha256(frame), train_start=frame["timestamp"].iloc[0],
                     train_end=frame["timestamp"].iloc[-1], params=params, holdout_metrics=metrics)
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


def last_row_time(settings: Settings, coin: str) -> pd.Timestamp:
    return Store(settings).read(coin, settings.granularity, SOURCE)["timestamp"].iloc[-1]
