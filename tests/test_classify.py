"""The classifier protocol end to end: it never fits on rows at or after what it predicts, it is reproducible, it
raises the leakage alarm on a leaky feature and stays honest on real data with clean features."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sklearn.linear_model import LogisticRegression
from sklearn.preprocessing import FunctionTransformer
from support.market import leaky_features
from support.realdata import real_coin_data

import cryptopred.classify as C
from cryptopred.classify import demo_direction_data, evaluate_classifier, fit_final_model
from cryptopred.config import load_settings

FITS: list[tuple[int, int]] = []  # (first, last) row number seen by every fit of the spy
SIZES: list[int] = []  # rows seen by every fit of the spy


class SpyLogistic(LogisticRegression):
    "A real logistic regression that records which rows (by the `row` feature) each fit saw."
    def fit(self, X, y, sample_weight=None):
        rows = np.asarray(X)[:, 0]
        FITS.append((int(rows.min()), int(rows.max()))); SIZES.append(len(rows))
        return super().fit(X, y, sample_weight=sample_weight)


@pytest.fixture
def spy(monkeypatch):
    "Register the spy family; scaling becomes the identity so the spy sees raw row numbers."
    FITS.clear(); SIZES.clear()
    monkeypatch.setitem(C.FAMILIES, "spy", lambda seed: SpyLogistic(C=1.0, max_iter=500))
    monkeypatch.setitem(C.SEARCH_SPACES, "spy", {"C": [0.1, 1.0]})
    monkeypatch.setattr(C, "StandardScaler", lambda: FunctionTransformer())
    return FITS


def _with_row(X: pd.DataFrame) -> pd.DataFrame:
    return pd.concat([pd.Series(np.arange(len(X), dtype=float), index=X.index, name="row"), X], axis=1)


def _small(**kw):
    return load_settings(environ={}, env_file=None, **{"search_budget": 2, "cv_folds": 3, "seed": 0, **kw})


@pytest.mark.parametrize("calibration", ["none", "isotonic"])
def test_no_fit_ever_sees_the_holdout(spy, calibration):
    X, y, r = demo_direction_data(600, seed=1)
    ev = evaluate_classifier(_with_row(X), y, r, settings=_small(), families=["spy"], calibrations=(calibration,),
                             horizon=3, n_boot=50)
    first_holdout = X.index.get_loc(pd.Timestamp(ev.holdout_period[0]))
    k = 1 if calibration == "none" else 3  # a calibrated model fits one model per calibration fold
    assert len(spy) == 2 * 3 + 3 * k + k  # tuning (2 candidates x 3 folds), calibration check, refit: all seen
    assert max(last for _, last in spy) < first_holdout - 3  # embargo of the horizon (3 rows) before the holdout


def test_walk_forward_refits_only_learn_from_the_past(spy):
    X, y, r = demo_direction_data(600, seed=2)
    ev = evaluate_classifier(_with_row(X), y, r, settings=_small(), families=["spy"], calibrations=("none",),
                             refit_every=30, horizon=2, n_boot=50)
    refits = spy[-len(ev.folds):]  # the last fits are the holdout blocks, in order
    for (first, last), (_, block) in zip(refits, ev.folds.iterrows(), strict=True):
        start = X.index.get_loc(block["test_start"])
        assert last == start - 3  # trains right up to the embargo (2 rows) and never beyond
        assert first == 2  # expanding, from the first usable row (rows 0-1 lack the 2-step past return)
    ev2 = evaluate_classifier(_with_row(X), y, r, settings=_small(), families=["spy"], calibrations=("none",),
                              refit_every=30, horizon=2, expanding=False, n_boot=50)
    sizes = {last - first + 1 for first, last in spy[-len(ev2.folds):]}
    assert sizes == {ev2.rows["train"]}  # sliding window of the training part's length


@pytest.mark.parametrize("calibration", ["none", "isotonic"])
def test_pooled_fits_never_see_the_holdout_of_any_series(spy, calibration):
    "Three series on one clock (the spy's first feature is the day number): no fit ever sees a day it should not."
    origin = pd.Timestamp("2020-01-01", tz="UTC")
    pool = {}
    for i, start in enumerate(["2020-01-01", "2020-01-01", "2020-02-15"]):
        X, y, r = demo_direction_data(500, seed=20 + i, start=start)
        day = pd.Series((X.index - origin).days.astype(float), index=X.index, name="row")
        pool[f"s{i}"] = (pd.concat([day, X], axis=1), y, r)
    ev = evaluate_classifier(*pool["s0"], settings=_small(), families=["spy"], calibrations=(calibration,), horizon=3,
                             refit_every=40, n_boot=50, name="s0", pool=pool)
    k = 1 if calibration == "none" else 3  # a calibrated model fits one model per calibration fold
    first_holdout = (pd.Timestamp(ev.holdout_period[0]) - origin).days
    selection, refits = spy[:-len(ev.folds) * k], spy[-len(ev.folds) * k:]
    assert max(last for _, last in selection) < first_holdout - 3  # tuning and calibration choice: before the embargo
    for j, (_, block) in enumerate(ev.folds.iterrows()):
        start = (block["test_start"] - origin).days
        assert max(last for _, last in refits[j * k:(j + 1) * k]) < start - 3  # every refit: before its block's embargo
    assert max(SIZES) > ev.rows["train"] + ev.rows["holdout"]  # the other series' rows were used
    assert ev.rows["pooled_train"] > 0 and set(ev.pool) == {"s1", "s2"}


def test_same_seed_same_models_and_metrics(monkeypatch):
    # smaller forests and boosting rounds than the real search spaces: this checks the seed path, not the spaces
    monkeypatch.setitem(C.SEARCH_SPACES, "random_forest", {"n_estimators": [10, 20], "max_features": [0.5, 1.0]})
    monkeypatch.setitem(C.SEARCH_SPACES, "hist_gb", {"max_iter": [10, 20], "learning_rate": [0.05, 0.1]})
    X, y, r = demo_direction_data(400, seed=3)
    kw = dict(settings=_small(), families=["random_forest", "hist_gb"], calibrations=("none", "sigmoid"), n_boot=100)
    a, b = evaluate_classifier(X, y, r, **kw), evaluate_classifier(X, y, r, **kw)
    sa, sb = a.summary(), b.summary()
    sa.pop("runtime_s"); sb.pop("runtime_s")
    assert sa == sb
    pd.testing.assert_series_equal(a.prob, b.prob)
    c = evaluate_classifier(X, y, r, **{**kw, "settings": _small(seed=1)})
    assert not np.allclose(c.prob.to_numpy(), a.prob.to_numpy())  # the seed does reach the models


def test_hourly_backtest_is_annualized_per_hour():
    X, y, r = demo_direction_data(400, seed=4)
    ev = evaluate_classifier(X, y, r, settings=_small(granularity="hourly", fee_bps=25.0), families=["logistic"],
                             calibrations=("none",), n_boot=50)
    assert ev.backtest.periods_per_year == 8760 and ev.backtest.fee_bps == 25.0


@pytest.mark.realdata
def test_real_bitcoin_is_honest_and_the_leak_is_caught(real_data_dir):
    X, y, fwd = real_coin_data(real_data_dir, "bitcoin", start="2019-01-01")
    kw = dict(settings=_small(), families=["logistic"], calibrations=("none",), holdout_start="2023-01-01", n_boot=200)
    clean = evaluate_classifier(X, y, fwd, **kw).summary()
    assert clean["holdout_start"].startswith("2023-01-01") and clean["train_end"] < "2022-12-31"
    assert clean["missing_features"] == int(X.isna().any(axis=1).sum()) and clean["missing_target"] == 1
    assert 0.4 < clean["accuracy"] < 0.6 and 0.4 < clean["roc_auc"] < 0.6  # daily direction is close to a coin flip
    assert clean["always_up_accuracy"] == pytest.approx(y[y.index >= "2023-01-01"].dropna().mean())
    leaky = evaluate_classifier(leaky_features(X, fwd), y, fwd, **kw).summary()
    assert leaky["accuracy"] > 0.95 and leaky["p_value"] < 0.01  # the alarm: near-perfect means the future leaked
    assert leaky["backtest_total_return"] > 100 * (1 + clean["backtest_buy_hold_return"])


@pytest.mark.realdata
def test_final_model_serves_the_newest_row(real_data_dir):
    X, y, _ = real_coin_data(real_data_dir, "ethereum", start="2022-01-01")
    m = fit_final_model(X, y, settings=_small(), family="hist_gb", calibration="sigmoid", coin="ethereum")
    p = m.predict_proba(X.tail(1))  # the newest row has features but no target yet
    assert p.shape == (1,) and 0.2 < p[0] < 0.8
    assert m.metadata["train_end"] == str(X.index[-2]) and m.metadata["coin"] == "ethereum"


@pytest.mark.parametrize("calibration", ["none", "sigmoid"])
def test_pooled_ensemble_round_trips_through_the_registry(tmp_path, calibration):
    "The default model (pooled soft-vote ensemble, calibrated or not) is accepted and loaded with the registry's lists."
    from cryptopred.registry import ModelRegistry
    pool = {f"s{i}": demo_direction_data(300, seed=30 + i) for i in range(3)}
    s = _small()
    m = fit_final_model(*pool["s0"][:2], settings=s, family="ensemble", calibration=calibration, pool=pool, coin="s0",
                        params={"logistic": {"C": 0.1}, "random_forest": {"n_estimators": 10}})
    reg = ModelRegistry(root=tmp_path / "models", settings=s)
    v = reg.register("classifier", "s0", "daily", m, horizon=1, data_source="simulated", data_hash="0" * 64,
                     train_start=m.metadata["train_start"], train_end=m.metadata["train_end"], features=m.features)
    loaded = reg.load("classifier", "s0", "daily", v).model
    X1 = pool["s1"][0].tail(5)  # a pooled model serves every coin of its pool
    np.testing.assert_allclose(loaded.predict_proba(X1), m.predict_proba(X1))
    assert loaded.metadata["pool"] == m.metadata["pool"] and set(m.metadata["pool"]) == {"s1", "s2"}


def test_a_served_rule_round_trips_through_the_registry_and_is_named(tmp_path):
    "When the reversal rule is what is served, the registry stores and loads it (skops, trusted list) under its name."
    from cryptopred.registry import ModelRegistry
    from cryptopred.serve.state import classifier_model
    X, y, _ = demo_direction_data(300, seed=5)
    X = X.rename(columns={"ret_lag0": "ret_lag_1"})
    s = _small()
    m = fit_final_model(X, y, settings=s, family="reversal_rule", coin="s0")
    assert m.metadata["model"] == "reversal rule" and m.metadata["calibration"] == "none"
    reg = ModelRegistry(root=tmp_path / "models", settings=s)
    v = reg.register("classifier", "s0", "daily", m, horizon=1, data_source="simulated", data_hash="0" * 64,
                     train_start=m.metadata["train_start"], train_end=m.metadata["train_end"], features=m.features,
                     params={"family": "reversal_rule", "model": m.metadata["model"], "pooled": False})
    loaded = reg.load("classifier", "s0", "daily", v)
    np.testing.assert_allclose(loaded.model.predict_proba(X.tail(5)), m.predict_proba(X.tail(5)))
    p = loaded.model.predict_proba(X.tail(50))
    r = X.tail(50)["ret_lag_1"].to_numpy()
    assert (np.diff(p[np.argsort(r)]) <= 1e-12).all()  # P(up) falls as today's return rises: the rule's ranking
    assert classifier_model(loaded.metadata) == "reversal rule"
    assert classifier_model({"params": {"family": "ensemble", "pooled": True}}) == "pooled ensemble"  # older manifests
