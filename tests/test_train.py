"""Training at the orchestration level: the run-books under papermill, `cryptopred train`, the Dask backend,
determinism, per-coin failure isolation, the promotion rule through `train_all`, and a leaky feature caught."""
from __future__ import annotations

import json

import numpy as np
import pytest
from support.homes import QUICK, simulated_home

from cryptopred.commands import train_cli
from cryptopred.features import build_panel
from cryptopred.forecast import default_params
from cryptopred.registry import open_registry
from cryptopred.report.context import SECTION_NEEDS
from cryptopred.runs import latest_run, run_step
from cryptopred.train.classifier import fit_classifier
from cryptopred.train.core import load_market, market_hash, run_settings
from cryptopred.train.run import train_all


def _needs(step: str) -> tuple[set[str], set[str]]:
    "The metric keys and figures the technical report reads from `step`'s run."
    keys, figs = set(), set()
    for needs in SECTION_NEEDS.values():
        for s, k, f in needs:
            if s == step: keys |= set(k); figs |= set(f)
    return keys, figs


def test_classifier_runbook_records_what_the_report_reads(settings):
    s = simulated_home(settings.home)
    params = {"coins": ["bitcoin", "ethereum"], "search_budget": 1, "seed": 3, "n_boot": 100, "families": ["logistic"]}
    rec = run_step("train_classifier", params, settings=s, env={"CRYPTOPRED_CV_FOLDS": "2"})
    assert rec.ok, rec.error
    m, (keys, figs) = rec.metrics, _needs("train_classifier")
    assert keys <= set(m) and all(list(rec.path.glob(f)) for f in figs)  # figure names are patterns (roc_*.png)
    assert (m["kind"], m["source"], m["simulated"], m["seed"], m["search_budget"], m["ok"]) == \
        ("classifier", "simulated", True, 3, 1, True)
    for coin in ("bitcoin", "ethereum"):
        h = m["holdout"][coin]
        assert h["n"] == m["evaluation"][coin]["n_holdout"] > 40
        for k in ("accuracy", "roc_auc", "log_loss", "brier_skill"):
            assert h[k]["lo"] <= h[k]["value"] <= h[k]["hi"]
        assert m["leakage_alarm"][coin] == (h["accuracy"]["value"] > 0.6)
        # rules compete in selection: the served family is the fitted one or a rule
        assert m["params"][coin]["family"] in ("logistic", "reversal_rule", "momentum_rule")
        assert m["evaluation"][coin]["seed"] == 3
        assert m["baselines"][coin]["best"] in ("majority", "always_up", "momentum", "reversal")
        assert m["cleaning"][coin]["rows_in"] == 300 and m["promotion"][coin]["rule"] == "no champion"
        for fig in ("roc", "calibration", "confusion", "backtest"): assert (rec.path / f"{fig}_{coin}.png").stat().st_size > 5000
    # pooled (the evaluated protocol): every coin learns from both coins' rows, on the features they share
    assert m["pooled"] and m["pool"] == ["bitcoin", "ethereum"] and m["pooled_with"]["ethereum"] == ["bitcoin", "ethereum"]
    assert "btc_ret" not in m["features"] and m["promoted"] == {"bitcoin": True, "ethereum": True}
    reg = open_registry(s)
    loaded = reg.load("classifier", "ethereum", "daily")
    assert loaded.version == m["versions"]["ethereum"] and loaded.metadata["data_source"] == "simulated"
    assert loaded.metadata["features"] == m["features_by_coin"]["ethereum"]
    assert len(list((s.monitoring_dir / "profiles" / "reference").rglob("*.bin"))) == 2


def test_train_cli_runs_the_forecaster_runbook_and_fails_on_a_missing_coin(settings, capsys):
    s = simulated_home(settings.home)
    code = train_cli(["--kind", "forecaster", "--coins", "bitcoin,solana,ethereum", "--budget", "1"])
    out, err = capsys.readouterr()
    assert code == 1 and "train_forecaster: failed" in out and "solana: NoData" in err
    rec = latest_run("train_forecaster", s, status="failed")
    m = rec.metrics  # written before the run failed
    assert m["trained"] == ["bitcoin", "ethereum"] and list(m["failures"]) == ["solana"]
    keys, _ = _needs("train_forecaster")
    assert keys <= set(m)
    for coin in ("bitcoin", "ethereum"):
        row = m["per_coin"][coin]
        assert row["horizon"] == 7 and row["n"] > 5 and row["mae"] > 0 and 0 <= row["coverage_80"] <= row["coverage_95"] <= 1
        assert set(m["by_horizon"][coin]) == {"1", "7", "30"} and set(m["by_horizon"][coin]["7"]) == {"volprophet", "rw", "rwd"}
        assert (rec.path / f"forecast_{coin}.png").stat().st_size > 5000
        assert m["tuning"][coin]["tuned"] is False  # 240 days before the holdout: too few to tune, defaults used
    assert open_registry(s).champion_version("forecaster", "ethereum", "daily") == m["versions"]["ethereum"]


def test_train_cli_refuses_dask_without_a_scheduler(capsys):
    with pytest.raises(SystemExit) as e: train_cli(["--backend", "dask"])
    assert e.value.code == 2 and "--backend dask needs --scheduler" in capsys.readouterr().err


def test_same_seed_and_data_give_the_same_models_and_metrics(tmp_path):
    a, b = (simulated_home(tmp_path / n) for n in ("a", "b"))
    ra = train_all(a, kind="classifier", n_jobs=2, progress=False, **QUICK)
    rb = train_all(b, kind="classifier", n_jobs=1, progress=False, **QUICK)
    ma, mb = ra.metrics(), rb.metrics()
    for k in ("holdout", "baselines", "params", "importance", "data_hashes", "features"): assert ma[k] == mb[k], k
    frame = build_panel(load_market(a, ["ethereum"])[0], "daily", settings=a)["ethereum"].dropna(subset=ma["features"])
    pa, pb = (open_registry(s).load("classifier", "ethereum", "daily").model.predict_proba(frame) for s in (a, b))
    np.testing.assert_array_equal(pa, pb)


def test_each_coin_pools_with_itself_and_its_first_pool_size_peers(tmp_path):
    """Beyond `pool_size` coins the pool is bounded (training cost linear in coins): each coin learns from itself and
    the first others of the pool; its evaluation, its model's metadata and its data hash say exactly which; the
    pooled selection is made once, on the reference pool, and shared."""
    coins = ("bitcoin", "ethereum", "solana")
    s = simulated_home(tmp_path / "h", coins=coins, pool_size=2)
    rep = train_all(s, kind="classifier", progress=False, **QUICK)
    m = rep.metrics()
    assert rep.ok and m["pool"] == list(coins) and m["pool_size"] == 2 and m["pooled"]
    assert m["pooled_with"] == {"bitcoin": ["bitcoin", "ethereum"], "ethereum": ["bitcoin", "ethereum"],
                                "solana": ["bitcoin", "solana"]}
    assert [m["evaluation"][c]["pool"] for c in coins] == [["ethereum"], ["bitcoin"], ["bitcoin"]]
    frames, _ = load_market(s, coins)
    assert m["data_hashes"]["solana"] == market_hash(frames, "solana", ["bitcoin"]) != market_hash(frames, "solana", coins)
    assert open_registry(s).load("classifier", "solana", "daily").model.metadata["pool_coins"] == ["bitcoin", "solana"]
    # the selection (the costly part) is made once, on the reference pool, and the coin beyond it fits that choice
    assert m["selection_pool"] == ["bitcoin", "ethereum"]
    assert m["params"]["solana"] == m["params"]["bitcoin"]
    assert m["evaluation"]["solana"]["inner_loss"] == m["evaluation"]["bitcoin"]["inner_loss"]
    assert [m["evaluation"][c]["selection_given"] for c in coins] == [False, False, True]  # said per coin
    # retrained alone (a drift alert on solana), it gets the same choice and the same model
    alone = train_all(s, coins="solana", kind="classifier", progress=False, **QUICK).metrics()
    assert alone["params"]["solana"] == m["params"]["solana"] and alone["holdout"]["solana"] == m["holdout"]["solana"]
    assert alone["evaluation"]["solana"]["selection_given"] and alone["selection_pool"] == ["bitcoin", "ethereum"]


def test_dask_backend_on_a_local_cluster_gives_the_loky_results(tmp_path):
    distributed = pytest.importorskip("distributed")
    a, b = (simulated_home(tmp_path / n) for n in ("a", "b"))
    with distributed.LocalCluster(n_workers=1, threads_per_worker=1, processes=True, dashboard_address=None) as cluster:
        rd = train_all(a, kind="forecaster", backend="dask", scheduler=cluster.scheduler_address, progress=False, tune=False)
        # the pooled classifier, on the cluster CRYPTOPRED_DASK_SCHEDULER names (no backend argument): the first
        # coin's pooled selection is made on a worker and handed to the others
        on_cluster = run_settings(a, dask_scheduler=cluster.scheduler_address)
        cd = train_all(on_cluster, kind="classifier", progress=False, **QUICK)
    rl = train_all(b, kind="forecaster", progress=False, tune=False)
    cl = train_all(b, kind="classifier", progress=False, **QUICK)
    assert rd.ok and rl.ok and rd.parameters["backend"] == "dask"
    assert rd.metrics()["per_coin"] == rl.metrics()["per_coin"]
    assert cd.ok and cl.ok and cd.parameters["backend"] == "dask"
    assert cd.parameters["pooled"] and cd.parameters["pool"] == ["bitcoin", "ethereum"]
    mc, ml = cd.metrics(), cl.metrics()
    for k in ("holdout", "params", "features", "pooled_with"): assert mc[k] == ml[k], k


def test_promotion_through_train_all_no_champion_worse_and_better(tmp_path):
    s = simulated_home(tmp_path / "h", coins=("bitcoin",))
    key = ("forecaster", "bitcoin", "daily")
    reg = open_registry(s)
    prophet_path = default_params("daily").to_dict() | {"shrink": 1.0}  # centred on Prophet's mean path, not the last price
    first = train_all(s, kind="forecaster", params=prophet_path, progress=False).results["bitcoin"]["promotion"]
    assert (first["rule"], first["promoted"]) == ("no champion", True)
    better = train_all(s, kind="forecaster", tune=False, progress=False).results["bitcoin"]["promotion"]
    assert better["rule"] == "compared" and better["challenger_score"] < better["champion_score"] and better["promoted"]
    champion = reg.champion_version(*key)
    worse = train_all(s, kind="forecaster", params=prophet_path, progress=False).results["bitcoin"]["promotion"]
    assert worse["rule"] == "compared" and worse["challenger_score"] > worse["champion_score"] and not worse["promoted"]
    assert reg.champion_version(*key) == champion and reg.resolve(*key, "challenger") == worse["version"]
    events = [e["action"] for e in reg.audit_log(*key) if e["action"] != "register"]
    assert events == ["promote", "promote", "reject"]
    assert json.loads(json.dumps(reg.audit_log(*key)[-1]))["champion_score"] == pytest.approx(worse["champion_score"])


def test_a_leaky_feature_is_caught_by_the_training_run(tmp_path):
    s = simulated_home(tmp_path / "h", coins=("bitcoin",))
    frame = build_panel(load_market(s, ["bitcoin"])[0], "daily", settings=s)["bitcoin"]
    leak = frame["log_price"].shift(-1) - frame["log_price"]  # tomorrow's return: a mis-shifted join
    leaky = fit_classifier("bitcoin", frame.assign(leak=leak), s, **QUICK)
    honest = fit_classifier("bitcoin", frame, s, **QUICK)
    acc = {k: f.evaluation.summary()["accuracy"] for k, f in (("leaky", leaky), ("honest", honest))}
    assert leaky.leakage_alarm and acc["leaky"] > 0.8 and acc["leaky"] - acc["honest"] > 0.2, acc
    assert leaky.importance.index[0] == "leak" and "leak" in leaky.recipe["features"]  # the importance names the culprit
    assert leaky.importance.loc["leak", "mean"] > 10 * honest.importance["mean"].max()
