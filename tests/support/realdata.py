"""The real market data beside the project (../shared/data/real), read in place through `cryptopred.data.csv` (the
one real-data reader); tests needing it skip with the reason where it is absent. Run as
`cd tests && python -m support.realdata` it measures the classifier on every real coin with the provisional features."""
from __future__ import annotations

import os
import time
from pathlib import Path

import pandas as pd
import pytest

from cryptopred.classify import evaluate_classifier
from cryptopred.config import Settings, load_settings
from cryptopred.data.csv import RealDataError, real_data_dir
from cryptopred.data.csv import read_real as _read_csv

from .market import provisional_features

REAL_COINS = ("bitcoin", "ethereum", "solana", "binancecoin", "ripple", "cardano", "dogecoin", "litecoin", "tron",
              "chainlink")


def _real_dir() -> Path | None:
    "The real data folder: the configured default, or CRYPTOPRED_REAL_DATA_DIR (read at import, before fixtures)."
    for d in (Settings().real_data_dir, os.environ.get("CRYPTOPRED_REAL_DATA_DIR")):
        if d and (Path(d) / "bitcoin_daily.csv").is_file(): return Path(d)
    return None


REAL_DIR = _real_dir()
needs_real = pytest.mark.skipif(REAL_DIR is None, reason="real data folder ../shared/data/real is absent "
                                "(set CRYPTOPRED_REAL_DATA_DIR to run these tests elsewhere)")


def real_dir() -> Path:
    "The real data folder, or skip the test saying why."
    try: return real_data_dir()
    except RealDataError as e: pytest.skip(str(e))


def real(coin: str, granularity: str = "daily") -> pd.DataFrame:
    "Store-like rows of a real coin (skips when the folder is absent)."
    return _read_csv(coin, granularity, real_dir())


def read_real(coin: str, granularity: str = "daily") -> pd.DataFrame:
    "A real series as store rows (timestamp UTC), read in place from `REAL_DIR`."
    return _read_csv(coin, granularity, REAL_DIR)


def load_daily_prices(real_dir: Path, coin: str, start: str | None = "2017-01-01") -> pd.Series:
    "Daily prices of `coin` from `<real_dir>/<coin>_daily.csv` on a strict UTC daily grid (gaps stay NaN)."
    df = _read_csv(coin, "daily", real_dir)
    ts = df["timestamp"].dt.floor("D")
    s = pd.Series(df["price"].to_numpy(float), index=pd.DatetimeIndex(ts, name="timestamp"), name=coin)
    if s.index.duplicated().any(): raise ValueError(f"{coin}: two rows fall on the same date after flooring")
    s = s.sort_index()
    s = s.reindex(pd.date_range(s.index[0], s.index[-1], freq="D", tz="UTC", name="timestamp"))
    return s if start is None else s[s.index >= pd.Timestamp(start, tz="UTC")]


def real_coin_data(real_dir: Path, coin: str, start: str = "2017-01-01", end: str | None = None):
    "Provisional `(X, y, forward_return)` for one real coin."
    p = load_daily_prices(real_dir, coin, start)
    if end is not None: p = p[p.index < pd.Timestamp(end, tz="UTC")]
    return provisional_features(p)


def measure_real(real_dir: Path, coins=REAL_COINS, holdout_start: str = "2022-01-01", **kw) -> pd.DataFrame:
    "The first honest measurement: `evaluate_classifier` on every real coin with the provisional features."
    s = load_settings(environ={}, env_file=None)
    rows = []
    for coin in coins:
        X, y, fwd = real_coin_data(real_dir, coin)
        t0 = time.perf_counter()
        ev = evaluate_classifier(X, y, fwd, settings=s, holdout_start=holdout_start, name=coin, **kw)
        rows.append({**ev.summary(), "seconds": round(time.perf_counter() - t0, 1)})
    return pd.DataFrame(rows)


if __name__ == "__main__":
    import argparse
    import json
    ap = argparse.ArgumentParser()
    ap.add_argument("--coins", default=",".join(REAL_COINS))
    ap.add_argument("--refit-every", type=int, default=None)
    ap.add_argument("--out", default=None)
    ap.add_argument("--real-dir", default=None, help="default: Settings().real_data_dir")
    a = ap.parse_args()
    df = measure_real(Path(a.real_dir or Settings().real_data_dir), a.coins.split(","), refit_every=a.refit_every)
    pd.set_option("display.width", 250); pd.set_option("display.max_columns", 60)
    print(df.to_string())
    if a.out: Path(a.out).write_text(json.dumps(df.to_dict(orient="records"), indent=1, default=str))
