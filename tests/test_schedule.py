"""The scheduler: a CoinGecko outage during a scheduled ingest (fake CoinGecko on 127.0.0.1), the command line, and a
graceful stop of the long-running process on SIGTERM and SIGINT, and fire times skipped while a job still runs."""
from __future__ import annotations

import json
import signal
import subprocess
import sys
import textwrap
import threading
from pathlib import Path

import pytest
from support.cli import cli_env
from support.fakes import NOW, frozen_fake
from support.homes import cg_settings, tree_digest

from cryptopred.commands import schedule_cli
from cryptopred.config import load_settings
from cryptopred.data.ingest import ingest
from cryptopred.data.store import Store
from cryptopred.monitor.alerts import read_alerts
from cryptopred.schedule import Scheduler, read_schedule_log


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


def _stub_runbooks(folder: Path, trace: Path, hold: Path) -> Path:
    """ingest, profile and monitor run-books that append `start|end <step> <pid of the scheduler>` to `trace`;
    ingest also writes its own and its papermill's pid, and waits (bounded) until the file `hold` is gone."""
    import nbformat
    folder.mkdir(parents=True, exist_ok=True)
    for step in ("ingest", "profile", "monitor"):
        nb = nbformat.v4.new_notebook()
        nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
        p = nbformat.v4.new_code_cell("source = None\ngranularity = None\nrun_dir = None")
        p.metadata["tags"] = ["parameters"]
        body = textwrap.dedent(f"""
            import os, time
            from pathlib import Path
            who = os.environ.get("STUB_WHO", "?")
            def mark(what):
                with open({str(trace)!r}, "a") as f: f.write(f"{{what}} {step} {{who}}\\n")
            mark("start")
            if {step!r} == "ingest":
                Path({str(trace)!r} + ".pids").write_text(f"{{os.getpid()}} {{os.getppid()}}")
                t0 = time.monotonic()
                while Path({str(hold)!r}).exists() and time.monotonic() - t0 < 120: time.sleep(0.1)
            mark("end")
        """)
        nb.cells = [p, nbformat.v4.new_code_cell(body)]
        nbformat.write(nb, folder / f"{step}.ipynb")
    return folder


JOB = textwrap.dedent("""
    import sys
    from cryptopred.config import load_settings
    from cryptopred.schedule import Scheduler
    out = Scheduler(load_settings(), pipelines_dir=sys.argv[1]).run_job("ingest_daily")
    print("SKIPPED" if getattr(out, "skipped", None) else "RAN", [s.status for s in out.steps])
""")


def _wait_for(cond, what: str, limit: float = 120.0):
    import time
    t0 = time.monotonic()
    while not cond():
        assert time.monotonic() - t0 < limit, f"gave up waiting for {what}"
        time.sleep(0.1)


def _alive(pid: int) -> bool:
    import os
    try: os.kill(pid, 0)
    except ProcessLookupError: return False
    st = Path(f"/proc/{pid}/stat")
    return not (st.exists() and st.read_text().split(") ")[-1].startswith("Z"))  # a zombie is dead


def test_two_schedulers_on_one_home_never_interleave_a_jobs_steps(tmp_path):
    home, trace, hold = tmp_path / "home", tmp_path / "trace.txt", tmp_path / "hold"
    books = _stub_runbooks(tmp_path / "books", trace, hold)
    env = {**cli_env(home, CRYPTOPRED_SCHEDULED_SOURCE="simulated", CRYPTOPRED_APP_URL="")}
    hold.touch()
    first = subprocess.Popen([sys.executable, "-c", JOB, str(books)], env={**env, "STUB_WHO": "A"},
                             stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        _wait_for(lambda: trace.exists() and "start ingest A" in trace.read_text(), "the first job's ingest")
        second = subprocess.run([sys.executable, "-c", JOB, str(books)], env={**env, "STUB_WHO": "B"},
                                capture_output=True, text=True, timeout=120)
        hold.unlink()
        out, _ = first.communicate(timeout=180)
    finally:
        if first.poll() is None: first.kill()
    assert second.returncode == 0 and second.stdout.startswith("SKIPPED []"), second.stdout + second.stderr
    assert out.strip().endswith("RAN ['succeeded', 'succeeded', 'succeeded']"), out
    steps = ("ingest", "profile", "monitor")
    assert trace.read_text().split("\n")[:-1] == [f"{w} {s} A" for s in steps for w in ("start", "end")]
    s = load_settings(environ={}, env_file=None, home=home)
    skipped = [r for r in read_schedule_log(s) if r.get("skipped")]
    assert len(skipped) == 1 and "job 'ingest_daily' not started: ingest_daily (pid" in skipped[0]["skipped"]
    assert "holds the job lock" in skipped[0]["skipped"]


def test_kill_9_of_a_scheduler_leaves_no_run_book_behind_and_the_next_start_recovers(tmp_path):
    import os
    home, trace, hold = tmp_path / "home", tmp_path / "trace.txt", tmp_path / "hold"
    books = _stub_runbooks(tmp_path / "books", trace, hold)
    env = {**cli_env(home, CRYPTOPRED_SCHEDULED_SOURCE="simulated", CRYPTOPRED_APP_URL=""), "STUB_WHO": "A"}
    hold.touch()
    sched = subprocess.Popen([sys.executable, "-c", JOB, str(books)], env=env, stdout=subprocess.DEVNULL,
                             stderr=subprocess.DEVNULL)
    try:
        pids = Path(str(trace) + ".pids")
        _wait_for(pids.exists, "the run-book to start")
        kernel, papermill = map(int, pids.read_text().split())
        sched.send_signal(signal.SIGKILL)
        sched.wait(30)
        _wait_for(lambda: not _alive(papermill) and not _alive(kernel), "the run-book to die with its scheduler", 60)
    finally:
        if sched.poll() is None: sched.kill()
        hold.unlink(missing_ok=True)
        for pid in (locals().get("kernel"), locals().get("papermill")):
            if pid and _alive(pid): os.kill(pid, signal.SIGKILL)
    assert "end ingest" not in trace.read_text()  # it never went on writing
    s = load_settings(environ={}, env_file=None, home=home)
    [dead] = list(s.runs_dir.glob("*_ingest"))
    assert json.loads((dead / "status.json").read_text())["status"] == "running"  # as the kill left it
    again = subprocess.run([sys.executable, "-c", JOB, str(books)], env=env, capture_output=True, text=True, timeout=180)
    assert again.stdout.strip().endswith("RAN ['succeeded', 'succeeded', 'succeeded']"), again.stdout + again.stderr
    st = json.loads((dead / "status.json").read_text())
    assert st["status"] == "interrupted" and "is gone" in st["error"] and not (dead / "parameters.yaml").exists()
    rec = read_schedule_log(s)[-1]
    assert any(n.startswith(f"recorded {dead.name} as interrupted") for n in rec["notes"]), rec
