"""The test suite's network guard: tests talk to 127.0.0.1 only (CoinGecko is a fake there), and this makes it so.

Imported by `tests/conftest.py` and, through `sitecustomize.py` in this folder (on PYTHONPATH for every Python process
the suite starts: papermill kernels, CLI subprocesses, `make nbtest`), by each child process. Resolving a name other
than localhost, or connecting to an address other than loopback, is refused with an `OSError` (what an offline
machine answers, so code under test takes its offline path) and written to `$NETGUARD_LOG`, which the suite checks
at the end: a test that tries the internet fails the run even when the code under test copes with the refusal."""
from __future__ import annotations

import ipaddress
import os
import socket

LOG_ENV = "NETGUARD_LOG"
_LOCAL_NAMES = {"", "localhost", "localhost.localdomain", "ip6-localhost", "ip6-loopback"}


def is_local(host) -> bool:
    "Whether `host` (a name or an address) is this machine: loopback, the unspecified address, or a local name."
    if host is None: return True
    h = host.decode() if isinstance(host, bytes) else str(host)
    if h.lower() in _LOCAL_NAMES: return True
    try: ip = ipaddress.ip_address(h.split("%")[0])
    except ValueError: return False
    return ip.is_loopback or ip.is_unspecified


def _refuse(what: str, host, error=OSError):
    msg = f"network guard: {what} {host!r} refused (the test suite stays on loopback)"
    if path := os.environ.get(LOG_ENV):
        with open(path, "a") as f: f.write(f"pid {os.getpid()}: {msg}\n")
    raise error(msg)


_getaddrinfo, _connect, _connect_ex = socket.getaddrinfo, socket.socket.connect, socket.socket.connect_ex


def _guarded_getaddrinfo(host, *args, **kw):
    if not is_local(host): _refuse("resolving", host, socket.gaierror)
    return _getaddrinfo(host, *args, **kw)


def _checked(sock: socket.socket, address) -> None:
    if sock.family in (socket.AF_INET, socket.AF_INET6) and not is_local(address[0]): _refuse("connecting to", address[0])


def _guarded_connect(self, address):
    _checked(self, address)
    return _connect(self, address)


def _guarded_connect_ex(self, address):
    _checked(self, address)
    return _connect_ex(self, address)


def install() -> None:
    "Guard this process (idempotent)."
    socket.getaddrinfo = _guarded_getaddrinfo
    socket.socket.connect, socket.socket.connect_ex = _guarded_connect, _guarded_connect_ex


install()
