"""`make run` keeps itself current: the app and the scheduler in one process on a home whose data are a few days old;
the scheduled ingest brings the new periods, and the app's /readyz says how fresh the data are and when the next
update runs — without a restart. Stale data and a champion that cannot load make /readyz degraded, with an alert."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pandas as pd
from support.fakes import free_port, live_server
from support.homes import make_champions, register_classifier, registry_of, serve_settings

from cryptopred.monitor.alerts import read_alerts
from cryptopred.serve.app import create_app


def _until(cond, what: str, limit: float = 240.0):
    t0 = time.monotonic()
    while True:
        got = cond()
        if got: return got
        assert time.monotonic() - t0 < limit, f"gave up waiting for {what}"
        time.sleep(0.5)


def _processes_of(home: Path) -> list[int]:
    "Processes whose environment names `home` (the app, its run-books, their kernels)."
    out = []
    for d in Path("/proc").iterdir():
        if not d.name.isdigit(): continue
        try: env = (d / "environ").read_bytes()
        except OSError: continue
        if f"CRYPTOPRED_HOME={home}".encode() in env.split(b"\0"): out.append(int(d.name))
    return out


def test_serve_and_schedule_advances_freshness_without_a_restart(tmp_path):
    s = serve_settings(tmp_path / "home", coins=("bitcoin",))
    make_champions(s, days=150)  # data end 3 days ago: stale
    port = free_port()
    env = {**os.environ, "CRYPTOPRED_HOME": str(s.home), "CRYPTOPRED_COINS": "bitcoin", "CRYPTOPRED_SOURCE": "simulated",
           "CRYPTOPRED_SEARCH_BUDGET": "1", "CRYPTOPRED_CV_FOLDS": "2", "CRYPTOPRED_RETRAIN_COOLDOWN_HOURS": "1000",
           "MPLCONFIGDIR": str(tmp_path / "mpl")}
    exe = Path(sys.executable).parent / "cryptopred"
    proc = subprocess.Popen([str(exe), "serve", "--port", str(port), "--schedule", "--every", "5", "--log-level", "info"],
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    lines = []
    try:
        for line in proc.stdout:
            lines.append(line)
            if "Uvicorn running on" in line: break
        url = f"http://127.0.0.1:{port}/readyz"
        first = httpx.get(url, timeout=30).json()
        stale = pd.Timestamp(first["freshness"]["bitcoin"]["as_of"])
        assert first["ready"] and first["status"] == "degraded", first
        assert first["freshness"]["bitcoin"]["stale"] and "periods old" in first["degraded"][0]
        assert first["scheduler"] == "running" and first["next_update"], first
        today = pd.Timestamp.now(tz="UTC").floor("D")
        assert stale < today - pd.Timedelta(days=2)
        now = _until(lambda: (r := httpx.get(url, timeout=30).json())["freshness"]["bitcoin"]["as_of"] != first[
            "freshness"]["bitcoin"]["as_of"] and r, "the scheduled ingest to bring newer data")
        assert pd.Timestamp(now["freshness"]["bitcoin"]["as_of"]) >= today - pd.Timedelta(days=1)
        assert now["status"] == "ok" and now["degraded"] == [] and now["scheduler"] == "running", now
        kinds = [a.kind for a in read_alerts(s)]
        assert "stale_data" in kinds  # the stale data were alerted on, once
    finally:
        proc.send_signal(signal.SIGINT)  # Ctrl-C
        try: out, _ = proc.communicate(timeout=120)
        except subprocess.TimeoutExpired: proc.kill(); out, _ = proc.communicate()
    out = "".join(lines) + out
    assert proc.returncode == 0 and out.rstrip().endswith("stopped") and "Traceback" not in out, out[-4000:]
    assert "scheduler: simulated data kept current" in out
    # at startup the server says which protections are on (here: no token, the default loopback bind)
    assert "protection: access token: off" in out and "protection: uploads: refused" in out, out[-4000:]
    _until(lambda: not _processes_of(s.home), "every process of the home to end", 60)  # nothing left running


def test_a_champion_that_cannot_load_makes_readyz_degraded_with_the_reason(tmp_path):
    s = serve_settings(tmp_path / "home", coins=("bitcoin",))
    versions = make_champions(s, days=150, lag_days=0)
    with live_server(create_app(s, ui=False)) as url:
        ok = httpx.get(url + "/readyz", timeout=30).json()
        assert ok["status"] == "ok" and ok["scheduler"] == "not running" and ok["next_update"] is None, ok
        champion = versions["classifier", "bitcoin"]
        v2 = register_classifier(s, "bitcoin")  # a new champion, promoted ...
        folder = registry_of(s).root / "classifier" / "bitcoin" / s.granularity / v2
        torn = [p for p in folder.iterdir() if p.is_file() and p.suffix not in (".json", ".md", ".jsonl")]
        assert torn, sorted(p.name for p in folder.iterdir())
        for p in torn: p.write_bytes(b"torn")  # ... whose model file is damaged: it cannot load
        bad = _until(lambda: (r := httpx.get(url + "/readyz", timeout=30).json())["status"] == "degraded" and r,
                     "the app to notice the broken champion", 60)
        assert bad["ready"] and any("classifier champion in the registry cannot be loaded" in m and champion in m
                                    for m in bad["degraded"]), bad
        _until(lambda: "champion_load_failed" in [a.kind for a in read_alerts(s)], "the alert", 30)
