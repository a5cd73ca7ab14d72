"""The scheduler: a CoinGecko outage during a scheduled ingest (fake CoinGecko on 127.0.0.1), the command line, and a
graceful stop of the long-running process on SIGTERM and SIGINT, and fire times skipped while a job still runs."""
from __future__ import annotations

import json
import signal
import subprocess
import sys
import threading
from pathlib import Path

import pytest
from data_helpers import NOW, cg_settings, cli_env, frozen_fake
from schedule_helpers import tree_digest

from cryptopred.monitor.alerts import read_alerts
from cryptopred.commands import schedule_cli
from cryptopred.schedule import Scheduler, read_schedule_log
from cryptopred.data.ingest import ingest
from cryptopred.data.store import Store


@pytest.fixture
def fake():
    yield from frozen_fake()


def test_coingecko_outage_keeps_the_last_good_data_and_raises_an_alert(fake, tmp_path):
    s = cg_settings(fake, tmp_path / "home", coins=("bitcoin",), scheduled_source="coingecko", max_retries=1,
                    backoff_base=0.0, probe_timeout=2.0, app_url="http://127.0.0.1:9")
    good = ingest(s, source="coingecko", days=60, now=NOW)  # the last good data
    assert good.ok and (n := good.results[0].rows) >= 60
    before = tree_digest(s.data_dir), tree_digest(s.models_dir)
    fake.inject("503", times=None)  # CoinGecko goes down
    fake.reset_requests()

    job = Scheduler(s).run_job("ingest_daily")

    ingest_step, profile_step, monitor_step = job.steps
    assert (ingest_step.step, ingest_step.status) == ("ingest", "failed")
    assert ingest_step.error.startswith("IngestFailed: ingest from coingecko failed for 1 of 1 coins")
    params = json.loads((Path(ingest_step.run) / "parameters.json").read_text())
    assert (params["source"], params["granularity"]) == ("coingecko", "daily")  # named explicitly, never auto
    assert fake.requests and all(r.status == 503 for r in fake.requests)  # it did try, on loopback only
    # the store and the registry are exactly as they were: nothing lost, nothing simulated
    assert (tree_digest(s.data_dir), tree_digest(s.models_dir)) == before
    stored = Store(s).info()[["source", "coin", "rows"]].to_dict("records")
    assert stored == [{"source": "coingecko", "coin": "bitcoin", "rows": n}]
    # profile and monitor still ran on the last good data; the monitor found no app where one was configured
    assert profile_step.ok and monitor_step.ok, (profile_step.error, monitor_step.error)
    assert profile_step.metrics["batches"]["bitcoin"]["rows"] > 0
    assert monitor_step.metrics["latency"]["status"] == "app not reachable"
    [down] = read_alerts(s, kind="source_unreachable")
    assert down.severity == "critical" and down.run == ingest_step.run
    assert "coingecko is unreachable" in down.message and "HTTP 503" in down.message + json.dumps(down.evidence)
    assert [a.kind for a in read_alerts(s)] == ["source_unreachable", "app_unreachable"]
    rec = read_schedule_log(s)[-1]
    assert rec["job"] == "ingest_daily" and [x["status"] for x in rec["steps"]] == ["failed", "succeeded", "succeeded"]
    assert job.ok is False


def test_schedule_command_line(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("CRYPTOPRED_CRON_RETRAIN", "15 3 * * 6")
    assert schedule_cli(["--list"]) == 0
    out = capsys.readouterr().out
    assert out.splitlines()[4].startswith("retrain        15 3 * * 6   next ") and " 03:15 UTC" in out
    assert schedule_cli(["--crontab"]) == 0
    tab = capsys.readouterr().out.splitlines()
    assert tab[1:3] == ["CRON_TZ=UTC", f"CRYPTOPRED_HOME={tmp_path / 'home'}"]
    assert tab[5].startswith("15 3 * * 6  cd ")
    assert tab[5].split(" >> ")[0].endswith(".venv/bin/cryptopred schedule --once retrain")
    from cryptopred.cli import main
    assert main(["schedule", "--once", "backup"]) == 1
    assert "error: no job named 'backup' (jobs: ingest_hourly, ingest_daily, retrain)" in capsys.readouterr().err
    monkeypatch.setenv("CRYPTOPRED_CRON_INGEST_DAILY", "40 0 1 * 1")
    assert main(["schedule", "--list"]) == 1
    assert "CRYPTOPRED_CRON_INGEST_DAILY='40 0 1 * 1': restrict the day of month or the day of week" in capsys.readouterr().err


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_the_scheduler_stops_gracefully(tmp_path, sig):
    exe = Path(sys.executable).parent / "cryptopred"
    proc = subprocess.Popen([str(exe), "schedule"], env=cli_env(tmp_path / "home"), stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)
    try:
        lines = []
        for line in proc.stdout:  # wait for the scheduler to say it is running, not for the clock
            lines.append(line)
            if line.startswith("retrain "): break
        assert lines[0].startswith("scheduler started (coingecko, home "), lines
        proc.send_signal(sig)
        rest, _ = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None: proc.kill()
    assert proc.returncode == 0, rest
    assert f"{sig.name}: stopping after the running steps finish" in rest and rest.rstrip().endswith("scheduler stopped")


def test_a_fire_time_that_finds_the_job_still_running_is_skipped_and_recorded(settings):
    from datetime import datetime, timezone

    from apscheduler.events import EVENT_JOB_MAX_INSTANCES
    started, release, skipped = threading.Event(), threading.Event(), threading.Event()

    class Blocked(Scheduler):  # a retrain that takes as long as the test says
        def run_job(self, name):
            started.set()
            release.wait(30)

    sched = Blocked(settings)
    sched.start(block=False)
    try:
        sched._aps.add_listener(lambda e: skipped.set(), EVENT_JOB_MAX_INSTANCES)
        sched._aps.modify_job("retrain", next_run_time=datetime.now(timezone.utc))
        assert started.wait(30)
        sched._aps.modify_job("retrain", next_run_time=datetime.now(timezone.utc))  # fires while the first run goes on
        assert skipped.wait(30)
    finally:
        release.set()
        sched.shutdown()
    rec = read_schedule_log(settings)[-1]
    assert (rec["job"], rec["skipped"]) == ("retrain", "previous run still running") and len(rec["scheduled_for"]) == 1
