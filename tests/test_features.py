"""`cryptopred.features`: indicators against the `ta` package (independent reference, 1e-8), every feature against
an independent recomputation, targets, the usable mask, the panel and the settings."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import ta
from support.market import simulated_market
from support.realdata import REAL_COINS, REAL_DIR, needs_real, read_real

from cryptopred.config import load_settings
from cryptopred.features import (
    NON_FEATURES,
    OPTIONAL_FEATURES,
    bollinger_pctb,
    build_features,
    build_panel,
    ema,
    feature_columns,
    macd,
    rsi,
    sma,
    warmup_steps,
)
from cryptopred.preprocess import PreprocessError, clean

TOL = 1e-8


def close(a: pd.Series, b: pd.Series, tol: float = TOL) -> None:
    "Equal NaN pattern and values within `tol` (relative to max(1, |b|))."
    a, b = pd.Series(a).to_numpy(dtype="float64"), pd.Series(b).to_numpy(dtype="float64")
    np.testing.assert_array_equal(np.isnan(a), np.isnan(b))
    ok = ~np.isnan(b)
    assert ok.sum() > 0
    err = np.abs(a[ok] - b[ok]) / np.maximum(1.0, np.abs(b[ok]))
    assert err.max() <= tol, f"max error {err.max():.3g} > {tol:g}"


def _series():
    yield "simulated", pd.Series(simulated_market(3000, seed=11)["price"].to_numpy())
    yield "simulated-hourly", pd.Series(simulated_market(3000, "hourly", seed=12)["price"].to_numpy())
    if REAL_DIR is not None:
        yield "bitcoin", pd.Series(read_real("bitcoin")["price"].to_numpy())
        yield "ethereum-hourly", pd.Series(read_real("ethereum", "hourly")["price"].to_numpy())


SERIES = dict(_series())


@pytest.mark.parametrize("name", SERIES)
@pytest.mark.parametrize("scale", [1, 24])
def test_indicators_match_ta(name, scale):
    x = SERIES[name]
    for n in (7 * scale, 30 * scale):
        close(sma(x, n), ta.trend.SMAIndicator(x, n).sma_indicator())
        close(ema(x, n), ta.trend.EMAIndicator(x, n).ema_indicator())
    close(rsi(x, 14 * scale), ta.momentum.RSIIndicator(x, 14 * scale).rsi())
    for series in (x, np.log(x)):
        ref = ta.trend.MACD(series, window_slow=26 * scale, window_fast=12 * scale, window_sign=9 * scale)
        m = macd(series, 12 * scale, 26 * scale, 9 * scale)
        close(m["line"], ref.macd()); close(m["signal"], ref.macd_signal()); close(m["hist"], ref.macd_diff())
    close(bollinger_pctb(x, 20 * scale, 2.0), ta.volatility.BollingerBands(x, 20 * scale, 2).bollinger_pband())


DAILY = ["ret_lag_1", "ret_lag_2", "ret_lag_3", "ret_lag_4", "ret_lag_5", "vol_7", "vol_30", "sma_rel_7", "ema_rel_7",
         "sma_rel_14", "ema_rel_14", "sma_rel_30", "ema_rel_30", "rsi_14", "macd_line", "macd_signal", "macd_hist",
         "bb_pctb", "vol_ratio_7_30", "drawdown_30", "runup_30", "ret_z_1", "mom_z_7", "mom_z_30", "volume_z",
         "volume_mcap", "mcap_change", "dow_sin", "dow_cos", "month_sin", "month_cos"]


def test_feature_names():
    df = simulated_market(400, seed=1)
    assert feature_columns(build_features(df)) == DAILY
    assert feature_columns(build_features(df, btc=simulated_market(400, seed=2))) == DAILY + ["btc_ret", "btc_vol_7"]
    h = build_features(simulated_market(1200, "hourly", seed=1), "hourly", n_lags=2)
    assert feature_columns(h) == DAILY[:2] + DAILY[5:] + ["hour_sin", "hour_cos"]
    assert list(h.columns[-7:]) == list(NON_FEATURES)


@pytest.mark.parametrize("granularity, n", [("daily", 800), ("hourly", 3000)])
def test_features_against_an_independent_recomputation(granularity, n):
    "On a gap-free series every feature equals its definition computed with `ta` and plain numpy."
    s = 1 if granularity == "daily" else 24
    df = simulated_market(n, granularity, seed=21, spikes=3)
    btc = simulated_market(n, granularity, seed=22, spikes=2)
    f = build_features(df, granularity, btc=btc, n_lags=3)
    c, cb = clean(df, granularity)[0], clean(btc, granularity)[0]
    p, r = pd.Series(df["price"].to_numpy()), c["log_return_winsorized"].reset_index(drop=True)
    assert c["outlier"].sum() >= 6  # the spikes were winsorized: features below use the winsorized returns
    for k in (1, 2, 3):
        close(f[f"ret_lag_{k}"], r.shift(k - 1), 0)
    for q in (7, 30):
        w = q * s
        roll = np.sqrt(s) * np.array([np.std(r[i - w + 1:i + 1], ddof=1) if i >= w else np.nan for i in range(n)])
        close(f[f"vol_{q}"], roll, 1e-10)
    for q in (7, 14, 30):
        close(f[f"sma_rel_{q}"], p / ta.trend.SMAIndicator(p, q * s).sma_indicator() - 1)
        close(f[f"ema_rel_{q}"], p / ta.trend.EMAIndicator(p, q * s).ema_indicator() - 1)
    path = pd.Series(np.r_[0.0, np.cumsum(r[1:])])  # a price path whose changes are the winsorized returns
    close(f["rsi_14"], ta.momentum.RSIIndicator(path, 14 * s).rsi())
    m = ta.trend.MACD(np.log(p), window_slow=26 * s, window_fast=12 * s, window_sign=9 * s)
    close(f["macd_line"], m.macd()); close(f["macd_signal"], m.macd_signal()); close(f["macd_hist"], m.macd_diff())
    close(f["bb_pctb"], ta.volatility.BollingerBands(p, 20 * s, 2).bollinger_pband())
    step_vol = pd.Series(roll) / np.sqrt(s)  # 30-day volatility per step (the last `roll` above)
    vol7 = np.array([np.std(r[i - 7 * s + 1:i + 1], ddof=1) if i >= 7 * s else np.nan for i in range(n)])
    close(f["vol_ratio_7_30"], vol7 / step_vol, 1e-10)
    lp = np.log(p)
    close(f["drawdown_30"], lp - np.array([lp[max(i - 30 * s + 1, 0):i + 1].max() if i >= 30 * s - 1 else np.nan
                                          for i in range(n)]), 1e-12)
    close(f["runup_30"], lp - lp.rolling(30 * s).min(), 1e-12)
    close(f["ret_z_1"], r / step_vol, 1e-10)
    for q in (7, 30):
        close(f[f"mom_z_{q}"], (lp - lp.shift(q * s)) / (step_vol * np.sqrt(q * s)), 1e-10)
    lv = np.log(df["total_volume"])
    z = (lv - lv.rolling(30 * s, min_periods=15 * s).mean()) / lv.rolling(30 * s, min_periods=15 * s).std()
    close(f["volume_z"], z)
    close(f["volume_mcap"], df["total_volume"] / df["market_cap"], 1e-12)
    close(f["mcap_change"], np.log(df["market_cap"]).diff(), 1e-12)
    ts = df["timestamp"]
    close(f["dow_sin"], np.sin(2 * np.pi * ts.dt.day_of_week / 7), 1e-12)
    close(f["month_cos"], np.cos(2 * np.pi * (ts.dt.month - 1) / 12), 1e-12)
    if granularity == "hourly": close(f["hour_sin"], np.sin(2 * np.pi * ts.dt.hour / 24), 1e-12)
    rb = cb["log_return_winsorized"]
    close(f["btc_ret"], rb, 0)
    close(f["btc_vol_7"], rb.rolling(7 * s).std() * np.sqrt(s), 1e-12)


@pytest.mark.parametrize("horizon, dead_zone", [(1, 0.0), (3, 0.0), (2, 0.02)])
def test_target_is_the_direction_of_the_observed_forward_return(horizon, dead_zone):
    df = simulated_market(500, seed=31, short_gaps=4, long_gaps=2)
    f = build_features(df, horizon=horizon, dead_zone=dead_zone)
    obs = df.set_index("timestamp")["price"].reindex(f.index)  # observed prices only (no interpolation)
    fwd = np.log(obs).shift(-horizon) - np.log(obs)
    crossed = obs.isna().astype(int)[::-1].rolling(horizon, min_periods=1).sum()[::-1].shift(-1).fillna(1) > 0
    fwd[crossed] = np.nan
    close(f["fwd_log_return"], fwd, 1e-12)
    expect = np.where(fwd > dead_zone, 1.0, np.where(fwd < -dead_zone, 0.0, np.nan))
    np.testing.assert_array_equal(f["target"].to_numpy(), expect)
    assert f["target"].iloc[-horizon:].isna().all()  # the unknown future is never filled
    assert f["target"].dropna().isin([0.0, 1.0]).all()
    if dead_zone: assert f.loc[f["fwd_log_return"].abs() <= dead_zone, "target"].isna().all()
    close(f["log_price"], np.log(obs), 0)


def test_usable_rows():
    df = simulated_market(900, seed=41, short_gaps=5, long_gaps=3, zero_volumes=20)
    f = build_features(df)
    core = [c for c in feature_columns(f) if c not in OPTIONAL_FEATURES]
    usable = f["usable"]
    assert usable.dtype == bool and 0.5 < usable.mean() < 1
    assert f.loc[usable, core].notna().all().all()
    assert not usable[f["filled"]].any() and not usable[f["price"].isna()].any()
    # no usable row has a missing step among its `warmup` predecessors
    w = warmup_steps("daily")
    holes = f["price"].isna() & ~f["filled"]
    recent_hole = holes.astype(int).rolling(w, min_periods=1).max().astype(bool)
    assert not (usable & recent_hole).any()
    assert not usable.iloc[:w - 1].any() and usable.iloc[w - 1]
    # optional features may be unknown on usable rows, never zero-filled
    assert f.loc[usable, "volume_z"].isna().any()


def test_feature_columns_depend_on_names_unless_asked_to_drop_empty_ones():
    df = simulated_market(300, seed=5)[["timestamp", "price"]]
    f = build_features(df)
    assert feature_columns(f) == feature_columns(f.iloc[[-1]]) == DAILY  # the live row gives the training list
    assert not {"volume_z", "volume_mcap", "mcap_change"} & set(feature_columns(f, drop_empty=True))
    assert set(feature_columns(f)) - set(feature_columns(f, drop_empty=True)) == {"volume_z", "volume_mcap", "mcap_change"}


def test_panel_equals_single_coin_builds():
    frames = {c: simulated_market(400, seed=i, short_gaps=2) for i, c in enumerate(["ethereum", "bitcoin", "solana"])}
    panel = build_panel(frames, horizon=2)
    assert list(panel) == ["ethereum", "bitcoin", "solana"]
    pd.testing.assert_frame_equal(panel["bitcoin"], build_features(frames["bitcoin"], horizon=2))
    for coin in ("ethereum", "solana"):
        pd.testing.assert_frame_equal(panel[coin], build_features(frames[coin], btc=frames["bitcoin"], horizon=2))
        assert panel[coin].attrs["cleaning"]["gaps_found"] >= 1
    assert "btc_ret" not in panel["bitcoin"]
    no_btc = build_panel({"solana": frames["solana"]})
    assert "btc_ret" not in no_btc["solana"]
    with pytest.raises(PreprocessError, match="unknown build_panel argument"):
        build_panel(frames, horizn=2)
    assert build_panel(frames, quarantined={"solana": 4})["solana"].attrs["cleaning"]["rows_quarantined"] == 4


def test_cross_asset_features_align_on_time():
    eth = simulated_market(300, seed=1, start="2020-03-01")
    btc = simulated_market(300, seed=2, start="2020-01-01")  # starts two months earlier, ends earlier
    f = build_features(eth, btc=btc)
    cb = clean(btc)[0]
    both = f.index.intersection(cb.index)
    close(f.loc[both, "btc_ret"], cb.loc[both, "log_return_winsorized"], 0)
    assert f.loc[f.index.difference(cb.index), "btc_ret"].isna().all()
    assert not f.loc[f.index > cb.index[-1], "usable"].any()


def test_settings_drive_the_build():
    df = simulated_market(300, seed=9)
    s = load_settings(environ={}, env_file=None, horizon=4, n_lags=2, dead_zone=0.01)
    f = build_features(df, settings=s)
    assert f.attrs["feature_settings"]["horizon"] == 4 and "ret_lag_3" not in f
    assert f["target"].iloc[-4:].isna().all() and f["target"].iloc[:-4].notna().mean() > 0.5
    pd.testing.assert_frame_equal(f, build_features(df, horizon=4, n_lags=2, dead_zone=0.01))
    with pytest.raises(PreprocessError, match="n_lags=0 is invalid"):
        build_features(df, n_lags=0)


@needs_real
@pytest.mark.realdata
def test_real_panel_daily_and_hourly():
    panel = build_panel({c: read_real(c) for c in REAL_COINS})
    for coin, f in panel.items():
        assert f["usable"].mean() > 0.95, coin
        assert f.loc[f["usable"], "target"].notna().mean() > 0.99, coin
        assert len(feature_columns(f)) == len(DAILY) + (coin != "bitcoin") * 2
    hourly = build_panel({c: read_real(c, "hourly") for c in ("bitcoin", "ethereum")}, "hourly")
    eth = hourly["ethereum"]
    assert not {"volume_z", "volume_mcap", "mcap_change"} & set(feature_columns(eth, drop_empty=True))  # no USD volume
    assert eth["usable"].iloc[warmup_steps("hourly") - 1:].all()
