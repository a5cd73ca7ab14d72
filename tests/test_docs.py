"""`make docs`: the library notebooks as a local HTML site (tools/build_docs.py), every exported name on its page."""
from __future__ import annotations

import html
import importlib
import inspect
import re
import subprocess
import sys
from pathlib import Path

import pytest

from cryptopred._modidx import d

REPO = Path(__file__).resolve().parents[1]


def _text(page: Path) -> str:
    "A page's visible text (tags stripped, entities decoded)."
    return html.unescape(re.sub(r"<[^>]+>", "", page.read_text()))


@pytest.fixture(scope="module")
def site(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("docs") / "_docs"
    subprocess.run([sys.executable, str(REPO / "tools" / "build_docs.py"), "--out", str(out)], cwd=REPO, check=True,
                   capture_output=True, text=True, timeout=600)
    return out


def test_every_exported_name_has_its_entry_on_its_modules_page(site):
    missing = []
    for module, syms in d["syms"].items():
        page = site / f"{module.removeprefix('cryptopred.')}.html"
        assert page.is_file(), f"no page for {module}"
        raw, text = page.read_text(), _text(page)
        for sym, (doc_page, _) in syms.items():
            qual = sym.removeprefix(module + ".")
            anchor = doc_page.split("#", 1)[1]  # the anchor nbdev's own index uses
            if qual not in text or f'id="{anchor}"' not in raw: missing.append(sym)
    assert not missing, f"{len(missing)} names without their entry: {missing[:20]}"


def test_functions_show_their_signature_and_docstring(site):
    "show_doc's rendering: `def name(` and the docstring's first line, for the public functions of every module."
    missing = []
    for module in d["syms"]:
        mod = importlib.import_module(module)
        text = _text(site / f"{module.removeprefix('cryptopred.')}.html")
        for name in getattr(mod, "__all__", []):
            f = getattr(mod, name)
            if not inspect.isfunction(f) or f.__module__ != module: continue
            if f"def {name}(" not in text: missing.append(f"{module}.{name}: signature")
            doc = (inspect.getdoc(f) or "").splitlines()
            if doc and doc[0].split("`")[0][:40] not in text: missing.append(f"{module}.{name}: docstring")
    assert not missing, missing[:20]


def test_pages_keep_the_notebooks_prose(site):
    "Each page opens with its notebook's title and summary; prose cells survive."
    nb = (REPO / "nbs" / "10_registry.ipynb").read_text()
    assert "Model registry" in nb
    text = _text(site / "registry.html")
    assert "Model registry" in text and "Verified on load." in text


def test_index_follows_the_layers_and_links_every_page(site):
    index = (site / "index.html").read_text()
    links = re.findall(r'href="([^"#]+\.html)"', index)
    pages = {p.name for p in site.glob("*.html")} - {"index.html"}
    assert set(links) - {"index.html"} == pages
    assert all((site / link).is_file() for link in links)
    layers = [int(x) for x in re.findall(r"<h2>Layer (\d+):", index)]
    assert layers == sorted(layers) and set(layers) == set(range(8)), layers
    # a module sits under its layer: data.store (layer 1) before features (layer 2) before registry (layer 3)
    assert index.index('href="data.store.html"') < index.index('href="features.html"') < index.index('href="registry.html"')
    assert "<h2>Other</h2>" not in index  # every library notebook is in the layer table
