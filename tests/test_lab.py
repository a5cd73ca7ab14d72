"""`make lab`: the kernelspec it installs runs the project's Python, and a kernel started from it imports the package."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from jupyter_client import KernelManager
from jupyter_client.kernelspec import KernelSpecManager

import cryptopred

REPO = Path(__file__).resolve().parents[1]


def _make_lab_commands() -> list[str]:
    "The commands `make lab` runs (make's dry run: nothing is executed)."
    out = subprocess.run(["make", "-n", "lab"], cwd=REPO, capture_output=True, text=True, check=True).stdout
    return [line for line in out.splitlines() if "ipykernel install" in line or "jupyter lab" in line]


def test_make_lab_installs_the_kernel_into_the_venv_and_opens_nbs():
    cmds = _make_lab_commands()
    assert len(cmds) == 2, cmds
    install, lab = cmds
    assert install.startswith(".venv/bin/python -m ipykernel install") and "--sys-prefix" in install
    assert "--name cryptopred" in install and '"cryptopred (.venv)"' in install
    assert lab.startswith(".venv/bin/jupyter lab") and "--notebook-dir=nbs" in lab


def test_kernelspec_of_make_lab_runs_the_package(tmp_path):
    # the install command of `make lab`, with --prefix to a temporary folder instead of --sys-prefix
    subprocess.run([sys.executable, "-m", "ipykernel", "install", "--prefix", str(tmp_path), "--name", "cryptopred",
                    "--display-name", "cryptopred (.venv)"], check=True, capture_output=True, text=True)
    data = tmp_path / "share" / "jupyter"
    env = {**os.environ, "JUPYTER_PATH": str(data)}
    listed = json.loads(subprocess.run([sys.executable, "-m", "jupyter", "kernelspec", "list", "--json"], env=env,
                                       check=True, capture_output=True, text=True).stdout)["kernelspecs"]
    assert "cryptopred" in listed, sorted(listed)
    spec = listed["cryptopred"]
    assert Path(spec["resource_dir"]).resolve() == (data / "kernels" / "cryptopred").resolve()
    assert spec["spec"]["display_name"] == "cryptopred (.venv)"
    assert Path(spec["spec"]["argv"][0]).resolve() == Path(sys.executable).resolve()  # the venv's own Python

    km = KernelManager(kernel_name="cryptopred", kernel_spec_manager=KernelSpecManager(kernel_dirs=[str(data / "kernels")]))
    km.start_kernel(cwd=str(tmp_path))
    try:
        kc = km.client()
        kc.start_channels()
        kc.wait_for_ready(timeout=60)
        out, errors = [], []
        def hook(msg):
            if msg["msg_type"] == "stream": out.append(msg["content"]["text"])
            elif msg["msg_type"] == "error": errors.append(msg["content"]["evalue"])
        reply = kc.execute_interactive("import cryptopred, sys; print(cryptopred.__version__); print(sys.executable)",
                                       timeout=60, output_hook=hook)
        kc.stop_channels()
    finally:
        km.shutdown_kernel(now=True)
    assert reply["content"]["status"] == "ok", errors
    version, exe = "".join(out).split()
    assert version == cryptopred.__version__
    assert Path(exe).resolve() == Path(sys.executable).resolve()
