"""The prediction log under concurrency, several processes, backpressure, write failures and torn lines."""
from __future__ import annotations

import json
import subprocess
import sys
import threading

import pandas as pd
import pytest
from support.market import prediction

from cryptopred.monitor.core import MonitorError
from cryptopred.monitor.predictions import PredictionLog, read_predictions

T0 = pd.Timestamp("2025-06-01 23:00", tz="UTC")


def _lines(settings):
    d = settings.monitoring_dir / "predictions"
    return [line for p in sorted(d.glob("*.jsonl")) for line in p.read_text().splitlines()]


def test_many_threads_append_and_close_loses_nothing(settings):
    "8 threads x 300 appends spanning two UTC days: every record lands once, whole, in its day file, in thread order."
    log = PredictionLog(settings, maxsize=64)  # a small queue: appenders also meet backpressure
    def work(k):
        for i in range(300):
            log.append(prediction(T0 + pd.Timedelta(seconds=k * 1000 + i * 3), request_id=f"{k}-{i}", thread=k, seq=i))
    threads = [threading.Thread(target=work, args=(k,)) for k in range(8)]
    for t in threads: t.start()
    for t in threads: t.join(60)
    log.close()
    lines = _lines(settings)
    recs = [json.loads(x) for x in lines]  # every line is one whole JSON object
    assert len(recs) == 2400 and len({r["request_id"] for r in recs}) == 2400
    for k in range(8):
        assert [r["seq"] for r in recs if r["thread"] == k] == list(range(300))
    days = {p.name for p in (settings.monitoring_dir / "predictions").glob("*.jsonl")}
    assert days == {"2025-06-01.jsonl", "2025-06-02.jsonl"}
    df = read_predictions(settings)
    assert len(df) == 2400 and df["served_at"].is_monotonic_increasing
    for f in (settings.monitoring_dir / "predictions").glob("*.jsonl"):  # each record is in its served_at day's file
        assert {json.loads(x)["served_at"][:10] for x in f.read_text().splitlines()} == {f.stem}
    assert log.written == 2400 and log.unwritten == []


_CHILD = """
import sys, pandas as pd
from cryptopred.config import load_settings
from cryptopred.monitor.predictions import PredictionLog
sys.path.insert(0, {tests!r})
from support.market import prediction
log = PredictionLog(load_settings(environ={{"CRYPTOPRED_HOME": {home!r}}}, env_file=None), maxsize=16)
for i in range(1500):
    t = pd.Timestamp("2025-06-02 01:00", tz="UTC") + pd.Timedelta(seconds=i)
    log.append(prediction(t, request_id=f"{{sys.argv[1]}}-{{i}}"))
log.close()
"""


def test_two_processes_share_a_day_file_without_interleaving(settings, tmp_path):
    from pathlib import Path
    code = _CHILD.format(tests=str(Path(__file__).parent), home=str(settings.home))
    procs = [subprocess.Popen([sys.executable, "-c", code, name]) for name in ("a", "b")]
    for p in procs: assert p.wait(120) == 0
    lines = _lines(settings)
    recs = [json.loads(x) for x in lines]
    assert len(recs) == 3000
    for name in ("a", "b"):
        mine = [r["request_id"] for r in recs if r["request_id"].startswith(name)]
        assert mine == [f"{name}-{i}" for i in range(1500)]


def test_a_failing_disk_keeps_the_records_until_it_recovers(settings):
    "The folder cannot be created (a file is in the way): flush says so, nothing is lost, the backlog goes first."
    settings.monitoring_dir.mkdir(parents=True)
    blocker = settings.monitoring_dir / "predictions"
    blocker.write_text("not a folder")
    log = PredictionLog(settings, retries=1, backoff=0.0)
    log.append(prediction(T0, request_id="early"))
    assert log.flush(timeout=30) is False
    assert [json.loads(line)["request_id"] for _, line in log.unwritten] == ["early"]
    assert log.write_errors >= 2 and "predictions" in log.last_error
    blocker.unlink()
    log.append(prediction(T0 + pd.Timedelta(seconds=1), request_id="late"))
    assert log.flush(timeout=30) is True
    log.close()
    assert [json.loads(x)["request_id"] for x in _lines(settings)] == ["early", "late"]


def test_close_reports_records_it_could_not_write(settings):
    settings.monitoring_dir.mkdir(parents=True)
    (settings.monitoring_dir / "predictions").write_text("not a folder")
    log = PredictionLog(settings, retries=0, backoff=0.0)
    for i in range(3): log.append(prediction(T0, request_id=str(i)))
    with pytest.raises(MonitorError, match="3 prediction records could not be written .* in PredictionLog.unwritten"):
        log.close()
    assert len(log.unwritten) == 3


def test_a_torn_line_costs_only_itself(settings):
    "A crash left half a line: the next append starts a fresh line; readers warn (or raise) naming the line."
    d = settings.monitoring_dir / "predictions"
    d.mkdir(parents=True)
    whole = json.dumps(prediction(T0, request_id="before"))
    (d / "2025-06-01.jsonl").write_text(whole + "\n" + whole[: len(whole) // 2])
    with PredictionLog(settings) as log:
        log.append(prediction(T0 + pd.Timedelta(minutes=1), request_id="after"))
    with pytest.warns(UserWarning, match=r"2025-06-01.jsonl line\(s\) 2"):
        df = read_predictions(settings)
    assert df["request_id"].tolist() == ["before", "after"]
    with pytest.raises(MonitorError, match="unreadable prediction log lines"):
        read_predictions(settings, strict=True)


def test_read_filters_by_serving_time_and_flushes_first(settings):
    log = PredictionLog(settings)
    for h in range(72): log.append(prediction(pd.Timestamp("2025-06-01", tz="UTC") + pd.Timedelta(hours=h)))
    df = log.read(start="2025-06-02 06:00", end="2025-06-03")
    assert len(df) == 18 and df["served_at"].min() == pd.Timestamp("2025-06-02 06:00", tz="UTC")
    assert len(log.read()) == 72
    log.close()
    log.close()  # idempotent
    with pytest.raises(MonitorError, match="is closed"):
        log.append(prediction(T0))


def test_bad_records_fail_in_the_callers_thread(settings):
    log = PredictionLog(settings)
    with pytest.raises(MonitorError, match="lacks target_time, prob_up"):
        log.append({k: v for k, v in prediction(T0).items() if k not in ("target_time", "prob_up")})
    with pytest.raises(MonitorError, match="horizon must be a positive whole number"):
        log.append(prediction(T0, horizon=1.5))
    log.close()
    assert not (settings.monitoring_dir / "predictions").exists()  # nothing written, no folder made


def test_close_during_heavy_appending_writes_every_accepted_record(settings):
    "Appenders hammer a 1-line buffer while another thread closes the log: every append that returned is on disk."
    log = PredictionLog(settings, maxsize=1)
    accepted, rejected, lock = [], [], threading.Lock()
    halfway = threading.Event()
    def work(k):
        for i in range(300):
            rid = f"{k}-{i}"
            try: log.append(prediction(T0 + pd.Timedelta(seconds=i), request_id=rid))
            except MonitorError:
                with lock: rejected.append(rid)
                continue
            with lock: accepted.append(rid)
            if i == 50: halfway.set()
    threads = [threading.Thread(target=work, args=(k,)) for k in range(4)]
    for t in threads: t.start()
    assert halfway.wait(60)
    log.close()
    for t in threads: t.join(60)
    on_disk = [json.loads(x)["request_id"] for x in _lines(settings)]
    assert sorted(on_disk) == sorted(accepted)
    assert len(accepted) + len(rejected) == 1200 and len(accepted) >= 51
