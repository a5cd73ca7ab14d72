"""`cryptopred.preprocess.clean` on simulated series with every kind of defect, and on the real data."""
from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from support.market import simulated_market
from support.realdata import REAL_COINS, needs_real, read_real

from cryptopred.common import CryptopredError
from cryptopred.config import load_settings
from cryptopred.preprocess import CLEAN_COLUMNS, CleaningReport, PreprocessError, clean, gap_runs

FAST = settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def _observed(frame: pd.DataFrame, granularity: str) -> pd.Series:
    "The input prices by grid step (first row per step, i.e. the one nearest the grid point)."
    f = frame.assign(step=frame["timestamp"].dt.round("D" if granularity == "daily" else "h"))
    f = f.assign(off=(f["timestamp"] - f["step"]).abs()).sort_values(["step", "off", "timestamp"]).drop_duplicates("step")
    return f.set_index("step")["price"].astype("float64")


def _check_clean(frame: pd.DataFrame, granularity: str, max_fill_gap: int = 2, threshold: float = 8.0,
                 window: int = 30) -> tuple[pd.DataFrame, CleaningReport]:
    "Clean `frame` and assert every invariant of the result against the input."
    before = frame.copy()
    out, rep = clean(frame, granularity, max_fill_gap=max_fill_gap, outlier_threshold=threshold, outlier_window=window)
    pd.testing.assert_frame_equal(frame, before)  # the input is never modified
    # a regular UTC grid, float64 values, boolean flags
    assert str(out.index.tz) == "UTC" and out.index.name == "timestamp"
    assert (np.diff(out.index.asi8) == pd.Timedelta("1D" if granularity == "daily" else "1h").value).all()
    assert list(out.columns) == list(CLEAN_COLUMNS)
    assert [str(out[c].dtype) for c in CLEAN_COLUMNS] == ["float64"] * 5 + ["bool"] * 2
    # observed prices are exactly the stored ones; the grid runs from the first to the last valid price
    obs = _observed(frame, granularity)
    obs = obs[obs > 0]
    assert out.index[0] == obs.index.min() and out.index[-1] == obs.index.max()
    observed = out["price"][~out["filled"] & out["price"].notna()]
    pd.testing.assert_series_equal(observed, obs.reindex(observed.index), check_names=False, check_freq=False)
    assert set(obs.index) <= set(observed.index)
    # gaps: runs of missing steps; short ones filled (log-linear), the others left
    missing = ~out.index.isin(obs.index)
    starts, lengths = gap_runs(missing)
    assert (rep.gaps_found, rep.longest_gap) == (len(lengths), int(lengths.max(initial=0)))
    assert rep.gaps_filled == int((lengths <= max_fill_gap).sum())
    assert rep.gaps_left == int((lengths > max_fill_gap).sum())
    assert out["filled"].sum() == rep.steps_filled == int(lengths[lengths <= max_fill_gap].sum())
    assert out["price"].isna().sum() == rep.steps_missing == int(lengths[lengths > max_fill_gap].sum())
    lp = np.log(out["price"].to_numpy())
    for s, n in zip(starts, lengths, strict=True):
        if n <= max_fill_gap:
            expect = lp[s - 1] + (lp[s + n] - lp[s - 1]) * np.arange(1, n + 1) / (n + 1)
            np.testing.assert_allclose(lp[s:s + n], expect, rtol=0, atol=1e-12)
    # returns, winsorized returns and outlier flags
    np.testing.assert_allclose(out["log_return"].to_numpy()[1:], np.diff(lp), rtol=0, atol=1e-12)  # exp/log round trip
    w, r = out["log_return_winsorized"], out["log_return"]
    assert (w[~out["outlier"]].fillna(0) == r[~out["outlier"]].fillna(0)).all()
    assert (w[out["outlier"]].abs() < r[out["outlier"]].abs()).all()
    assert rep.outliers_flagged == int(out["outlier"].sum())
    # market cap and volume: positive or unknown, never filled
    for col in ("market_cap", "total_volume"):
        v = out[col]
        assert (v.dropna() > 0).all()
        assert v[out["filled"]].isna().all()
    assert rep.rows_out == len(out) and rep.rows_in == len(frame)
    json.dumps(rep.to_dict())
    return out, rep


@FAST
@given(seed=st.integers(0, 10_000), n=st.integers(60, 400), short=st.integers(0, 6), long=st.integers(0, 3),
       spikes=st.integers(0, 3), zeros=st.integers(0, 5), jitter=st.integers(0, 5), fill=st.integers(0, 4))
def test_clean_invariants_daily(seed, n, short, long, spikes, zeros, jitter, fill):
    df = simulated_market(n, "daily", seed=seed, short_gaps=short, long_gaps=long, spikes=spikes,
                          zero_volumes=zeros, jitter=jitter)
    _check_clean(df, "daily", max_fill_gap=fill)


@settings(max_examples=10, deadline=None)
@given(seed=st.integers(0, 10_000), short=st.integers(0, 6), long=st.integers(0, 3), spikes=st.integers(0, 3))
def test_clean_invariants_hourly(seed, short, long, spikes):
    df = simulated_market(1500, "hourly", seed=seed, short_gaps=short, long_gaps=long, spikes=spikes, zero_volumes=4)
    _check_clean(df, "hourly")


def test_bad_ticks_are_flagged_and_winsorized_but_the_price_is_kept():
    df = simulated_market(300, seed=3)
    df.loc[150, "price"] *= 4
    out, rep = _check_clean(df, "daily")
    assert out["outlier"].iloc[150] and out["outlier"].iloc[151]
    assert out["price"].iloc[150] == df.loc[150, "price"]
    assert rep.outliers_flagged >= 2


def test_outlier_detection_is_judged_against_the_previous_window_only():
    r = np.random.default_rng(0).normal(0, 0.01, 200)
    p = 100 * np.exp(np.cumsum(r))
    df = pd.DataFrame({"timestamp": pd.date_range("2024-01-01", periods=200, freq="D", tz="UTC"), "price": p})
    base = clean(df)[0]
    later = df.copy()
    later.loc[120:, "price"] *= 5  # a level shift later on cannot change anything before it
    changed = clean(later)[0]
    pd.testing.assert_frame_equal(base.iloc[:120], changed.iloc[:120])
    assert changed["outlier"].iloc[120] and not changed["outlier"].iloc[121:].any()


def test_zero_market_data_is_unknown_never_zero():
    df = simulated_market(100, seed=1)
    df.loc[:9, "total_volume"] = 0.0
    df.loc[5, "market_cap"] = 0.0
    out, rep = clean(df)
    assert out["total_volume"].iloc[:10].isna().all() and np.isnan(out["market_cap"].iloc[5])
    assert (rep.volume_zero, rep.market_cap_zero) == (10, 1)
    assert (rep.volume_missing, rep.market_cap_missing) == (10, 1)


def test_missing_market_columns_and_other_timezones():
    df = simulated_market(50, seed=2)[["timestamp", "price"]]
    df["timestamp"] = df["timestamp"].dt.tz_convert("Asia/Tokyo")  # same instants, another zone
    out, _ = clean(df)
    assert str(out.index.tz) == "UTC" and out.index[0] == pd.Timestamp("2020-01-01", tz="UTC")
    assert out["market_cap"].isna().all() and out["total_volume"].isna().all()


def test_invalid_prices_and_trailing_rows_without_price():
    df = simulated_market(40, seed=4)
    df.loc[10, "price"] = 0.0
    df.loc[11, "price"] = -3.0
    df.loc[[38, 39], "price"] = np.nan
    df.loc[0, "price"] = np.inf
    out, rep = clean(df)
    assert rep.prices_invalid == 3 and rep.rows_trimmed == 3
    assert out.index[0] == df.loc[1, "timestamp"] and out.index[-1] == df.loc[37, "timestamp"]
    assert out["filled"].iloc[9:11].all()  # the two invalid prices became a filled 2-step gap


@pytest.mark.parametrize("bad, message", [
    (lambda df: df.assign(timestamp=df["timestamp"].dt.tz_localize(None)), "timezone-aware UTC"),
    (lambda df: df.drop(columns="price"), "need a 'price' column"),
    (lambda df: df.drop(columns="timestamp"), "need a 'timestamp' column"),
    (lambda df: df.assign(market_cap="lots"), "column 'market_cap' is not numeric"),
    (lambda df: df.assign(price=np.nan), "no valid price in 30 store row(s)"),
    (lambda df: df.assign(timestamp=df["timestamp"].where(df.index != 3)), "'timestamp' has 1 missing value"),
])
def test_bad_input_is_a_clear_error(bad, message):
    df = simulated_market(30, seed=5)
    with pytest.raises(PreprocessError) as e:
        clean(bad(df))
    assert message in str(e.value) and isinstance(e.value, CryptopredError)


def test_granularity_must_match_the_data():
    hourly = simulated_market(200, "hourly", seed=6)
    with pytest.raises(PreprocessError, match="granularity is 'daily'"):
        clean(hourly, "daily")
    with pytest.raises(PreprocessError, match="granularity is 'hourly'"):
        clean(simulated_market(50, seed=6), "hourly")


def test_settings_supply_the_thresholds():
    df = simulated_market(300, seed=7, short_gaps=4, spikes=2)
    s = load_settings(environ={}, env_file=None, max_fill_gap=0, outlier_threshold=1000.0)
    out, rep = clean(df, settings=s)
    assert rep.gaps_filled == 0 and not out["filled"].any()
    assert rep.outliers_flagged == 0 < clean(df)[1].outliers_flagged
    assert clean(df, settings=s, max_fill_gap=2)[1].gaps_filled > 0  # explicit values win


@needs_real
@pytest.mark.realdata
@pytest.mark.parametrize("coin", REAL_COINS)
def test_real_daily_series_clean(coin):
    df = read_real(coin)
    out, rep = _check_clean(df, "daily")
    # bitcoin's two late-evening 2017 snapshots round onto the next day, which has its own 00:00 row
    assert rep.rows_merged == (2 if coin == "bitcoin" else 0)
    assert rep.rows_trimmed == 0 and rep.gaps_left == 0 and rep.prices_invalid == 0
    assert rep.rows_out == len(pd.date_range(df["timestamp"].min().round("D"), df["timestamp"].max().round("D")))
    assert (out.index == out.index.normalize()).all()


@needs_real
@pytest.mark.realdata
def test_real_off_grid_snapshots_go_to_the_nearest_grid_point():
    df = read_real("bitcoin")
    out, rep = clean(df)
    assert rep.rows_off_grid == 4 and rep.rows_merged == 2 and rep.gaps_found == 4 and rep.steps_filled == 4
    # the 23:29:55 snapshot is not day 2017-06-06's 00:00 price (23 h of look-ahead): it rounds to 06-07, whose own
    # 00:00 row is nearer and kept; 06-06 is a one-day gap, filled
    assert out.loc["2017-06-06", "filled"] and out.loc["2017-06-06", "price"] != 2903.4438
    assert out.loc["2017-06-07", "price"] == 2716.0588 and out.loc["2017-06-08", "filled"]
    assert out.loc["2018-01-30", "price"] == df.set_index("timestamp").loc["2018-01-30T00:05:18Z", "price"]
    assert out.loc["2013-06-04", "filled"] and out.loc["2015-01-28", "filled"]
    assert rep.volume_missing == 246  # no volume before 2013-12-27 (plus the four filled days)


@needs_real
@pytest.mark.realdata
@pytest.mark.parametrize("coin", ["bitcoin", "ethereum"])
def test_real_hourly_series_clean(coin):
    out, rep = _check_clean(read_real(coin, "hourly"), "hourly")
    assert rep.gaps_found == 0 and rep.rows_out == 19704
    assert out["total_volume"].isna().all() and out["market_cap"].isna().all()
