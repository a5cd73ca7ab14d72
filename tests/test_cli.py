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


def test_commands_load_without_the_iri_grammars_and_notebooks_still_validate():
    """A module that reads notebooks (the report's prose, imported first) and every CLI process (the commands) bring
    nbformat and jsonschema: jsonschema's optional `rfc3987_syntax` (about 3 s of Lark grammars, for a string format
    no notebook uses) stays out, whatever the import order; nbformat still validates a notebook and rejects a broken
    one."""
    code = ("import sys, cryptopred.report.prose, cryptopred.commands, nbformat\n"
            "nb = nbformat.v4.new_notebook(); nbformat.validate(nb)\n"
            "nb.cells.append({'cell_type': 'code'})\n"
            "try: nbformat.validate(nb); print('accepted a broken cell')\n"
            "except nbformat.ValidationError: print('rejected')\n"
            "print(sys.modules.get('rfc3987_syntax', 'absent'))")
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert p.returncode == 0, p.stderr
    assert p.stdout.split() == ["rejected", "None"], p.stdout
