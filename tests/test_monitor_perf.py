"""Realized performance: predictions joined with outcomes for several coins and horizons, baselines, concept drift."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from support.market import prediction, random_walk_prices

from cryptopred.monitor.core import MonitorError
from cryptopred.monitor.performance import (
    calibration_table,
    concept_drift,
    performance_summary,
    resolve_predictions,
    rolling_performance,
)
from cryptopred.monitor.predictions import PredictionLog


def test_log_to_outcomes_for_two_coins_and_hourly_horizons(settings):
    "Logged hourly predictions 3 steps ahead for two coins, scored against each coin's own prices; nothing dropped."
    btc, eth = random_walk_prices(200, seed=1, freq="h"), random_walk_prices(200, seed=2, freq="h")
    eth = eth.drop(index=[100])  # a gap in the store
    with PredictionLog(settings) as log:
        for coin in ("bitcoin", "ethereum"):
            for i in range(0, 200):
                log.append(prediction(btc["timestamp"][i] + pd.Timedelta(minutes=2), coin=coin, horizon=3,
                                      granularity="hourly", prob_up=0.55 + 0.1 * (i % 2) - 0.2 * (coin == "ethereum")))
    preds = log.read()
    res = resolve_predictions(preds, {"bitcoin": btc, "ethereum": eth})
    counts = res.groupby("coin")["status"].value_counts().unstack(fill_value=0)
    assert counts.loc["bitcoin", "pending"] == 3 and counts.loc["bitcoin", "resolved"] == 197
    # ethereum: row 100 is missing as as_of (1) and as target of as_of 97 (1); the last 3 targets lie in the future
    assert counts.loc["ethereum", "missing"] == 2 and counts.loc["ethereum", "pending"] == 3
    assert counts.sum(axis=1).tolist() == [200, 200]
    e = res[(res.coin == "ethereum") & (res.status == "resolved")].iloc[10]
    px = eth.set_index("timestamp")["price"]
    assert e["log_return"] == pytest.approx(np.log(px[e["target_time"]] / px[e["as_of"]]))
    assert e["up"] == float(px[e["target_time"]] > px[e["as_of"]])
    # momentum looks back one horizon (3 steps) from as_of, using only what was known then
    i = px.index.get_loc(e["as_of"])
    assert e["p_momentum"] == float(px.iloc[i] > px.iloc[i - 3])
    summ = performance_summary(res, by="coin").set_index("coin")
    assert summ.loc["ethereum", ["n_resolved", "n_pending", "n_missing"]].tolist() == [195, 3, 2]
    eth_ok = res[(res.coin == "ethereum") & (res.status == "resolved")]
    assert summ.loc["ethereum", "acc_always_up"] == pytest.approx(eth_ok["up"].mean())


def test_prices_in_one_frame_with_a_coin_column_and_bad_frames(settings):
    btc = random_walk_prices(30, seed=3).assign(coin="bitcoin")
    preds = pd.DataFrame([prediction(t + pd.Timedelta(minutes=1)) for t in btc["timestamp"][:29]])
    assert (resolve_predictions(preds, btc)["status"] == "resolved").all()
    with pytest.raises(MonitorError, match="prices must be a DataFrame"):
        resolve_predictions(preds, [1, 2])


def test_a_momentum_model_scores_exactly_like_the_momentum_baseline(settings):
    "A model that predicts the last move again must get exactly the momentum baseline's accuracy; calibration adds up."
    prices = random_walk_prices(400, seed=11)
    px = prices["price"].to_numpy()
    preds = pd.DataFrame([prediction(prices["timestamp"][i] + pd.Timedelta(minutes=1), version="mom",
                                     prob_up=0.85 if px[i] > px[i - 1] else 0.15) for i in range(1, 399)])
    res = resolve_predictions(preds, prices)
    s = performance_summary(res).iloc[0]
    assert s["accuracy"] == pytest.approx(s["acc_momentum"])
    assert s["n_resolved"] == 398
    cal = calibration_table(res)
    assert cal["n"].sum() == 398 and set(cal.index[cal["n"] > 0]) == {"0.0-0.2", "0.8-1.0"}
    roll = rolling_performance(res, window=50)
    assert len(roll) == 398 - 49
    assert np.allclose(roll["accuracy"], roll["acc_momentum"])


def test_concept_drift_uses_the_last_window_of_the_current_version(settings):
    "A good model v1 is replaced by a bad v2: v2 is flagged, v1's history does not mask it; a margin tolerates noise."
    prices = random_walk_prices(241, seed=4)
    up = np.diff(np.log(prices["price"].to_numpy())) > 0
    rows = []
    for i in range(240):  # right on 3 of 4 days while good, on 1 of 3 days after
        good = i < 120
        right = i % 4 != 0 if good else i % 3 == 0
        says_up = up[i] if right else not up[i]
        rows.append(prediction(prices["timestamp"][i] + pd.Timedelta(minutes=1), version="v1" if good else "v2",
                               prob_up=0.7 if says_up else 0.3))
    res = resolve_predictions(pd.DataFrame(rows), prices)
    v2 = concept_drift(res, settings)
    assert v2.version == "v2" and v2.drift and v2.n == settings.perf_window
    assert v2.accuracy < v2.baseline_accuracy and v2.brier_skill < 0
    v1 = concept_drift(res, settings, version="v1")
    assert not v1.drift and v1.accuracy > 0.6
    lenient = concept_drift(res, settings, margin=1.0)
    assert not lenient.drift and lenient.enough_data
    assert concept_drift(res, settings, baseline="always_up").baseline == "always_up"


@pytest.mark.realdata
def test_real_bitcoin_baselines_are_what_they_claim(settings, real_data_dir):
    "On real BTC daily prices the baselines computed beside each prediction match a direct computation."
    raw = pd.read_csv(real_data_dir / "bitcoin_daily.csv", parse_dates=["timestamp"])
    prices = raw[raw["timestamp"] >= "2024-01-01"].reset_index(drop=True)
    preds = pd.DataFrame([prediction(t + pd.Timedelta(minutes=5), prob_up=0.6) for t in prices["timestamp"][1:]])
    res = resolve_predictions(preds, prices)
    ok = res[res.status == "resolved"]
    assert len(ok) == len(prices) - 2 and (res.status == "pending").sum() == 1
    r = np.log(prices["price"]).diff().to_numpy()
    up = (r[2:] > 0).astype(float)
    assert np.array_equal(ok["up"].to_numpy(), up)
    assert np.array_equal(ok["p_momentum"].to_numpy(), np.where(r[1:-1] > 0, 1.0, 0.0))
    clim = pd.Series((r[1:] > 0).astype(float)).expanding().mean().to_numpy()[:-1]
    assert np.allclose(ok["p_climatology"].to_numpy(), clim)
    s = performance_summary(res).iloc[0]
    assert s["accuracy"] == pytest.approx(up.mean())  # always says up
    assert 0.4 < s["acc_momentum"] < 0.6
