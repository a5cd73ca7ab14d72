"""Helpers for the data-layer tests: a fake CoinGecko frozen at a fixed time, settings and clients pointed at it,
and the console script run as a user runs it."""
from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pandas as pd
from coingecko_fake import DAY_MS, FakeCoinGecko

from cryptopred.config import Settings, load_settings
from cryptopred.data.coingecko import CoinGecko

NOW = pd.Timestamp("2026-03-10 15:27:13", tz="UTC")  # the fake's and the client's "now" (never across a midnight)
SECRET = "CG-test-SECRET-9f8e7d"  # an API key that must never show up anywhere but in a request header


def ms(t) -> int: return int(pd.Timestamp(t).value // 1_000_000)


def frozen_fake(**kw) -> Iterator[FakeCoinGecko]:
    "A started fake CoinGecko (bitcoin, ethereum, solana) whose clock stands at `NOW`; for `yield from` in a fixture."
    with FakeCoinGecko(now=lambda: ms(NOW), **kw) as f:
        yield f


def cg_settings(fake: FakeCoinGecko, home: Path, **kw) -> Settings:
    "Settings on `home` pointed at `fake`, with fast limits (retry waits are recorded, not slept)."
    base = dict(home=home, coingecko_url=fake.url, calls_per_minute=60_000, request_timeout=5.0, max_retries=3,
                backoff_base=1.0, backoff_cap=60.0)
    return load_settings(environ={}, env_file=None, **{**base, **kw})


def client(fake: FakeCoinGecko, home: Path, now=NOW, **kw) -> CoinGecko:
    "A CoinGecko client on `fake` whose waits are only recorded (see `.waits`)."
    return CoinGecko(cg_settings(fake, home, **kw), sleep=lambda s: None, now=lambda: now)


def retry_waits(cg: CoinGecko) -> list[float]: return [d for kind, d in cg.waits if kind == "retry"]


def expected_days(end: pd.Timestamp, n: int) -> list[pd.Timestamp]:
    "The `n` daily grid instants up to `end` (floored to the day)."
    end = end.floor("D")
    return list(pd.date_range(end - pd.Timedelta(days=n - 1), end, freq="D"))


def fake_prices(fake: FakeCoinGecko, coin: str, times) -> list[float]:
    return [fake.price(coin, ms(t)) for t in times]


def cli(*args, env: dict | None = None, timeout: float = 120) -> subprocess.CompletedProcess:
    "Run the installed `cryptopred` console script."
    exe = Path(sys.executable).parent / "cryptopred"
    return subprocess.run([str(exe), *args], capture_output=True, text=True, env=env, timeout=timeout)


def cli_env(home: Path, **extra: str) -> dict:
    "The current environment (already cleaned by conftest) with a home and extra variables."
    return {**os.environ, "CRYPTOPRED_HOME": str(home), "PYTHONWARNINGS": "ignore", **extra}


__all__ = ["DAY_MS", "NOW", "SECRET", "FakeCoinGecko", "cg_settings", "cli", "cli_env", "client", "expected_days",
           "fake_prices", "frozen_fake", "ms", "retry_waits"]
