"""No look-ahead, proven by test.

1. Truncation: features built from the data known at a time t (every store row whose grid step is <= t) equal,
   **exactly** (bit for bit, NaN where NaN), the features built from the full history on every row up to t, for
   every feature column, the price columns, the flags and the `usable` mask, at both granularities, with bitcoin's
   cross-asset features cut at the same time. Exactness is expected, not approximate: every operation (rolling
   windows, recursive EMAs, rolling medians, partitions, interpolation between two known observations) computes the
   value at t from the same inputs in the same order whether or not later rows exist. (Hypothesis on simulated
   series with holes, bad ticks, zero volumes and late snapshots; random cut points on the real data.)
2. The target at t uses data up to t + h only: built from the data known at t + h, it equals the full-history
   target; changing prices after t + h never changes it.
3. Across coins: shuffling or removing the future of one coin never changes another coin's past features.
4. The comparison has power: a feature that peeks one step ahead is caught.
"""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, Phase, example, given, settings
from hypothesis import strategies as st
from support.market import prefix_mismatches, simulated_market, truncate
from support.realdata import needs_real, read_real

from cryptopred.features import build_panel, feature_columns

TARGETS = ["target", "fwd_log_return"]
# no shrinking: a failure reports its (already small) example at once instead of minutes later
FAST = dict(deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
            phases=[Phase.explicit, Phase.reuse, Phase.generate])


def past_columns(df: pd.DataFrame) -> list[str]:
    "Every column that must depend on the past only: all but the two forward-looking targets."
    return [c for c in df.columns if c not in TARGETS]


def assert_no_lookahead(frames: dict, granularity: str, cuts, horizon: int = 1, **kw) -> int:
    "Build the panel on the full data and on the data known at each cut; compare. Returns rows compared."
    full = build_panel(frames, granularity, horizon=horizon, **kw)
    compared = 0
    for cut in cuts:
        known = {c: truncate(f, cut, granularity) for c, f in frames.items()}
        # only the coins that were listed by then
        part = build_panel({c: f for c, f in known.items() if len(f)}, granularity, horizon=horizon, **kw)
        for coin, p in part.items():
            assert p.index[-1] <= cut
            assert feature_columns(p) == feature_columns(full[coin])
            bad = prefix_mismatches(p, full[coin], past_columns(p))
            assert not bad, f"{coin} cut at {cut}: {bad} differ from the full-history values"
            # targets: rows whose horizon ends at or before the cut see the whole of their future already
            settled = p.iloc[:max(len(p) - horizon, 0)]
            assert not prefix_mismatches(settled, full[coin], TARGETS), f"{coin} cut at {cut}: target"
            assert p[TARGETS].iloc[len(p) - horizon:].isna().all().all()  # ...and the others are unknown, not filled
            compared += len(p)
    return compared


def holes(frames: dict, granularity: str, most: int = 1) -> list[pd.Timestamp]:
    "Up to `most` grid times where some coin has no row: cutting inside a hole is where interpolation could leak."
    freq = "D" if granularity == "daily" else "h"
    out = []
    for f in frames.values():
        steps = f["timestamp"].dt.round(freq)
        grid = pd.date_range(steps.min(), steps.max(), freq=freq)
        out += list(grid.difference(steps))[:most]
    return out


def _market(granularity, n, seed, defects):
    short, long, spikes, zeros, jitter = defects
    return simulated_market(n, granularity, seed=seed, short_gaps=short, long_gaps=long, spikes=spikes,
                            zero_volumes=zeros, jitter=jitter)


defects = st.tuples(st.integers(0, 6), st.integers(0, 3), st.integers(0, 3), st.integers(0, 6), st.integers(0, 4))


@settings(max_examples=12, **FAST)
@given(seed=st.integers(0, 2**31), n=st.integers(60, 500), d1=defects, d2=defects, horizon=st.integers(1, 5),
       cut_fracs=st.lists(st.floats(0.05, 1.0), min_size=1, max_size=3))
def test_no_lookahead_daily(seed, n, d1, d2, horizon, cut_fracs):
    frames = {"bitcoin": _market("daily", n, seed, d1), "ethereum": _market("daily", n + 17, seed + 1, d2)}
    start = pd.Timestamp("2020-01-01", tz="UTC")
    cuts = [start + pd.Timedelta(days=int(f * (n + 16))) for f in cut_fracs] + holes(frames, "daily")
    assert assert_no_lookahead(frames, "daily", cuts, horizon=horizon, dead_zone=0.001) > 0


@settings(max_examples=6, **FAST)
@given(seed=st.integers(0, 2**31), d1=defects, d2=defects, horizon=st.integers(1, 24),
       cut_fracs=st.lists(st.floats(0.5, 1.0), min_size=1, max_size=3))
def test_no_lookahead_hourly(seed, d1, d2, horizon, cut_fracs):
    n = 1300  # beyond the 839-step hourly warm-up, so usable rows and every window are exercised
    frames = {"bitcoin": _market("hourly", n, seed, d1), "solana": _market("hourly", n, seed + 1, d2)}
    start = pd.Timestamp("2020-01-01", tz="UTC")
    cuts = [start + pd.Timedelta(hours=int(f * (n - 1))) for f in cut_fracs] + holes(frames, "hourly")
    assert assert_no_lookahead(frames, "hourly", cuts, horizon=horizon) > 0


@needs_real
@pytest.mark.realdata
def test_no_lookahead_real_daily():
    frames = {c: read_real(c) for c in ("bitcoin", "ethereum", "dogecoin")}
    rng = np.random.default_rng(2026)
    days = pd.date_range("2015-01-01", "2026-02-17", freq="D", tz="UTC")
    # random cut points plus the awkward ones: next to the off-grid snapshots and the filled days
    cuts = list(days[rng.choice(len(days), 8, replace=False)])
    cuts += [pd.Timestamp(d, tz="UTC") for d in ("2015-01-27", "2015-01-28", "2015-01-29", "2017-06-06", "2018-01-30",
                                                 "2020-03-13")]
    assert assert_no_lookahead(frames, "daily", cuts, horizon=1) > 0
    assert assert_no_lookahead(frames, "daily", cuts[:4], horizon=7, dead_zone=0.01) > 0


@needs_real
@pytest.mark.realdata
def test_no_lookahead_real_hourly():
    frames = {c: read_real(c, "hourly") for c in ("bitcoin", "ethereum")}
    rng = np.random.default_rng(7)
    hours = pd.date_range("2024-02-15", "2026-03-31 22:00", freq="h", tz="UTC")
    cuts = list(hours[rng.choice(len(hours), 6, replace=False)])
    assert assert_no_lookahead(frames, "hourly", cuts, horizon=4) > 0


@settings(max_examples=10, **FAST)
@given(seed=st.integers(0, 2**31), cut=st.integers(60, 380), horizon=st.integers(1, 5))
@example(seed=25149735, cut=60, horizon=1)  # t is a filled step of a two-day gap whose next price lies beyond t + h
def test_target_uses_data_up_to_t_plus_h_only(seed, cut, horizon):
    df = simulated_market(400, seed=seed, short_gaps=3, long_gaps=1)
    full = build_panel({"x": df}, horizon=horizon)["x"]
    t = full.index[min(cut, len(full) - 1 - horizon)]
    later = df.copy()
    after = later["timestamp"].dt.floor("D") > t + pd.Timedelta(days=horizon)
    later.loc[after, "price"] *= np.random.default_rng(seed).lognormal(0, 0.5, int(after.sum()))  # rewrite the future
    changed = build_panel({"x": later}, horizon=horizon)["x"]
    part = changed.loc[:t]
    assert not prefix_mismatches(part, full, TARGETS + ["filled", "usable"])
    # a filled step's price is interpolated towards the next observed one, which may lie beyond t + h: such a row is
    # never usable (no model trains, is scored or predicts on it), so only its own features may differ
    assert not full["usable"][full["filled"]].any()
    seen = ~part["filled"].to_numpy()
    assert not prefix_mismatches(part[seen], full.loc[part.index][seen], past_columns(full))


@settings(max_examples=8, **FAST)
@given(seed=st.integers(0, 2**31), cut=st.integers(50, 350), victim=st.sampled_from(["bitcoin", "ethereum"]),
       how=st.sampled_from(["shuffle", "remove"]))
def test_the_future_of_one_coin_never_changes_another_coins_past(seed, cut, victim, how):
    frames = {c: simulated_market(400, seed=seed + i, short_gaps=2, spikes=1)
              for i, c in enumerate(["bitcoin", "ethereum", "solana"])}
    before = build_panel(frames)
    t = pd.Timestamp("2020-01-01", tz="UTC") + pd.Timedelta(days=cut)
    f = frames[victim].copy()
    future = f["timestamp"] > t
    if how == "remove":
        f = f[~future]
    else:  # the same prices and volumes in a random order after t
        rng = np.random.default_rng(seed)
        cols = ["price", "market_cap", "total_volume"]
        f.loc[future, cols] = f.loc[future, cols].to_numpy()[rng.permutation(int(future.sum()))]
    after = build_panel({**frames, victim: f})
    for coin in frames:
        if coin == victim: continue
        # the other coins' past is untouched (their targets too: they only look at their own future)
        assert not prefix_mismatches(after[coin].loc[:t], before[coin]), coin
        if victim != "bitcoin":  # a non-bitcoin coin feeds nobody: the others are identical in full
            pd.testing.assert_frame_equal(after[coin], before[coin])


def test_the_comparison_catches_a_feature_that_peeks_ahead():
    "The same comparison, applied to a deliberately leaky column, finds it: the proofs above have power."
    df = simulated_market(300, seed=3)
    cut = pd.Timestamp("2020-06-01", tz="UTC")

    def leaky(frame):
        out = build_panel({"x": frame})["x"]
        out["centred_mean"] = np.log(out["price"]).rolling(5, center=True).mean()  # uses t+1, t+2
        return out
    full, part = leaky(df), leaky(truncate(df, cut, "daily"))
    assert prefix_mismatches(part, full, past_columns(part)) == ["centred_mean"]
