"""Ingest into the parquet store: recovery from faults, incremental updates, failure isolation, crash safety,
concurrent writers, CSV import of the real data, the CLI."""
from __future__ import annotations

import hashlib
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from support.cli import cli, cli_env
from support.fakes import NOW, SECRET, FakeCoinGecko, client, expected_days, fake_prices, frozen_fake, ms
from support.homes import cg_settings

from cryptopred.commands import ingest_cli
from cryptopred.config import load_settings
from cryptopred.data.coingecko import CoinGecko
from cryptopred.data.ingest import ingest
from cryptopred.data.simulated import SimulatedMarket, simulate_market
from cryptopred.data.store import Store


@pytest.fixture
def fake():
    yield from frozen_fake()

COINS = ["bitcoin", "ethereum", "solana"]


def test_ingest_through_faults_stores_complete_deduplicated_data_and_a_second_run_adds_nothing(fake, tmp_path):
    cg = client(fake, tmp_path / "home", request_timeout=0.5)  # the held (timeout) request gives up quickly
    fake.inject("429", retry_after=2).inject("503", path="ethereum").inject("malformed", path="ethereum")
    fake.inject("timeout", path="solana").inject("duplicates", path="solana").inject("out_of_order", path="bitcoin")
    rep = ingest(cg.settings, source=cg, coins=COINS, days=30, now=NOW)
    fake.release()
    assert rep.ok, rep.table()
    store = Store(cg.settings)
    for coin in COINS:
        df = store.read(coin, source="coingecko")
        assert df.timestamp.tolist() == expected_days(NOW, 30), coin
        assert df.price.tolist() == fake_prices(fake, coin, df.timestamp), coin
        assert df.timestamp.is_unique and (df.source == "coingecko").all()
    got = {r.coin: r for r in rep.results}
    assert got["solana"].added == 30 and got["solana"].duplicates == 30  # every point came twice
    assert all(r.live_price is not None for r in rep.results)  # the live point was seen ...
    assert all(store.read(c, source="coingecko").timestamp.max() == NOW.floor("D") for c in COINS)  # ... not stored
    assert len([d for k, d in cg.waits if k == "retry"]) == 4
    calls = len(fake.calls("market_chart"))
    again = ingest(cg.settings, source=cg, coins=COINS, days=30, now=NOW)
    assert [r.added for r in again.results] == [0, 0, 0] and again.ok
    assert len(fake.calls("market_chart")) == calls  # nothing was missing, so nothing was asked


def test_incremental_ingest_asks_only_for_the_missing_days(fake, tmp_path):
    s = cg_settings(fake, tmp_path / "home")
    ingest(s, source=client(fake, tmp_path / "home"), coins=["bitcoin"], days=10, now=NOW)
    later = NOW + pd.Timedelta(days=3, hours=2)
    fake.now = lambda: ms(later)
    rep = ingest(s, source=client(fake, tmp_path / "home", now=later), coins=["bitcoin"], now=later)
    assert fake.calls("market_chart")[-1].query["days"] == "3"  # 03-11, 03-12, 03-13: just the missing days
    r = rep.results[0]
    assert (r.added, r.rows, r.last) == (3, 13, later.floor("D"))
    assert r.requested_from == NOW.floor("D") + pd.Timedelta(days=1)
    df = Store(s).read("bitcoin", source="coingecko")
    assert df.timestamp.tolist() == expected_days(later, 13)
    assert df.price.tolist() == fake_prices(fake, "bitcoin", df.timestamp)


def test_hourly_ingest_aligns_coingeckos_stamps_to_the_hour(fake, tmp_path):
    s = cg_settings(fake, tmp_path / "home")
    rep = ingest(s, source=client(fake, tmp_path / "home"), coins=["ethereum"], granularity="hourly", days=2, now=NOW)
    df = Store(s).read("ethereum", "hourly", source="coingecko")
    assert rep.ok and rep.results[0].quarantined == 0
    assert (df.timestamp == df.timestamp.dt.floor("h")).all() and df.timestamp.is_unique
    assert df.timestamp.max() == NOW.floor("h") and len(df) == 48
    assert fake.calls("market_chart")[-1].query == {"vs_currency": "usd", "days": "2"}


def test_pro_key_ingests_full_history_in_range_chunks(tmp_path):
    with FakeCoinGecko(host_kind="pro", now=lambda: ms(NOW)) as pro:
        s = cg_settings(pro, tmp_path / "home", coingecko_pro_api_key=SECRET)
        cg = CoinGecko(s, sleep=lambda _: None, now=lambda: NOW)
        rep = ingest(s, source=cg, coins=["bitcoin"], days=900, now=NOW)
        assert rep.ok and rep.results[0].added == 900
        assert [r.path.rsplit("/", 1)[-1] for r in pro.calls("market_chart")] == ["range"] * 3
        df = Store(s).read("bitcoin", source="coingecko")
        assert df.timestamp.tolist() == expected_days(NOW, 900)


def test_one_failing_coin_does_not_lose_the_others_and_the_cli_exits_non_zero(fake, tmp_path):
    home = tmp_path / "home"
    s = cg_settings(fake, home)
    rep = ingest(s, source=client(fake, home), coins=["bitcoin", "notacoin", "ethereum"], days=5, now=NOW)
    assert rep.failed == ["notacoin"] and "unknown coin id" in rep.results[1].error
    assert [r.added for r in rep.results] == [5, 0, 5]
    assert rep.metrics()["failures"] == {"notacoin": rep.results[1].error}
    env = cli_env(home, CRYPTOPRED_COINGECKO_URL=fake.url, COINGECKO_DEMO_API_KEY=SECRET,
                  CRYPTOPRED_CALLS_PER_MINUTE="6000")
    p = cli("ingest", "--source", "coingecko", "--coins", "solana,notacoin", "--days", "3", env=env)
    assert p.returncode == 1, p.stderr
    assert "FAILED: notacoin: unknown coin id" in p.stdout and "solana" in p.stdout
    assert SECRET not in p.stdout + p.stderr
    assert Store(s).read("solana", source="coingecko").shape[0] >= 3


def test_coingecko_down_keeps_stored_data_and_skips_the_remaining_coins(fake, tmp_path):
    home = tmp_path / "home"
    s = cg_settings(fake, home, max_retries=2)
    ingest(s, source=client(fake, home), coins=COINS, days=5, now=NOW)
    before = {c: Store(s).path("coingecko", c).read_bytes() for c in COINS}
    fake.inject("503", times=None)
    fake.reset_requests()
    later = NOW + pd.Timedelta(days=2)
    rep = ingest(s, source=client(fake, home, now=later, max_retries=2), coins=COINS, now=later)
    assert not rep.ok and rep.failed == COINS
    assert "failed after 3 attempts: server error 503" in rep.results[0].error
    assert all(r.error.startswith("skipped: coingecko unavailable") for r in rep.results[1:])
    assert len(fake.requests) == 3  # one coin's attempts, not every coin's
    assert {c: Store(s).path("coingecko", c).read_bytes() for c in COINS} == before


CRASH = textwrap.dedent("""
    import os, sys
    import cryptopred.data.store as st
    from cryptopred.config import load_settings
    from cryptopred.data.ingest import ingest
    from cryptopred.data.simulated import SimulatedMarket
    import pandas as pd
    real = st._to_parquet
    def half_then_die(df, path):  # the process dies with half of the new file written
        real(df, path)
        data = path.read_bytes()
        path.write_bytes(data[: len(data) // 2])
        os._exit(9)
    st._to_parquet = half_then_die
    now = pd.Timestamp("2026-03-10", tz="UTC")
    ingest(load_settings(), source=SimulatedMarket(now=lambda: now), coins=["bitcoin"], days=40, now=now)
""")


def test_a_crash_during_a_write_leaves_the_previous_file_readable_and_unchanged(tmp_path):
    home = tmp_path / "home"
    s = load_settings(environ={}, env_file=None, home=home)
    then = pd.Timestamp("2026-03-01", tz="UTC")
    ingest(s, source=SimulatedMarket(now=lambda: then), coins=["bitcoin"], days=30, now=then)
    path = Store(s).path("simulated", "bitcoin")
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    p = subprocess.run([sys.executable, "-c", CRASH], env=cli_env(home), capture_output=True, text=True, timeout=120)
    assert p.returncode == 9, p.stderr
    assert hashlib.sha256(path.read_bytes()).hexdigest() == digest
    assert len(Store(s).read("bitcoin", source="simulated")) == 30
    assert len(list(path.parent.glob(".bitcoin.parquet.*.tmp"))) == 1  # the dead writer's temp file
    now = pd.Timestamp("2026-03-10", tz="UTC")
    rep = ingest(s, source=SimulatedMarket(now=lambda: now), coins=["bitcoin"], days=40, now=now)
    assert rep.ok and rep.results[0].rows == 40 and rep.results[0].added == 10
    assert list(path.parent.glob(".*.tmp")) == []  # the next writer swept the crashed one's temp file
    assert Store(s).info().coin.tolist() == ["bitcoin"]


def test_concurrent_ingests_of_the_same_coins_do_not_corrupt_anything(tmp_path):
    home = tmp_path / "home"
    env = cli_env(home)
    args = ("ingest", "--source", "simulated", "--coins", "bitcoin,ethereum", "--granularity", "hourly", "--days", "60")
    exe = [str(Path(sys.executable).parent / "cryptopred"), *args]
    procs = [subprocess.Popen(exe, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for _ in range(2)]
    outs = [p.communicate(timeout=180) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], outs
    s = load_settings(environ={}, env_file=None, home=home)
    info = Store(s).info()
    assert info.rows.tolist() == [1440, 1440] and info.quarantined.tolist() == [0, 0]
    for coin in ("bitcoin", "ethereum"):
        df = Store(s).read(coin, "hourly", source="simulated")
        assert df.timestamp.is_unique and df.timestamp.is_monotonic_increasing
        ref = simulate_market(coin, df.timestamp.min(), df.timestamp.max(), "hourly")[coin]
        np.testing.assert_array_equal(df.price.to_numpy(), ref.price.to_numpy())
    assert "SIMULATED DATA" in outs[0][0]


def test_auto_falls_back_to_the_simulated_market_loudly(tmp_path, monkeypatch, capsys, caplog):
    monkeypatch.setenv("CRYPTOPRED_COINGECKO_URL", "http://127.0.0.1:9/api/v3/")  # nothing listens there
    assert ingest_cli(["--coins", "bitcoin", "--days", "3", "--no-progress"]) == 0
    out, _ = capsys.readouterr()
    assert any(r.levelname == "WARNING" and "SIMULATED DATA: CoinGecko is not reachable" in r.getMessage()
               for r in caplog.records)
    assert "from simulated (SIMULATED DATA): 3 rows added" in out
    p = cli("store", "info", env=cli_env(tmp_path / "home"))
    assert p.returncode == 0 and "simulated" in p.stdout and "SIMULATED DATA" in p.stdout


@pytest.mark.realdata
def test_csv_import_of_the_real_bitcoin_daily_file(real_data_dir, tmp_path):
    s = load_settings(environ={}, env_file=None, home=tmp_path / "home")
    rep = ingest(s, source=f"csv:{real_data_dir}", coins=["bitcoin", "ethereum"])
    assert rep.ok and rep.source == "csv-real" and not rep.simulated
    btc = Store(s).read("bitcoin", source="csv-real")
    # 4678 rows in the file: the 00:05 snapshots are aligned; the two late-evening ones (2017-06-06 23:29,
    # 2017-06-08 23:39) are nearer the next midnight, which has its own row, so they are quarantined
    assert len(btc) == 4676 and rep.results[0].quarantined == 2
    q = Store(s).quarantined("csv-real", "bitcoin")
    assert sorted(q.raw_timestamp.str[:16]) == ["2017-06-06T23:29", "2017-06-08T23:39"]  # as written in the file
    day = btc.set_index("timestamp").loc[pd.Timestamp("2022-12-31", tz="UTC")]
    assert day.price == pytest.approx(16604.02, abs=0.01)
    assert btc.total_volume.isna().sum() == 242 and not (btc[["market_cap", "total_volume"]] == 0).any().any()
    assert btc.timestamp.iloc[0] == pd.Timestamp("2013-04-28", tz="UTC")
    assert (btc.timestamp == btc.timestamp.dt.floor("D")).all()
    eth = Store(s).read("ethereum", source="csv-real")
    assert len(eth) == 3848 and eth.market_cap.isna().sum() == 1
    assert ingest(s, source=f"csv:{real_data_dir}", coins=["bitcoin"]).results[0].added == 0
    hourly = ingest(s, source=f"csv:{real_data_dir}", coins=["bitcoin"], granularity="hourly")
    assert hourly.results[0].added == 19704 and hourly.results[0].quarantined == 0
    h = Store(s).read("bitcoin", "hourly", source="csv-real")
    assert h.market_cap.isna().all() and (h.timestamp.diff().dropna() == pd.Timedelta(hours=1)).all()


def _csv(folder: Path, coin: str, lines: list[str]) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    p = folder / f"{coin}_daily.csv"
    p.write_text("snapped_at,price,market_cap,total_volume\n" + "\n".join(lines) + "\n")
    return p


def test_unreadable_and_out_of_range_timestamps_are_quarantined_never_the_whole_file(tmp_path):
    s = load_settings(environ={}, env_file=None, home=tmp_path / "home")
    good = [f"2026-01-0{d} 00:00:00 UTC,{100 + d},1e9,1e8" for d in range(1, 6)]
    bad = ["notadate,1,1,1", "1767398400000,1,1,1", "2999-01-02 00:00:00 UTC,1,1,1", "9999-12-31,1,1,1"]
    _csv(tmp_path / "a", "bitcoin", good + bad[:2])  # the coin once failed with a TypeError in validation
    _csv(tmp_path / "a", "ethereum", good + bad[2:])  # the file once failed with OutOfBoundsDatetime in the reader
    now = pd.Timestamp("2026-01-10", tz="UTC")
    rep = ingest(s, source=f"csv:{tmp_path / 'a'}", coins=["bitcoin", "ethereum"], now=now)
    assert rep.ok, rep.table()
    assert [(r.added, r.quarantined) for r in rep.results] == [(5, 2), (5, 2)]
    q = {c: Store(s).quarantined(rep.source, c).set_index("raw_timestamp").reason for c in ("bitcoin", "ethereum")}
    assert q["bitcoin"]["notadate"] == "unparseable timestamp 'notadate'"
    assert "epoch" in q["bitcoin"]["1767398400000"]
    assert all("out of range" in r for r in q["ethereum"]), q["ethereum"].tolist()
    assert Store(s).read("ethereum", source=rep.source).timestamp.dt.year.unique().tolist() == [2026]


def test_two_csv_folders_of_the_same_name_never_share_a_store_file(tmp_path):
    s = load_settings(environ={}, env_file=None, home=tmp_path / "home")
    now = pd.Timestamp("2026-01-10", tz="UTC")
    _csv(tmp_path / "x" / "real", "bitcoin", ["2026-01-01 00:00:00 UTC,100,1,1"])
    _csv(tmp_path / "y" / "real", "bitcoin", ["2026-01-01 00:00:00 UTC,999,1,1", "2026-01-02 00:00:00 UTC,998,1,1"])
    rx = ingest(s, source=f"csv:{tmp_path / 'x' / 'real'}", coins=["bitcoin"], now=now)
    ry = ingest(s, source=f"csv:{tmp_path / 'y' / 'real'}", coins=["bitcoin"], now=now)
    assert rx.ok and ry.ok and rx.source != ry.source
    assert Store(s).read("bitcoin", source=rx.source).price.tolist() == [100.0]
    assert Store(s).read("bitcoin", source=ry.source).price.tolist() == [999.0, 998.0]
    assert Store(s).path(rx.source, "bitcoin") != Store(s).path(ry.source, "bitcoin")
    assert rx.source == ingest(s, source=f"csv:{tmp_path / 'x' / 'real'}/", coins=["bitcoin"], now=now).source


def test_store_info_reports_a_corrupt_quarantine_file_and_the_next_ingest_counts_what_it_stored(tmp_path):
    home = tmp_path / "home"
    s = load_settings(environ={}, env_file=None, home=home)
    folder = tmp_path / "exports"
    _csv(folder, "bitcoin", ["2026-01-01 00:00:00 UTC,100,1,1", "notadate,1,1,1"])
    now = pd.Timestamp("2026-01-10", tz="UTC")
    label = ingest(s, source=f"csv:{folder}", coins=["bitcoin"], now=now).source
    qpath = Store(s).quarantine_path(label, "bitcoin")
    qpath.write_bytes(b"PAR1 torn")
    p = cli("store", "info", env=cli_env(home))
    assert p.returncode == 1 and "Traceback" not in p.stderr, p.stderr
    assert "bitcoin.quarantine.parquet is unreadable" in p.stderr and "bitcoin" in p.stdout
    _csv(folder, "bitcoin", ["2026-01-01 00:00:00 UTC,100,1,1", "2026-01-02 00:00:00 UTC,101,1,1", "yesterday,1,1,1"])
    p = cli("ingest", "--source", f"csv:{folder}", "--coins", "bitcoin", "--no-progress", env=cli_env(home))
    assert p.returncode == 0 and "FAILED" not in p.stdout and "1 rows added" in p.stdout, p.stdout + p.stderr
    assert "moved to bitcoin.quarantine.parquet.corrupt-" in p.stdout
    assert [f.read_bytes() for f in qpath.parent.glob("*.corrupt-*")] == [b"PAR1 torn"]  # kept, not lost
    assert Store(s).quarantined(label, "bitcoin").raw_timestamp.tolist() == ["yesterday"]


EFBIG = textwrap.dedent("""
    import resource, signal, sys
    import pandas as pd
    from cryptopred.config import load_settings
    from cryptopred.data.ingest import ingest
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a write past the limit fails with EFBIG instead of killing us
    s = load_settings()
    resource.setrlimit(resource.RLIMIT_FSIZE, (60_000, 60_000))
    rep = ingest(s, source="csv:" + sys.argv[1], coins=["bitcoin"], now=pd.Timestamp("2026-01-10", tz="UTC"))
    print(rep.table()); print("ERROR:", rep.results[0].error); print("ADDED:", rep.results[0].added)
""")


def test_a_file_too_large_names_the_file_and_the_summary_counts_the_rows_stored(tmp_path):
    folder = tmp_path / "exports"
    good = [f"2026-01-0{d} 00:00:00 UTC,{100 + d},1,1" for d in range(1, 4)]
    _csv(folder, "bitcoin", good + [f"not a date number {i} {'x' * 40},1,1,1" for i in range(4000)])  # a big quarantine
    home = tmp_path / "home"
    p = subprocess.run([sys.executable, "-c", EFBIG, str(folder)], env=cli_env(home), capture_output=True, text=True, timeout=120)
    assert p.returncode == 0, p.stderr
    s = load_settings(environ={}, env_file=None, home=home)
    label = Store(s).info().source.iloc[0]
    qpath = Store(s).quarantine_path(label, "bitcoin")
    assert "ADDED: 3" in p.stdout and "3 rows added" in p.stdout, p.stdout  # what was stored is counted
    err = p.stdout.split("ERROR:")[1]
    assert "File too large" in err and str(qpath) in err, err
    assert len(Store(s).read("bitcoin", source=label)) == 3 and not qpath.exists()
