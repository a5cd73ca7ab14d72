"""Fixtures for the training tests: a store filled with the simulated market at a fixed time, and quick options."""
from __future__ import annotations

import pandas as pd

from cryptopred.config import Settings, load_settings
from cryptopred.data.ingest import ingest

NOW = pd.Timestamp("2026-03-01 12:00", tz="UTC")  # the simulated market's "now" (a fixed history every run)
QUICK = {"families": ["logistic"], "n_boot": 100, "importance_repeats": 2}  # a classifier run of a few seconds


def simulated_home(home, coins=("bitcoin", "ethereum"), days: int = 300, **settings) -> Settings:
    "Settings on `home` (simulated source, tiny budgets) with `days` of the simulated market ingested for `coins`."
    s = load_settings(environ={}, env_file=None, home=home, source="simulated", coins=tuple(coins), search_budget=1,
                      cv_folds=2, **settings)
    report = ingest(s, days=days, now=NOW)
    assert report.ok, report.failed
    return s
