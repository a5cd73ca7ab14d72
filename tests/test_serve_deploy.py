"""Deployment files: the Dockerfile's CMD run exactly as the image runs it (no Docker engine here) and scraped,
the committed alert rules equal to the generated ones, `promtool` on the Prometheus config and rules (including
unit tests of the readiness alerts), and the compose file and Grafana dashboard checked against the app's metrics."""
from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
import yaml
from support.fakes import free_port, parse_metrics, sample

from cryptopred.serve.deploy import alert_rules
from cryptopred.serve.state import ServeMetrics

REPO = Path(__file__).resolve().parents[1]
DEPLOY = REPO / "deploy"
DOCKERFILE = REPO / "Dockerfile"


def instructions(path: Path = DOCKERFILE) -> list[tuple[str, str]]:
    "The Dockerfile's (INSTRUCTION, arguments) pairs, continuation lines joined, comments dropped."
    out, buf = [], ""
    for line in path.read_text().splitlines():
        if not buf and (not line.strip() or line.lstrip().startswith("#")): continue
        buf += line.rstrip("\\").strip() + " " if line.rstrip().endswith("\\") else line.strip()
        if not line.rstrip().endswith("\\"):
            word, _, rest = buf.partition(" ")
            out.append((word.upper(), rest.strip())); buf = ""
    return out


def dockerfile_env() -> dict[str, str]:
    "The ENV of the runtime stage (the last one)."
    ins = instructions()
    last_from = max(i for i, (w, _) in enumerate(ins) if w == "FROM")
    env = {}
    for w, rest in ins[last_from:]:
        if w == "ENV": env.update(tok.split("=", 1) for tok in shlex.split(rest))
    return env


def test_dockerfile_shape():
    ins = instructions()
    froms = [rest for w, rest in ins if w == "FROM"]
    assert len(froms) >= 2 and any(" AS build" in f for f in froms), "multi-stage build"
    arg = next(rest for w, rest in ins if w == "ARG" and rest.startswith("PYTHON_IMAGE="))
    image = arg.split("=", 1)[1]
    assert "-slim" in image and re.fullmatch(r"[^@]+@sha256:[0-9a-f]{64}", image), image  # pinned by digest
    runs = [rest for w, rest in ins if w == "RUN"]
    assert any("pip install -r requirements.lock" in r for r in runs)  # the locked dependencies ...
    assert any("pip install --no-deps ." in r for r in runs)  # ... and the package without re-resolving them
    locked = [ln for ln in (REPO / "requirements.lock").read_text().splitlines() if ln and not ln.startswith("#")]
    assert locked and all(re.fullmatch(r"[A-Za-z0-9_.\-\[\]]+==[^=\s]+", ln) for ln in locked), locked[:5]
    # the run-books, notebooks and report inputs the package links to are in the build context
    for link in ("nbs", "reports", "deploy"):
        assert (REPO / "cryptopred" / link).resolve() == (REPO / link).resolve()
    runtime = ins[max(i for i, (w, _) in enumerate(ins) if w == "FROM"):]
    user = [rest for w, rest in runtime if w == "USER"]
    assert user and user[-1] not in ("root", "0")
    assert ("EXPOSE", "7860") in runtime
    env = dockerfile_env()
    volumes = json.loads(next(rest for w, rest in runtime if w == "VOLUME"))
    assert env["CRYPTOPRED_HOME"] in volumes and env["GRADIO_ANALYTICS_ENABLED"] == "False" and env["HF_HUB_OFFLINE"] == "1"
    health = next(rest for w, rest in runtime if w == "HEALTHCHECK")
    probe = json.loads(health.split("CMD", 1)[1])
    assert probe[:2] == ["python", "-c"] and "/healthz" in probe[2] and "CRYPTOPRED_PORT" in probe[2]
    cmd = json.loads(next(rest for w, rest in reversed(runtime) if w == "CMD"))
    assert cmd[:2] == ["cryptopred", "serve"] and cmd[cmd.index("--host") + 1] == "0.0.0.0"
    allowed = [line[1:].rstrip("/") for line in (REPO / ".dockerignore").read_text().splitlines() if line.startswith("!")]
    copied = [tok for w, rest in ins if w == "COPY" and "--from" not in rest for tok in rest.split()[:-1]]
    assert copied and all(c.rstrip("/") in allowed for c in copied), (copied, allowed)
    assert all((REPO / c).exists() for c in copied)


def test_dockerfile_cmd_serves_and_is_scraped(served_home, tmp_path):
    "Run the CMD exactly as the image does (its ENV, the state volume = a home with champions), scrape /metrics."
    ins = instructions()
    cmd = json.loads(next(rest for w, rest in reversed(ins) if w == "CMD"))
    health = json.loads(next(rest for w, rest in reversed(ins) if w == "HEALTHCHECK").split("CMD", 1)[1])
    health[0] = sys.executable  # the image's `python` is its venv's; ours is this one
    port = free_port()
    env = {**os.environ, **{k: v for k, v in dockerfile_env().items() if k != "PATH"},
           "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",  # the image's venv is ours here
           "CRYPTOPRED_HOME": str(served_home.home), "CRYPTOPRED_PORT": str(port), "MPLCONFIGDIR": str(tmp_path / "mpl"),
           "CRYPTOPRED_COINS": ",".join(served_home.coins), "CRYPTOPRED_SOURCE": "simulated"}  # as `docker run -e` would
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, cwd=tmp_path)
    try:
        seen = []
        for line in proc.stdout:  # synchronise on uvicorn's own announcement, no sleeps
            seen.append(line)
            if "Uvicorn running on" in line: break
        assert f"http://0.0.0.0:{port}" in "".join(seen), "".join(seen[-30:])
        url = f"http://127.0.0.1:{port}"
        assert httpx.post(url + "/api/v1/predict", json={"coin": "bitcoin"}, timeout=30).status_code == 200
        assert httpx.get(url + "/readyz", timeout=30).status_code == 200
        text = httpx.get(url + "/metrics", timeout=30).text
        m = parse_metrics(text)
        assert sample(m, "cryptopred_http_requests_total", route="/api/v1/predict", method="POST", status="200") == 1
        assert sample(m, "cryptopred_http_request_duration_seconds_count", route="/api/v1/predict", method="POST") == 1
        assert sample(m, "cryptopred_ready") == 1
        assert {k[0] for k in m} >= {"cryptopred_champion_info", "cryptopred_predictions_total",
                                    "cryptopred_prediction_probability_bucket", "cryptopred_model_load_seconds_count"}
        assert subprocess.run(health, env=env, timeout=60).returncode == 0  # the image's HEALTHCHECK
        assert httpx.get(url + "/", timeout=30).status_code == 200  # the web UI is mounted
    finally:
        proc.send_signal(signal.SIGTERM)
        out, _ = proc.communicate(timeout=60)
    assert proc.returncode in (0, -signal.SIGTERM) and "Application shutdown complete" in out, out[-3000:]  # graceful
    assert subprocess.run(health, env=env, timeout=60).returncode == 1  # nothing answers any more


def test_committed_alert_rules_are_the_generated_ones():
    committed = (DEPLOY / "alert_rules.yml").read_text()
    assert committed == alert_rules(), "deploy/alert_rules.yml is stale: python -c 'from cryptopred.serve.deploy import " \
                                       "write_alert_rules; write_alert_rules()'"


@pytest.fixture(scope="module")
def promtool() -> str:
    exe = shutil.which("promtool")
    if exe: return exe
    if os.environ.get("CRYPTOPRED_REQUIRE_BROWSER") == "1":
        pytest.fail("promtool is missing but CI requires it (apt-get install -y prometheus)")
    pytest.skip("promtool is not installed (apt-get install -y prometheus; CI installs it)")


def test_promtool_checks_config_and_rules(promtool):
    for args in (["check", "config", str(DEPLOY / "prometheus.yml")], ["check", "rules", str(DEPLOY / "alert_rules.yml")]):
        p = subprocess.run([promtool, *args], capture_output=True, text=True, timeout=60)
        assert p.returncode == 0, p.stdout + p.stderr
        assert "SUCCESS" in p.stdout + p.stderr


def test_promtool_unit_tests_of_the_alerts(promtool, tmp_path):
    "The readiness and down alerts fire after their `for`, and not before; the latency alert fires on slow requests."
    rules = {r["alert"]: r for g in yaml.safe_load(alert_rules())["groups"] for r in g["rules"]}
    labels = {"job": "cryptopred", "instance": "app:7860"}
    exp = lambda name, **extra: [{"exp_labels": {**rules[name]["labels"], **extra},
                                  "exp_annotations": rules[name]["annotations"]}]
    slow = {"route": "/api/v1/predict", "method": "POST"}
    buckets = [("0.1", "0+0x20"), ("0.5", "0+0x20"), ("1.0", "0+60x20"), ("+Inf", "0+60x20")]  # every request 0.5-1 s
    p99_ms = f"{(0.5 + 0.5 * 0.99) * 1000:g}"  # histogram_quantile interpolates inside the (0.5, 1.0] bucket
    tests = {"rule_files": [str(DEPLOY / "alert_rules.yml")], "evaluation_interval": "1m", "tests": [{
        "interval": "1m",
        "input_series": [
            {"series": 'cryptopred_ready{job="cryptopred",instance="app:7860"}', "values": "1 1 0 0 0 0 0 0 0 0 0"},
            {"series": 'up{job="cryptopred",instance="app:7860"}', "values": "1 0 0 0 0 0 0 0 0 0 0"},
            {"series": 'cryptopred_http_requests_total{route="/api/v1/predict",method="POST",status="200"}',
             "values": "0+60x20"},
            *({"series": f'cryptopred_http_request_duration_seconds_bucket{{route="/api/v1/predict",method="POST",le="{le}"}}',
               "values": v} for le, v in buckets)],
        "alert_rule_test": [
            {"eval_time": "5m", "alertname": "CryptopredNotReady", "exp_alerts": []},
            {"eval_time": "8m", "alertname": "CryptopredNotReady", "exp_alerts": exp("CryptopredNotReady", **labels)},
            {"eval_time": "1m", "alertname": "CryptopredDown", "exp_alerts": []},
            {"eval_time": "4m", "alertname": "CryptopredDown", "exp_alerts": exp("CryptopredDown", **labels)},
            {"eval_time": "15m", "alertname": "CryptopredHighLatencyP99", "exp_alerts": [
                {"exp_labels": {**rules["CryptopredHighLatencyP99"]["labels"], "route": slow["route"]},
                 "exp_annotations": {k: v.replace("{{ $labels.route }}", slow["route"]).replace("{{ $value }}", p99_ms)
                                     for k, v in rules["CryptopredHighLatencyP99"]["annotations"].items()}}]},
            {"eval_time": "15m", "alertname": "CryptopredHigh5xxRate", "exp_alerts": []}]}]}
    path = tmp_path / "alerts_test.yml"
    path.write_text(yaml.safe_dump(tests, sort_keys=False))
    p = subprocess.run([promtool, "test", "rules", str(path)], capture_output=True, text=True, timeout=60)
    assert p.returncode == 0, p.stdout + p.stderr


def test_compose_and_grafana_match_the_app():
    compose = yaml.safe_load((DEPLOY / "docker-compose.yml").read_text())
    services = compose["services"]
    assert set(services) == {"app", "scheduler", "prometheus", "grafana"}
    sched = services["scheduler"]
    assert sched["image"] == services["app"]["image"] and sched["command"] == ["cryptopred", "schedule"]
    assert sched["volumes"] == services["app"]["volumes"]  # one home: the scheduler's output is what the app serves
    assert sched["environment"]["CRYPTOPRED_APP_URL"] == "http://app:7860"
    grafana = services["grafana"]["environment"]
    assert grafana["GF_AUTH_ANONYMOUS_ENABLED"] == "false" and "GF_AUTH_ANONYMOUS_ORG_ROLE" not in grafana
    assert grafana["GF_SECURITY_ADMIN_PASSWORD"].startswith("${GRAFANA_ADMIN_PASSWORD:?")  # no default password
    assert (DEPLOY / services["app"]["build"]["context"] / services["app"]["build"]["dockerfile"]).resolve() == DOCKERFILE
    for svc in services.values():
        assert all(str(p).startswith("127.0.0.1:") for p in svc.get("ports", [])), svc.get("ports")
        for vol in svc.get("volumes", []):
            src = vol.split(":")[0]
            if src.startswith("."): assert (DEPLOY / src).exists(), src
    assert any(v.endswith(f":{dockerfile_env()['CRYPTOPRED_HOME']}") for v in services["app"]["volumes"])
    prom = yaml.safe_load((DEPLOY / "prometheus.yml").read_text())
    job = prom["scrape_configs"][0]
    assert (job["job_name"], job["metrics_path"], job["static_configs"][0]["targets"]) == ("cryptopred", "/metrics", ["app:7860"])

    known = {s.name for fam in ServeMetrics().registry.collect() for s in fam.samples} | \
            {f"{fam.name}{suffix}" for fam in ServeMetrics().registry.collect() for suffix in ("", "_total", "_bucket", "_sum",
                                                                                                 "_count", "_info")}
    dash = json.loads((DEPLOY / "grafana" / "dashboards" / "cryptopred.json").read_text())
    exprs = [t["expr"] for p in dash["panels"] for t in p["targets"]]
    used = {m for e in exprs for m in re.findall(r"\b(cryptopred_[a-z_]+)", e)}
    assert used and used <= known, used - known
    assert len({p["id"] for p in dash["panels"]}) == len(dash["panels"])


def test_stalled_clients_are_dropped_and_sigterm_flushes_every_answered_prediction(served_home, tmp_path):
    "Half-sent requests on raw sockets are closed after the read timeout while the app answers; SIGTERM loses no prediction."
    import socket

    from cryptopred.monitor.predictions import read_predictions
    port = free_port()
    env = {**os.environ, "CRYPTOPRED_HOME": str(served_home.home), "CRYPTOPRED_COINS": ",".join(served_home.coins),
           "CRYPTOPRED_SOURCE": "simulated", "MPLCONFIGDIR": str(tmp_path / "mpl")}
    exe = Path(sys.executable).parent / "cryptopred"
    proc = subprocess.Popen([str(exe), "serve", "--port", str(port), "--read-timeout", "1", "--log-level", "info"],
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    socks = []
    try:
        for line in proc.stdout:
            if "Uvicorn running on" in line: break
        url = f"http://127.0.0.1:{port}"
        halves = [b"GET /healthz HTTP/1.1\r\nHo", b"POST /api/v1/predict HTTP/1.1\r\nHost: x\r\nContent-Type: "
                  b"application/json\r\nContent-Length: 50\r\n\r\n{\"co", b""]
        for i in range(30):  # a few slow clients: a third stop mid-head, a third mid-body, a third say nothing
            c = socket.create_connection(("127.0.0.1", port), timeout=30)
            c.sendall(halves[i % 3]); socks.append(c)
        assert httpx.get(url + "/healthz", timeout=30).status_code == 200  # the app answers meanwhile
        for c in socks:  # each is closed by the server (EOF), long before the 30 s the client would wait
            try: assert c.recv(1024) == b""
            except ConnectionResetError: pass
        before = len(read_predictions(served_home))
        answered = sum(httpx.post(url + "/api/v1/predict", json={"coin": c}, timeout=30).status_code == 200
                       for c in ["bitcoin", "ethereum"] * 10)
        assert answered == 20
    finally:
        for c in socks: c.close()
        proc.send_signal(signal.SIGTERM)
        out, _ = proc.communicate(timeout=60)
    assert proc.returncode in (0, -signal.SIGTERM) and "Traceback" not in out, out[-3000:]
    assert len(read_predictions(served_home)) == before + answered  # every answered prediction is in the log


def test_the_wheel_ships_every_module_and_the_run_books(tmp_path):
    "What the image and .ci/wheel_check install: every subpackage, the run-books, the notebooks and the report inputs."
    import zipfile
    p = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "--no-index", "-q", str(REPO),
                        "-w", str(tmp_path)], capture_output=True, text=True, timeout=300)
    assert p.returncode == 0, p.stderr[-3000:]
    [wheel] = tmp_path.glob("cryptopred-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    modules = {str(f.relative_to(REPO)) for f in (REPO / "cryptopred").rglob("*.py")
               if "__pycache__" not in f.parts and not {"nbs", "reports", "deploy"} & set(f.relative_to(REPO).parts[1:2])}
    assert modules <= names, sorted(modules - names)[:10]
    books = {f"cryptopred/nbs/pipelines/{f.name}" for f in (REPO / "nbs" / "pipelines").glob("*.ipynb")}
    assert {"cryptopred/nbs/pipelines/train_forecaster.ipynb", "cryptopred/nbs/pipelines/report.ipynb"} <= books <= names
    assert {f"cryptopred/nbs/{f.name}" for f in (REPO / "nbs").glob("*.ipynb")} <= names  # the report's prose
    assert {"cryptopred/reports/pipeline.dot", "cryptopred/deploy/alert_rules.yml"} <= names
    assert not any(n.startswith("cryptopred/reports/technical_report") and n.endswith((".pdf", ".html")) for n in names)


def test_an_app_that_fails_to_start_is_reported_at_once_not_at_the_timeout():
    "An app whose start-up raises ends uvicorn's thread: `serve_in_thread` says it failed instead of waiting it out."
    import contextlib

    from fastapi import FastAPI

    from cryptopred.common import CryptopredError
    from cryptopred.serve.deploy import serve_in_thread

    @contextlib.asynccontextmanager
    async def broken(app):
        raise RuntimeError("no store here")
        yield

    with pytest.raises(CryptopredError, match="failed to start"):
        with serve_in_thread(app=FastAPI(lifespan=broken), timeout=600):
            pass
