"""A store and a registry written by the pre-refactor code (76cf413, one package of flat modules) load unchanged with
today's layered package: the same rows, the same champions, files that still pass their checksums, and models that
give the same numbers. The fixture was made by tests/fixtures/legacy_build.py with the old code."""
from __future__ import annotations

import json
import tarfile
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from support.homes import home_settings

from cryptopred.data.store import Store
from cryptopred.features import build_panel
from cryptopred.registry import open_registry

FIXTURES = Path(__file__).resolve().parent / "fixtures"
EXPECTED = json.loads((FIXTURES / "legacy_expected.json").read_text())


@pytest.fixture(scope="module")
def legacy(tmp_path_factory):
    "Settings on the unpacked legacy home."
    d = tmp_path_factory.mktemp("legacy")
    with tarfile.open(FIXTURES / "legacy_home.tar.gz") as tar: tar.extractall(d, filter="data")
    return home_settings(d / "home", source="simulated", coins=("bitcoin",))


def test_the_legacy_store_reads_unchanged(legacy):
    e = EXPECTED["store"]
    fr = Store(legacy).read(e["coin"], e["granularity"], e["source"])
    assert list(fr.columns) == e["columns"] and len(fr) == e["rows"]
    assert (fr["timestamp"].iloc[0], fr["timestamp"].iloc[-1]) == (pd.Timestamp(e["first"]), pd.Timestamp(e["last"]))
    assert fr["price"].sum() == pytest.approx(e["price_sum"], rel=1e-12)
    info = Store(legacy).info()
    assert info[["source", "coin", "rows"]].to_dict("records") == [{"source": "simulated", "coin": "bitcoin", "rows": 120}]


def test_the_legacy_registry_loads_verifies_and_predicts_the_same(legacy):
    reg = open_registry(legacy)
    listed = reg.list_models(verify=True)
    assert set(listed["integrity"]) == {"ok"} and len(listed) == 2
    for kind, e in EXPECTED["registry"].items():
        assert reg.champion_version(kind, "bitcoin", "daily") == e["champion"] == e["version"]
        loaded = reg.load(kind, "bitcoin", "daily")
        assert loaded.version == e["version"] and loaded.metadata["data_source"] == e["data_source"]
    f = reg.load("forecaster", "bitcoin", "daily").model
    np.testing.assert_allclose(f.forecast(3)["yhat"].to_numpy(float), EXPECTED["registry"]["forecaster"]["yhat_3"], rtol=1e-9)
    m = reg.load("classifier", "bitcoin", "daily").model
    assert m.features == EXPECTED["registry"]["classifier"]["features"]
    fr = Store(legacy).read("bitcoin", "daily", "simulated")
    fe = build_panel({"bitcoin": fr}, "daily", settings=legacy)["bitcoin"]
    want = EXPECTED["registry"]["classifier"]["prob_up_last3"]
    rows = fe.loc[pd.DatetimeIndex(pd.to_datetime(want["timestamps"])), m.features]
    np.testing.assert_allclose(m.predict_proba(rows), want["values"], rtol=1e-9)
