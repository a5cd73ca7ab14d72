"""Shared fixtures: an isolated runtime home per test, settings built from it, and the real-data folder."""
from __future__ import annotations

import os
import sys
import tempfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
GUARD = REPO / "tests" / "netguard"

# Nothing in the suite may try the internet: guard this process and, through PYTHONPATH (sitecustomize), every Python
# process it starts; every refused attempt is logged and fails the session (`pytest_sessionfinish`).
os.environ.setdefault("NETGUARD_LOG", str(Path(tempfile.mkdtemp(prefix="netguard-")) / "refused.log"))
os.environ["PYTHONPATH"] = os.pathsep.join([str(GUARD), *filter(None, [os.environ.get("PYTHONPATH")])])
sys.path.insert(0, str(GUARD))
import netguard  # noqa: E402,F401
from support.fakes import FakeCoinGecko  # noqa: E402
from support.homes import make_champions, serve_settings  # noqa: E402

from cryptopred.config import Settings, load_settings  # noqa: E402

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("WHYLOGS_NO_ANALYTICS", "1")
os.environ.setdefault("MPLBACKEND", "Agg")


@pytest.fixture(autouse=True)
def _isolated_env(monkeypatch, tmp_path):
    """No test sees the developer's CRYPTOPRED_* variables, keys or .env; every test gets its own home."""
    for k in list(os.environ):
        if k.startswith("CRYPTOPRED_") and k != "CRYPTOPRED_REQUIRE_BROWSER" or k.startswith("COINGECKO_"):
            monkeypatch.delenv(k, raising=False)
    monkeypatch.setenv("CRYPTOPRED_HOME", str(tmp_path / "home"))
    monkeypatch.chdir(tmp_path)


@pytest.fixture
def settings(tmp_path) -> Settings:
    "Settings on a temporary home, everything else default."
    return load_settings(environ={"CRYPTOPRED_HOME": str(tmp_path / "home")}, env_file=None)


@pytest.fixture(scope="session")
def real_data_dir() -> Path:
    "The real market data beside the project; tests using it skip (with the reason) where it is absent."
    d = Settings().real_data_dir
    if not (d / "bitcoin_daily.csv").is_file():
        pytest.skip(f"real data folder {d} is absent (it lies beside the project at ../shared/data/real)")
    return d


@pytest.fixture
def coingecko_fake():
    "A started `FakeCoinGecko` (default coins bitcoin, ethereum, solana), stopped after the test."
    with FakeCoinGecko() as fake:
        yield fake


@pytest.fixture(scope="session")
def served_home(tmp_path_factory) -> Settings:
    """A home with 240 days of simulated bitcoin and ethereum and a champion classifier and forecaster for each,
    built once for the session (the serve, UI and deploy tests read it; none of them may change its models)."""
    s = serve_settings(tmp_path_factory.mktemp("serve") / "home")
    make_champions(s)
    return s


# The longest files first. `make pytest` runs two xdist workers with `--dist loadfile`, which hands whole files out
# in collection order: a long file collected last (test_report.py sorts late) leaves the other worker idle while it
# runs alone. Longest-first keeps both workers busy to the end. Measured with `--durations` (idle 2-core machine,
# seconds per file): report ~105, drift loop ~55, train ~50, serve_ui ~45, schedule ~35, monitor run-books ~25,
# evaluate_real ~22, docs ~20, keep_current ~15; every other file takes less and keeps its alphabetical place.
LONGEST_FIRST = ("test_report.py", "test_drift_loop.py", "test_train.py", "test_serve_ui.py", "test_schedule.py",
                 "test_monitor_runbooks.py", "test_evaluate_real.py", "test_docs.py", "test_keep_current.py")


def pytest_collection_modifyitems(session, config, items):
    "Collect the longest files first (a stable sort: the order inside a file, and of the other files, is kept)."
    rank = {name: i for i, name in enumerate(LONGEST_FIRST)}
    items.sort(key=lambda item: rank.get(item.path.name, len(rank)))


def pytest_sessionfinish(session, exitstatus):
    "Fail the run when any test, or any process a test started, tried to leave loopback."
    log = Path(os.environ["NETGUARD_LOG"])
    refused = log.read_text().strip() if log.is_file() else ""
    if refused:
        session.config.get_terminal_writer().line(f"\nnetwork guard: the suite tried to leave loopback:\n{refused}", red=True)
        session.exitstatus = pytest.ExitCode.TESTS_FAILED
