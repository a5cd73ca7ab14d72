"""The CoinGecko client against a real HTTP server on 127.0.0.1 that fails the ways CoinGecko does."""
from __future__ import annotations

import logging

import pandas as pd
import pytest
from support.fakes import NOW, SECRET, client, expected_days, fake_prices, frozen_fake, ms, retry_waits
from support.homes import HUNDRED_COINS, cg_settings

from cryptopred.data.coingecko import CoinGecko, CoinGeckoError, UnknownCoin
from cryptopred.data.core import SourceUnavailable
from cryptopred.data.fake import FakeCoinGecko
from cryptopred.data.ingest import ingest


@pytest.fixture
def fake():
    yield from frozen_fake()

START = NOW.floor("D") - pd.Timedelta(days=29)  # 30 daily rows up to today 00:00


def daily(cg, coin="bitcoin"):
    return cg.history(coin, "daily", start=START)


def test_clean_fetch_is_the_reference(fake, tmp_path):
    got = daily(client(fake, tmp_path))
    assert got.frame.timestamp.tolist() == expected_days(NOW, 30)
    assert got.frame.price.tolist() == fake_prices(fake, "bitcoin", expected_days(NOW, 30))
    assert got.live_quote.time == NOW.floor("ms") and got.live_quote.price == fake.price("bitcoin", NOW.value // 10**6)
    assert len(fake.calls("market_chart")) == 1


def test_429_with_retry_after_waits_what_the_server_says(fake, tmp_path):
    cg = client(fake, tmp_path)
    fake.inject("429", retry_after=7).inject("429", retry_after=2)
    got = daily(cg)
    assert retry_waits(cg) == [7.0, 2.0]
    assert got.frame.timestamp.tolist() == expected_days(NOW, 30)
    assert [r.status for r in fake.calls("market_chart")] == [429, 429, 200]


def test_429_without_retry_after_backs_off_exponentially_with_jitter_and_a_cap(fake, tmp_path):
    cg = client(fake, tmp_path, max_retries=6, backoff_base=1.0, backoff_cap=5.0)
    fake.inject("429", times=6)
    got = daily(cg)
    waits = retry_waits(cg)
    assert len(waits) == 6 and len(got.frame) == 30
    for attempt, w in enumerate(waits):
        d = min(5.0, 2 ** attempt)
        assert d / 2 <= w <= d, (attempt, w)
    assert len(set(waits[3:])) > 1 or waits[3:] == []  # jitter: capped waits are not all identical


@pytest.mark.parametrize("fault", ["500", "503", "timeout", "disconnect", "malformed"])
def test_transient_failures_are_retried_until_the_data_is_complete(fake, tmp_path, fault):
    cg = client(fake, tmp_path, request_timeout=0.3 if fault == "timeout" else 5.0)
    fake.inject(fault, times=2, path="market_chart")
    got = daily(cg)
    assert len(retry_waits(cg)) == 2
    assert got.frame.timestamp.tolist() == expected_days(NOW, 30)
    assert got.frame.price.tolist() == fake_prices(fake, "bitcoin", expected_days(NOW, 30))
    fake.release()


def test_exhausted_retries_name_the_coin_and_the_last_cause(fake, tmp_path):
    cg = client(fake, tmp_path, max_retries=2)
    fake.inject("503", times=None)
    cause = r"^ethereum: CoinGecko market_chart failed after 3 attempts: server error 503"
    with pytest.raises(SourceUnavailable, match=cause):
        daily(cg, "ethereum")
    assert len(fake.calls("market_chart")) == 3


def test_connection_errors_name_the_host_and_the_cause(tmp_path):
    from cryptopred.config import load_settings
    s = load_settings(environ={}, env_file=None, home=tmp_path, coingecko_url="http://127.0.0.1:9/api/v3/", max_retries=1)
    cg = CoinGecko(s, sleep=lambda _: None)
    with pytest.raises(SourceUnavailable, match=r"^bitcoin: .* failed after 2 attempts: connection to 127.0.0.1:9 failed "
                                                 r"\(NewConnectionError\)"):
        daily(cg)


def test_request_timeout_comes_from_the_settings(fake, tmp_path):
    assert CoinGecko(client(fake, tmp_path).settings).api.request_timeout == 5.0
    cg = client(fake, tmp_path, request_timeout=0.3, max_retries=0)
    fake.inject("timeout")
    with pytest.raises(SourceUnavailable, match="no answer within 0.3 s"):
        daily(cg)
    fake.release()


@pytest.mark.parametrize("fault,coin,match", [
    (None, "notacoin", r"notacoin: unknown coin id — CoinGecko answered 404 \(coin not found\)"),
    ("404", "bitcoin", r"bitcoin: unknown coin id"),
    ("10012", "bitcoin", r"bitcoin: CoinGecko refused market_chart \(error 10012: Your request exceeds the allowed"),
    ("10010", "solana", r"solana: .*error 10010.*pro key was sent to the public host"),
    ("10011", "solana", r"solana: .*error 10011.*demo key was sent to the pro host"),
])
def test_unrecoverable_answers_fail_at_once_with_a_clear_error(fake, tmp_path, fault, coin, match):
    cg = client(fake, tmp_path)
    if fault: fake.inject(fault)
    with pytest.raises(CoinGeckoError, match=match) as e:
        daily(cg, coin)
    assert len(fake.calls("market_chart")) == 1 and retry_waits(cg) == []
    assert e.value.coin == coin
    if fault is None or fault == "404": assert isinstance(e.value, UnknownCoin)


def test_empty_arrays_are_no_data_not_an_error(fake, tmp_path):
    fake.inject("empty")
    got = daily(client(fake, tmp_path))
    assert got.frame.empty and got.live_quote is None


def test_keyless_history_is_cut_to_365_days_instead_of_asking_beyond_the_plan(fake, tmp_path):
    got = client(fake, tmp_path).history("bitcoin", "daily", start=NOW - pd.Timedelta(days=800))
    assert fake.calls("market_chart")[-1].query["days"] == "365"
    assert "365 days back" in got.notes[0] and len(got.frame) == 365


def test_rate_limiter_spaces_requests_by_calls_per_minute(fake, tmp_path):
    class Clock:
        t = 0.0
        def __call__(self): return self.t
        def sleep(self, s): self.t += s
    clock = Clock()
    s = client(fake, tmp_path, calls_per_minute=20).settings
    cg = CoinGecko(s, sleep=clock.sleep, clock=clock, now=lambda: NOW)
    for _ in range(4): cg.ping()
    assert [d for kind, d in cg.waits if kind == "rate"] == [3.0, 3.0, 3.0]
    assert clock.t == 9.0


def test_the_key_is_a_header_and_never_appears_in_urls_logs_or_errors(fake, tmp_path, caplog):
    caplog.set_level(logging.DEBUG)  # urllib3 and requests log every request at DEBUG
    cg = client(fake, tmp_path, coingecko_demo_api_key=SECRET, max_retries=3, request_timeout=0.3)
    fake.inject("429", retry_after=1).inject("timeout").inject("500")
    daily(cg)
    errors = []
    for fault in ("10012", "10010", "404"):
        fake.inject(fault)
        with pytest.raises(CoinGeckoError) as e: daily(cg)
        errors.append(e.value)
    fake.inject("503", times=None)
    with pytest.raises(SourceUnavailable) as e: daily(cg)
    errors.append(e.value)
    fake.clear()
    assert all(r.headers.get("x-cg-demo-api-key") == SECRET for r in fake.requests)
    assert not any(SECRET in r.raw_target or "api_key" in r.raw_target for r in fake.requests)
    assert caplog.text and SECRET not in caplog.text
    for err in errors: assert SECRET not in str(err) and SECRET not in repr(err)
    assert SECRET not in repr(cg) and SECRET not in repr(cg.settings)


def test_live_quote_from_simple_price(fake, tmp_path):
    q = client(fake, tmp_path).quotes(["bitcoin", "ethereum"])
    assert q["bitcoin"].price == fake.price("bitcoin", NOW.value // 10**6)
    assert q["ethereum"].time == NOW.floor("s") and q["ethereum"].market_cap > 0
    with pytest.raises(UnknownCoin, match="notacoin: unknown coin id"):
        client(fake, tmp_path).quote("notacoin")


def test_ingest_of_30_coins_keeps_the_rate_says_how_far_it_is_resumes_and_then_asks_once_per_coin(tmp_path):
    """30 coins at 10 calls a minute on a virtual clock: the limiter spaces every call 6 s apart across coins, a line
    at least every 10 s says coins done and the time left; CoinGecko failing at coin 13 stops the run, the next run
    fetches only the 18 coins not yet stored, and a day later each coin costs one call for the missing range."""
    coins = HUNDRED_COINS[:30]
    clock = {"t": 0.0, "now": NOW}
    tick, sleep = (lambda: clock["t"]), (lambda s: clock.update(t=clock["t"] + s))
    with FakeCoinGecko(coins=dict.fromkeys(coins, 100.0), now=lambda: ms(clock["now"])) as fake:
        s = cg_settings(fake, tmp_path, calls_per_minute=10, max_retries=0)
        run = lambda lines: ingest(s, CoinGecko(s, sleep=sleep, clock=tick, now=lambda: clock["now"]), coins, days=30,
                                   now=clock["now"], echo=lines.append, clock=tick)
        fake.inject("503", times=None, path=f"/coins/{coins[12]}/")
        lines = []
        first = run(lines)
        assert first.failed == list(coins[12:]) and len(fake.calls("market_chart")) == 13
        assert first.requests["rate_waits"] == 12
        assert clock["t"] == pytest.approx(12 * 6.0) and first.requests["rate_wait_s"] == pytest.approx(72.0)
        stamps = [float(ln.split(", ")[1].split()[0]) for ln in lines[:-1]]
        assert lines[0] == "ingest coingecko: 3/30 coins, 12 s elapsed, 108 s left · solana"
        assert all(b - a <= 10 + 6 for a, b in zip([0.0, *stamps], stamps, strict=False)), lines
        assert lines[-1].startswith("ingest coingecko: 30/30 coins")
        fake.clear(); fake.reset_requests()
        again = run([])  # resumes: the 12 stored coins are up to date, only the others are asked for
        assert again.ok and [c.path.split("/")[-2] for c in fake.calls("market_chart")] == list(coins[12:])
        assert all("up to date" in r.notes for r in again.results[:12])
        fake.reset_requests(); clock["now"] += pd.Timedelta(days=2)
        later = run([])
        chart = fake.calls("market_chart")
        assert later.ok and len(chart) == 30 and all(float(c.query["days"]) <= 3 for c in chart)
        assert {r.added for r in later.results} == {2}
