"""Properties of the evaluation machinery beyond the notebook's examples: splits never look ahead, the block
bootstrap covers under dependence, metrics and the backtest agree with independent implementations."""
from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sklearn import metrics as skm

from cryptopred.evaluate import (
    EvaluationError,
    backtest_long_flat,
    bootstrap_metrics,
    check_splits,
    direction_metrics,
    holdout_split,
    rolling_origin_splits,
    walk_forward_splits,
)


@settings(max_examples=300, deadline=None)
@given(n=st.integers(1, 400), n_folds=st.integers(1, 12), embargo=st.integers(0, 30), expanding=st.booleans(),
       test_size=st.one_of(st.none(), st.integers(1, 80)), min_train=st.one_of(st.none(), st.integers(1, 200)))
def test_walk_forward_never_trains_on_the_future(n, n_folds, embargo, expanding, test_size, min_train):
    try:
        splits = walk_forward_splits(n, n_folds, test_size, embargo, expanding, min_train)
    except EvaluationError:
        return  # too little data is refused with a clear error, never answered with a bad split
    assert check_splits(splits, embargo) == n_folds
    tests = np.concatenate([te for _, te in splits])
    np.testing.assert_array_equal(tests, np.arange(n - len(tests), n))  # contiguous blocks at the end, in order
    for tr, te in splits:
        assert tr.min() >= 0 and te.max() < n
        assert tr.max() + embargo < te.min()
        np.testing.assert_array_equal(tr, np.arange(tr[0], tr[-1] + 1))  # training rows are one contiguous window
        assert len(tr) >= (min_train or len(te))
    if not expanding: assert len({len(tr) for tr, _ in splits}) == 1


@settings(max_examples=200, deadline=None)
@given(n=st.integers(2, 300), start_frac=st.floats(0.05, 0.95), step=st.integers(1, 50), embargo=st.integers(0, 10))
def test_rolling_origin_blocks_tile_the_holdout(n, start_frac, step, embargo):
    start = min(max(1, int(n * start_frac)), n - 1)
    try:
        splits = rolling_origin_splits(n, start, step, embargo)
    except EvaluationError:
        assert start - embargo < 1
        return
    check_splits(splits, embargo)
    np.testing.assert_array_equal(np.concatenate([te for _, te in splits]), np.arange(start, n))
    assert all(tr[-1] == te[0] - embargo - 1 for tr, te in splits)  # expanding: everything allowed is used


@settings(max_examples=200, deadline=None)
@given(n=st.integers(2, 500), frac=st.floats(0.01, 0.99), embargo=st.integers(0, 20))
def test_holdout_split_keeps_the_embargo(n, frac, embargo):
    try:
        tr, ho = holdout_split(n, frac, embargo)
    except EvaluationError:
        return
    assert tr[0] == 0 and ho[-1] == n - 1 and tr[-1] + embargo < ho[0]
    assert len(tr) + embargo + len(ho) == n


@settings(max_examples=60, deadline=None)
@given(seed=st.integers(0, 10_000), n=st.integers(5, 200))
def test_metrics_agree_with_sklearn(seed, n):
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 2, n); p = np.round(rng.random(n), 2)  # rounding creates ties
    m = direction_metrics(y, p, climatology=0.5)
    pred = (p > 0.5).astype(int)
    assert m["accuracy"] == pytest.approx(skm.accuracy_score(y, pred))
    assert m["f1"] == pytest.approx(skm.f1_score(y, pred, zero_division=np.nan), nan_ok=True)
    assert m["precision"] == pytest.approx(skm.precision_score(y, pred, zero_division=np.nan), nan_ok=True)
    assert m["brier"] == pytest.approx(skm.brier_score_loss(y, p))
    assert m["log_loss"] == pytest.approx(skm.log_loss(y, np.clip(p, 1e-15, 1 - 1e-15), labels=[0, 1]), rel=1e-6)
    if 0 < y.sum() < n: assert m["roc_auc"] == pytest.approx(skm.roc_auc_score(y, p))
    else: assert math.isnan(m["roc_auc"])


def _markov_hits(n: int, stay: float, rng) -> np.ndarray:
    "0/1 'model was right' series with persistence: the next day repeats today with probability `stay`."
    h = np.empty(n); h[0] = rng.random() < 0.5
    for t in range(1, n): h[t] = h[t - 1] if rng.random() < stay else rng.random() < 0.5
    return h


def test_block_bootstrap_covers_under_dependence_where_iid_does_not():
    rng = np.random.default_rng(0)
    cover = {"block": 0, "iid": 0}
    sims = 100
    for s in range(sims):
        hits = _markov_hits(400, 0.8, rng)  # true accuracy 0.5, strongly persistent
        y = np.ones(400); p = np.where(hits == 1, 0.9, 0.1)
        for name, L in (("block", 25), ("iid", 1)):
            ci = bootstrap_metrics(y, p, n_boot=200, block_len=L, seed=s).loc["accuracy"]
            cover[name] += ci["lo"] <= 0.5 <= ci["hi"]
    # blocks of 25 days recover most of the nominal 95% (a block bootstrap is somewhat short at n=400 under this much
    # persistence); resampling days independently badly overstates certainty
    assert cover["block"] / sims >= 0.8 and cover["iid"] / sims <= 0.6


def test_backtest_matches_a_plain_loop():
    rng = np.random.default_rng(1)
    p = rng.random(300); r = rng.normal(0.0005, 0.03, 300); fee = 0.0015
    eq, pos_prev, trades, curve = 1.0, 0, 0, []
    for pt, rt in zip(p, r, strict=True):
        pos = int(pt > 0.5)
        if pos != pos_prev: eq *= 1 - fee; trades += 1
        if pos: eq *= math.exp(rt)
        curve.append(eq); pos_prev = pos
    bt = backtest_long_flat(p, r, fee_bps=15)
    assert bt.total_return == pytest.approx(eq - 1) and bt.n_trades == trades
    peak = np.maximum.accumulate(np.r_[1.0, curve])[1:]
    assert bt.max_drawdown == pytest.approx((np.array(curve) / peak - 1).min())
    simple = np.diff(np.r_[1.0, curve]) / np.r_[1.0, curve][:-1]
    assert bt.sharpe == pytest.approx(simple.mean() / simple.std(ddof=1) * math.sqrt(365))
    assert bt.buy_hold_return == pytest.approx((1 - fee) * math.exp(r.sum()) - 1)


def test_bad_inputs_name_the_problem():
    with pytest.raises(EvaluationError, match="not sorted in time"):
        walk_forward_splits(pd.DatetimeIndex(["2024-01-02", "2024-01-01", "2024-01-03"]), 1, embargo=0)
    with pytest.raises(EvaluationError, match="embargo of 3 rows is violated"):
        check_splits([(np.arange(10), np.arange(12, 20))], embargo=3)
