"""The installed `cryptopred` console script, run as a user runs it."""
import subprocess
import sys
from pathlib import Path

from cryptopred.cli import COMMANDS


def cli(*args, env=None):
    exe = Path(sys.executable).parent / "cryptopred"  # the console script pip installed
    return subprocess.run([str(exe), *args], capture_output=True, text=True, env=env,
                          timeout=120)


def test_help_lists_every_command():
    p = cli("--help")
    assert p.returncode == 0
    for name in COMMANDS:
        assert name in p.stdout


def test_unknown_command_is_a_usage_error():
    p = cli("frobnicate")
    assert p.returncode == 2 and "unknown command 'frobnicate'" in p.stderr


def test_config_masks_secrets_and_reports_bad_values(monkeypatch):
    import os
    env = {**os.environ, "COINGECKO_DEMO_API_KEY": "CG-very-secret", "CRYPTOPRED_COINS": "bitcoin,solana"}
    p = cli("config", env=env)
    assert p.returncode == 0, p.stderr
    assert "CG-very-secret" not in p.stdout + p.stderr
    assert "bitcoin,solana" in p.stdout
    p = cli("config", env={**env, "CRYPTOPRED_PORT": "99999"})
    assert p.returncode == 1
    assert "CRYPTOPRED_PORT='99999' is invalid" in p.stderr and "Traceback" not in p.stderr
