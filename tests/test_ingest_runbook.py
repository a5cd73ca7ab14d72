"""The ingest run-book executed by papermill, as `make ingest` runs it, with tiny parameters."""
from __future__ import annotations

import pytest
from support.fakes import SECRET, frozen_fake

from cryptopred.data.store import Store
from cryptopred.runs import run_step


@pytest.fixture
def fake():
    yield from frozen_fake()


def test_ingest_runbook_records_its_metrics(settings):
    rec = run_step("ingest", {"source": "simulated", "coins": ["bitcoin", "ethereum"], "days": 10}, settings=settings)
    assert rec.ok, rec.error
    m = rec.metrics
    assert (m["source"], m["simulated"], m["granularity"], m["ok"]) == ("simulated", True, "daily", True)
    assert m["rows_added"] == {"bitcoin": 10, "ethereum": 10}
    assert m["duplicates"] == {"bitcoin": 0, "ethereum": 0} and m["quarantined"] == {"bitcoin": 0, "ethereum": 0}
    assert m["failures"] == {} and m["total_rows_added"] == 20
    assert (rec.path / "prices.png").stat().st_size > 1000
    assert Store(settings).info().rows.tolist() == [10, 10]


def test_ingest_runbook_fails_when_a_coin_fails_and_never_shows_the_key(fake, settings):
    env = {"CRYPTOPRED_COINGECKO_URL": fake.url, "COINGECKO_DEMO_API_KEY": SECRET,
           "CRYPTOPRED_CALLS_PER_MINUTE": "6000"}
    params = {"source": "coingecko", "coins": "bitcoin,notacoin", "days": 5}
    rec = run_step("ingest", params, settings=settings, env=env)
    assert rec.status == "failed"
    assert rec.error.startswith("IngestFailed: ingest from coingecko failed for 1 of 2 coins — notacoin: unknown coin")
    m = rec.metrics  # written before the run failed
    assert m["rows_added"]["bitcoin"] >= 5 and m["rows_added"]["notacoin"] == 0 and m["simulated"] is False
    assert list(m["failures"]) == ["notacoin"]
    assert all(r.headers.get("x-cg-demo-api-key") == SECRET for r in fake.requests)
    for f in rec.path.iterdir():
        assert SECRET not in f.read_bytes().decode("utf-8", "replace"), f.name
