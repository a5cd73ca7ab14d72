"""Provisional, causal daily features for the evaluation tests and the first real-data measurement.

These stand in for `cryptopred.features` until it lands: every feature at row t uses prices up to t only; the
target and the forward return look one step ahead. Rows are on a strict daily grid (timestamps floored to the date),
so a missing day is a NaN row, not a silent shift.
"""
from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pandas as pd

REAL_COINS = ("bitcoin", "ethereum", "solana", "binancecoin", "ripple",
              "cardano", "dogecoin", "litecoin", "tron", "chainlink")


def load_daily_prices(real_dir: Path, coin: str, start: str | None = "2017-01-01") -> pd.Series:
    "Daily prices of `coin` from `<real_dir>/<coin>_daily.csv` on a strict UTC daily grid (gaps stay NaN)."
    df = pd.read_csv(Path(real_dir) / f"{coin}_daily.csv")
    ts = pd.to_datetime(df["timestamp"], utc=True).dt.floor("D")
    s = pd.Series(df["price"].to_numpy(float), index=pd.DatetimeIndex(ts, name="timestamp"), name=coin)
    if s.index.duplicated().any(): raise ValueError(f"{coin}: two rows fall on the same date after flooring")
    s = s.sort_index()
    s = s.reindex(pd.date_range(s.index[0], s.index[-1], freq="D", tz="UTC", name="timestamp"))
    return s if start is None else s[s.index >= pd.Timestamp(start, tz="UTC")]


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


def real_coin_data(real_dir: Path, coin: str, start: str = "2017-01-01", end: str | None = None):
    "Provisional `(X, y, forward_return)` for one real coin."
    p = load_daily_prices(real_dir, coin, start)
    if end is not None: p = p[p.index < pd.Timestamp(end, tz="UTC")]
    return provisional_features(p)


def measure_real(real_dir: Path, coins=REAL_COINS, holdout_start: str = "2022-01-01", **kw) -> pd.DataFrame:
    "The first honest measurement: `evaluate_classifier` on every real coin with the provisional features."
    from cryptopred.classify import evaluate_classifier
    from cryptopred.config import load_settings
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
    from cryptopred.config import Settings
    df = measure_real(Path(a.real_dir or Settings().real_data_dir), a.coins.split(","), refit_every=a.refit_every)
    pd.set_option("display.width", 250); pd.set_option("display.max_columns", 60)
    print(df.to_string())
    if a.out: Path(a.out).write_text(json.dumps(df.to_dict(orient="records"), indent=1, default=str))
