"""Test helpers for preprocess/features: a small vectorized simulated market in the store-row format, access to the
real data, truncation at a time, and the frame comparison the look-ahead tests use.

`simulated_market` stands in for `cryptopred.sources.simulate_market` (built on another branch); it only needs to
produce plausible store rows with the defects cleaning must handle (holes, bad ticks, zero volumes, late snapshots).
"""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy.signal import lfilter

from cryptopred.config import Settings

REAL_COINS = ("bitcoin", "ethereum", "solana", "binancecoin", "ripple", "cardano", "dogecoin", "litecoin", "tron",
              "chainlink")
STEP = {"daily": pd.Timedelta(days=1), "hourly": pd.Timedelta(hours=1)}


def _real_dir() -> Path | None:
    "The real data folder: the configured default, or CRYPTOPRED_REAL_DATA_DIR (read at import, before fixtures)."
    for d in (Settings().real_data_dir, os.environ.get("CRYPTOPRED_REAL_DATA_DIR")):
        if d and (Path(d) / "bitcoin_daily.csv").is_file(): return Path(d)
    return None


REAL_DIR = _real_dir()
needs_real = pytest.mark.skipif(REAL_DIR is None, reason="real data folder ../shared/data/real is absent "
                                "(set CRYPTOPRED_REAL_DATA_DIR to run these tests elsewhere)")


def read_real(coin: str, granularity: str = "daily") -> pd.DataFrame:
    "A real series as store rows (timestamp parsed as UTC), read in place."
    df = pd.read_csv(REAL_DIR / f"{coin}_{granularity}.csv")
    df["timestamp"] = pd.to_datetime(df["timestamp"], utc=True)
    return df


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
                       "source": "simulated", "ingested_at": ts[-1] + STEP[granularity]})
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
    labels = frame["timestamp"].dt.floor("D" if granularity == "daily" else "h")
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
