"""The package's layering: the import-linter contracts in pyproject.toml hold, and no module hides an import of the
project inside a function (the way an import cycle used to be dodged)."""
from __future__ import annotations

import ast
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
PACKAGE = REPO / "cryptopred"


def function_level_project_imports(source: str, filename: str = "<string>") -> list[str]:
    "`file:line import` for every import of `cryptopred` (absolute or relative) inside a function or method body."
    found = []

    def visit(node: ast.AST, in_function: bool) -> None:
        for child in ast.iter_child_nodes(node):
            inside = in_function or isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda)
            if in_function and isinstance(child, ast.ImportFrom) and (
                    child.level > 0 or (child.module or "").split(".")[0] == "cryptopred"):
                found.append(f"{filename}:{child.lineno} from {'.' * child.level}{child.module or ''} import ...")
            if in_function and isinstance(child, ast.Import):
                found.extend(f"{filename}:{child.lineno} import {a.name}" for a in child.names
                             if a.name.split(".")[0] == "cryptopred")
            visit(child, inside)

    visit(ast.parse(source, filename), False)
    return found


def test_the_scanner_finds_imports_hidden_in_functions():
    src = ("from cryptopred.common import utcnow\nimport json\n"
           "def f():\n    from cryptopred.registry import ModelRegistry\n    import json\n    return 1\n"
           "class A:\n    def m(self):\n        from . import config\n        import cryptopred.serve\n"
           "        def inner():\n            from .report import cite\n")
    assert function_level_project_imports(src, "x.py") == [
        "x.py:4 from cryptopred.registry import ...", "x.py:9 from . import ...", "x.py:10 import cryptopred.serve",
        "x.py:12 from .report import ..."]


def test_no_module_imports_the_project_inside_a_function():
    files = sorted(p for p in PACKAGE.rglob("*.py") if p.name != "_modidx.py")
    assert len(files) > 30, "the package's modules were not found"
    hidden = [hit for p in files for hit in function_level_project_imports(p.read_text(), str(p.relative_to(REPO)))]
    assert hidden == [], "imports inside functions (import at the module top; a cycle means a layer is wrong):\n" + \
        "\n".join(hidden)


def test_the_import_linter_contracts_hold():
    exe = Path(sys.executable).parent / "lint-imports"
    if not exe.exists() and not shutil.which("lint-imports"):
        pytest.fail("lint-imports is missing: import-linter is a dev dependency (pip install -e '.[dev]')")
    r = subprocess.run([str(exe) if exe.exists() else "lint-imports", "--no-cache"], cwd=REPO, capture_output=True,
                       text=True, timeout=300)
    assert r.returncode == 0, r.stdout + r.stderr
    assert " 0 broken" in r.stdout and "broken." in r.stdout, r.stdout
