"""Fixtures for the forecaster's tests: the real data folder (skipping with the reason when absent)."""
from __future__ import annotations

from pathlib import Path

import pytest

from cryptopred.data.csv import read_real, real_data_dir
from cryptopred.forecast import ForecastError


def real_dir() -> Path:
    "The real data folder, or skip the test saying why."
    try: return real_data_dir()
    except ForecastError as e: pytest.skip(str(e))


def real(coin: str, granularity: str = "daily"):
    "Store-like rows of a real coin (skips when the folder is absent)."
    return read_real(coin, granularity, real_dir())
