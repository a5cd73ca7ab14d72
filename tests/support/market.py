"""Synthetic frames for tests: store rows of a simulated market with the defects cleaning must handle, random walks,
prediction records as the app logs them, truncation at a time, causal (provisional) daily features."""
from __future__ import annotations

import numpy as np
import pandas as pd
from scipy.signal import lfilter

from cryptopred.common import granularity_step


def simulated_market(
    n: int = 1000,  # grid steps
    granularity: str = "daily",
    seed: int = 0,
    start: str = "2020-01-01",
    p0: float = 100.0,
    short_gaps: int = 0,  # holes of 1-2 steps
    long_gaps: int = 0,  # holes of 3-12 steps
    spikes: int = 0,  # bad ticks (one price x3 or /3)
    zero_volumes: int = 0,  # CoinGecko-style 0 = unknown
    jitter: int = 0,  # snapshots a few minutes late
) -> pd.DataFrame:
    "Store rows of a GBM with stochastic (AR(1) log-) volatility and optional defects, all vectorized."
    rng = np.random.default_rng(seed)
    per_day = 1 if granularity == "daily" else 24
    base_vol = 0.035 / np.sqrt(per_day)
    log_vol = lfilter([1.0], [1.0, -0.97], rng.normal(0, 0.12, n))  # persistent volatility regimes
    ret = base_vol * np.exp(log_vol) * rng.standard_t(5, n) / np.sqrt(5 / 3)
    price = p0 * np.exp(np.cumsum(ret))
    supply = 1e7 * (1 + np.arange(n) * 1e-5 / per_day)
    volume = price * supply * np.exp(rng.normal(-3, 0.4, n) + 8 * np.abs(ret))
    ts = pd.date_range(start, periods=n, freq="D" if granularity == "daily" else "h", tz="UTC", unit="ns")
    df = pd.DataFrame({"timestamp": ts, "price": price, "market_cap": price * supply, "total_volume": volume,
                       "source": "simulated", "ingested_at": ts[-1] + granularity_step(granularity)})
    if spikes:
        at = rng.choice(np.arange(40, n - 1), size=spikes, replace=False)
        df.loc[at, "price"] *= rng.choice([3.0, 1 / 3], size=spikes)
    if zero_volumes:
        df.loc[rng.choice(n, size=zero_volumes, replace=False), "total_volume"] = 0.0
    if jitter:
        at = rng.choice(np.arange(1, n), size=jitter, replace=False)
        df.loc[at, "timestamp"] += pd.to_timedelta(rng.integers(1, 40, size=jitter), unit="min")
    drop = []
    for k, (lo, hi) in ((short_gaps, (1, 3)), (long_gaps, (3, 13))):
        for s, length in zip(rng.integers(2, max(3, n - 15), size=k), rng.integers(lo, hi, size=k), strict=True):
            drop.extend(range(s, min(s + length, n - 1)))
    return df.drop(index=sorted(set(drop))).reset_index(drop=True)


def truncate(frame: pd.DataFrame, cut: pd.Timestamp, granularity: str) -> pd.DataFrame:
    "The store rows known at grid time `cut`: every row whose grid step is at or before it."
    # a row's grid step is its NEAREST grid point, as preprocess.clean assigns it (a 23:29 snapshot is the next day's)
    labels = frame["timestamp"].dt.round("D" if granularity == "daily" else "h")
    return frame[labels <= cut]


def prefix_mismatches(part: pd.DataFrame, full: pd.DataFrame, columns: list[str] | None = None) -> list[str]:
    "Columns whose values on `part`'s rows differ from `full`'s (exact comparison, NaN equal to NaN)."
    if not part.index.equals(full.index[:len(part)]):
        return ["<index>"]
    bad = []
    for c in columns if columns is not None else part.columns:
        a, b = part[c].to_numpy(), full[c].iloc[:len(part)].to_numpy()
        same = (a == b) | (pd.isna(a) & pd.isna(b))
        if not same.all(): bad.append(c)
    return bad


def prediction(served_at, coin="bitcoin", prob_up=0.6, version="clf-1", horizon=1, granularity="daily",
               **extra) -> dict:
    "A prediction record as the app logs it: as_of is the last full step before `served_at`."
    step = granularity_step(granularity)
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


def provisional_features(price: pd.Series, n_lags: int = 5,
                         horizon: int = 1) -> tuple[pd.DataFrame, pd.Series, pd.Series]:
    "Causal features `X`, next-`horizon` direction `y` (0/1, NaN unknown) and one-step forward log return."
    lp = np.log(price)
    r = lp.diff()  # return into t: known at t
    X = pd.DataFrame({f"ret_lag{k}": r.shift(k) for k in range(n_lags)}, index=price.index)
    for w in (7, 30):
        X[f"vol_{w}"] = r.rolling(w).std()
        X[f"ma_ratio_{w}"] = lp - lp.rolling(w).mean()
    X["ret_7"] = lp - lp.shift(7)
    fwd_h = lp.shift(-horizon) - lp
    y = (fwd_h > 0).astype(float).where(fwd_h.notna())
    fwd1 = (lp.shift(-1) - lp).rename("forward_return")
    return X, y.rename("target"), fwd1


def leaky_features(X: pd.DataFrame, fwd: pd.Series, noise: float = 0.001, seed: int = 0) -> pd.DataFrame:
    "`X` plus a column that leaks the target: tomorrow's return with a little noise."
    rng = np.random.default_rng(seed)
    return X.assign(leak=fwd + rng.normal(0, noise, len(fwd)))
