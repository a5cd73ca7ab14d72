"""The network guard (`tests/netguard`) holds in this process and in the processes the suite starts: a name other than
localhost is not resolved, a non-loopback address is not connected to, each attempt is logged; loopback works."""
from __future__ import annotations

import os
import socket
import subprocess
import sys

import pytest

PROBE = """
import socket, sys
for host in ("api.coingecko.com", "pro-api.coingecko.com"):
    try: socket.getaddrinfo(host, 443); sys.exit(f"resolved {host}")
    except socket.gaierror: pass
try: socket.create_connection(("203.0.113.7", 443), timeout=1); sys.exit("connected outside")
except OSError: pass
print("refused")
"""


def test_the_guard_refuses_the_internet_here_and_logs_it(tmp_path, monkeypatch):
    log = tmp_path / "refused.log"
    monkeypatch.setenv("NETGUARD_LOG", str(log))
    with pytest.raises(socket.gaierror, match="network guard: resolving 'api.coingecko.com'"):
        socket.getaddrinfo("api.coingecko.com", 443)
    with socket.socket() as s, pytest.raises(OSError, match="connecting to '203.0.113.7'"):
        s.connect(("203.0.113.7", 443))
    assert log.read_text().count("network guard") == 2
    with socket.socket() as srv:  # loopback is untouched
        srv.bind(("127.0.0.1", 0)); srv.listen()
        socket.create_connection(srv.getsockname(), timeout=5).close()
    assert socket.getaddrinfo("localhost", 80)


def test_processes_the_suite_starts_are_guarded_too(tmp_path):
    log = tmp_path / "child.log"
    p = subprocess.run([sys.executable, "-c", PROBE], env={**os.environ, "NETGUARD_LOG": str(log)},
                       capture_output=True, text=True, timeout=60)
    assert p.returncode == 0 and p.stdout.strip() == "refused", p.stderr
    assert log.read_text().count("network guard") == 3
