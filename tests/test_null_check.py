"""The random-walk null check of the classifier's real-data protocol: on a market with no signal (independent
random walks) the pooled walk-forward protocol must give a holdout AUC near 0.5, and the same protocol with a
planted one-day leak (a feature that knows tomorrow's direction, plus noise) must be caught far above that band."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from cryptopred.classify import evaluate_classifier
from cryptopred.config import load_settings
from cryptopred.features import build_panel
from cryptopred.studies.classifier import coin_inputs, read_real_daily, real_data_evaluation
from tests.support.market import simulated_market

COINS = ("bitcoin", "ethereum", "litecoin")
N_DAYS, HOLDOUT = 900, "2021-06-01"  # 2020-01-01 .. 2022-06-18: about 380 holdout days per coin


@pytest.fixture
def random_walk_folder(tmp_path):
    "Real-data-shaped CSVs of three independent random walks (stochastic volatility, no drift, no direction signal)."
    folder = tmp_path / "rw"; folder.mkdir()
    for i, c in enumerate(COINS):
        m = simulated_market(N_DAYS, seed=100 + i)
        m.assign(timestamp=m["timestamp"].dt.strftime("%Y-%m-%dT%H:%M:%SZ"))[
            ["timestamp", "price", "market_cap", "total_volume"]].to_csv(folder / f"{c}_daily.csv", index=False)
    return folder


@pytest.fixture
def tiny(tmp_path):
    return load_settings(environ={"CRYPTOPRED_HOME": str(tmp_path / "home")}, env_file=None, search_budget=1,
                         cv_folds=3, seed=0)


def null_band(summaries: list[dict], k: float = 3.0) -> tuple[float, float]:
    "0.5 ± k standard errors of the mean holdout AUC under no signal (Hanley-McNeil at AUC 0.5, coins independent)."
    var = [(s["n_up"] + s["n_down"] + 1) / (12 * s["n_up"] * s["n_down"]) for s in summaries]
    se = np.sqrt(np.sum(var)) / len(var)
    return 0.5 - k * se, 0.5 + k * se


def _counts(ev) -> dict:
    y = ev.y.to_numpy()
    return {"n_up": int((y == 1).sum()), "n_down": int((y == 0).sum())}


def test_random_walk_market_gives_chance_auc_and_a_planted_leak_fires(random_walk_folder, tiny):
    # the full protocol the real study runs (pooled, walk-forward selection and calibration), tiny budget
    null = real_data_evaluation(random_walk_folder, holdout_start=HOLDOUT, settings=tiny, n_boot=50,
                                families=["logistic"], train_start="2020-01-01")
    evs = list(null.evaluations.values())
    assert [e.name for e in evs] == list(COINS) and all(e.pool for e in evs)  # pooled, as on the real data
    assert all(e.rows["holdout"] > 300 for e in evs)
    lo, hi = null_band([_counts(e) for e in evs])
    auc = float(np.mean([e.summary()["roc_auc"] for e in evs]))
    assert hi - lo < 0.12  # the band is small enough to mean something
    assert lo < auc < hi, f"random walks gave mean holdout AUC {auc:.3f}, outside the null band [{lo:.3f}, {hi:.3f}]"

    # the same functions with a planted one-day leak: a feature equal to tomorrow's direction plus noise
    rng = np.random.default_rng(0)
    panel = build_panel(read_real_daily(random_walk_folder, list(COINS)), "daily", settings=tiny)
    inputs = {}
    for c in COINS:
        X, y, r, u = coin_inputs(panel[c], "2020-01-01")
        leak = (2 * y.fillna(0.5) - 1) + rng.normal(0, 1.0, len(y))
        inputs[c] = (X.assign(leak=pd.Series(leak, index=X.index)), y, r, u)
    leaky = [evaluate_classifier(*inputs[c][:3], usable=inputs[c][3], settings=tiny, horizon=tiny.horizon, granularity="daily",
                                 families=["logistic"], holdout_start=HOLDOUT, n_boot=50, name=c, pool=inputs)
             for c in COINS]
    assert all("leak" in e.features for e in leaky)
    leak_auc = float(np.mean([e.summary()["roc_auc"] for e in leaky]))
    lo, hi = null_band([_counts(e) for e in leaky])
    assert leak_auc > hi + 0.2, f"a planted one-day leak gave mean AUC {leak_auc:.3f}: the null check cannot see it"
