"""The installed `cryptopred` console script, run as a user runs it."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path


def cli(*args, env: dict | None = None, timeout: float = 120) -> subprocess.CompletedProcess:
    "Run the installed `cryptopred` console script."
    exe = Path(sys.executable).parent / "cryptopred"
    return subprocess.run([str(exe), *args], capture_output=True, text=True, env=env, timeout=timeout)


def cli_env(home: Path, **extra: str) -> dict:
    "The current environment (already cleaned by conftest) with a home and extra variables."
    return {**os.environ, "CRYPTOPRED_HOME": str(home), "PYTHONWARNINGS": "ignore", **extra}
