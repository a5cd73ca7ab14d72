"""`make lab`: the cryptopred kernel is registered in the .venv and JupyterLab serves it.

Starts the real target (`make lab ARGS=...`) on a free loopback port with a token, lists the kernelspecs through
the server's REST API, starts the cryptopred kernel and runs `import cryptopred` in it over the kernel's websocket.
"""
import json
import os
import signal
import socket
import subprocess
import time
import urllib.request
import uuid
from pathlib import Path

import pytest
from tornado import ioloop, websocket

ROOT = Path(__file__).resolve().parents[1]


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _get(url, token, method="GET", body=None):
    req = urllib.request.Request(url, method=method, data=None if body is None else json.dumps(body).encode(),
                                 headers={"Authorization": f"token {token}", "Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=10) as r:
        raw = r.read()
        return json.loads(raw) if raw else None


async def _execute(ws_url, token, code):
    conn = await websocket.websocket_connect(
        websocket.httpclient.HTTPRequest(ws_url, headers={"Authorization": f"token {token}"}))
    msg_id = uuid.uuid4().hex
    conn.write_message(json.dumps({
        "header": {"msg_id": msg_id, "username": "test", "session": uuid.uuid4().hex, "msg_type": "execute_request",
                   "version": "5.3"},
        "parent_header": {}, "metadata": {}, "channel": "shell",
        "content": {"code": code, "silent": False, "store_history": False, "user_expressions": {},
                    "allow_stdin": False, "stop_on_error": True}}))
    streams, reply, idle = [], None, False
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        raw = await conn.read_message()
        if raw is None:
            break
        msg = json.loads(raw)
        if msg.get("parent_header", {}).get("msg_id") != msg_id:
            continue
        if msg["msg_type"] == "stream":
            streams.append(msg["content"]["text"])
        if msg["channel"] == "shell" and msg["msg_type"] == "execute_reply": reply = msg["content"]
        if msg["channel"] == "iopub" and msg["msg_type"] == "status" and msg["content"]["execution_state"] == "idle":
            idle = True  # the kernel's outputs all precede its idle status (the reply may come before or after)
        if reply is not None and idle:
            conn.close()
            return reply, "".join(streams)
    conn.close()
    raise AssertionError(f"no execute_reply and idle status from the kernel (reply {reply}, idle {idle})")


def test_make_lab_serves_the_cryptopred_kernel(tmp_path):
    port, token = _free_port(), uuid.uuid4().hex
    env = {**os.environ, "JUPYTER_RUNTIME_DIR": str(tmp_path / "runtime"), "JUPYTER_CONFIG_DIR": str(tmp_path / "cfg"),
           "CRYPTOPRED_HOME": str(tmp_path / "home")}
    args = (f"--no-browser --ip=127.0.0.1 --port={port} --ServerApp.port_retries=0 "
            f"--IdentityProvider.token={token}" + (" --allow-root" if os.geteuid() == 0 else ""))
    proc = subprocess.Popen(["make", "-s", "-C", str(ROOT), "lab", f"ARGS={args}"], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                specs = _get(f"{base}/api/kernelspecs", token)
                break
            except OSError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    out = proc.stdout.read().decode(errors="replace") if proc.poll() is not None else ""
                    pytest.fail(f"jupyter lab did not come up on {base}:\n{out}")
                time.sleep(0.3)
        assert "cryptopred" in specs["kernelspecs"], specs["kernelspecs"].keys()
        spec = specs["kernelspecs"]["cryptopred"]["spec"]
        # the kernel lives in the .venv's own share/jupyter and runs the .venv's python
        assert Path(spec["argv"][0]).resolve().parent == (ROOT / ".venv" / "bin").resolve() or \
            str(ROOT / ".venv") in spec["argv"][0], spec["argv"]
        assert (ROOT / ".venv" / "share" / "jupyter" / "kernels" / "cryptopred" / "kernel.json").exists()
        kernel = _get(f"{base}/api/kernels", token, "POST", {"name": "cryptopred"})
        try:
            ws = f"ws://127.0.0.1:{port}/api/kernels/{kernel['id']}/channels"
            reply, out = ioloop.IOLoop.current().run_sync(lambda: _execute(
                ws, token, "import cryptopred, pathlib; print(pathlib.Path(cryptopred.__file__).parent.parent)"),
                timeout=90)
            assert reply["status"] == "ok", reply
            # the editable package of this checkout, not some installed copy
            assert Path(out.strip()).resolve() == ROOT.resolve(), out
        finally:
            _get(f"{base}/api/kernels/{kernel['id']}", token, "DELETE")
        assert kernel["id"] not in {k["id"] for k in _get(f"{base}/api/kernels", token)}
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
