"""`make docs`: the library notebooks as a local HTML site in `_docs/`, without Quarto.

Each library notebook (one with `#| default_exp`) becomes `<module>.html` (the page names of `cryptopred/_modidx.py`):
its prose and examples, with every exported cell replaced by nbdev's `show_doc` of the names it defines (signature,
docments, docstring), rendered by nbconvert's `HTMLExporter`. Names `_modidx` knows that no cell defines are listed at
the end of their page. `index.html` groups the pages by the layer table of CONTRIBUTING.md.

    python tools/build_docs.py [--out _docs]
"""
from __future__ import annotations

import argparse
import ast
import html
import importlib
import inspect
import re
import shutil
import sys
import warnings
from pathlib import Path

import nbformat
from nbconvert import HTMLExporter
from nbdev.showdoc import BasicMarkdownRenderer, show_doc

ROOT = Path(__file__).resolve().parents[1]
NBS = ROOT / "nbs"
DIRECTIVE = re.compile(r"^\s*#\|\s*(\S+)(.*)$")

CSS = """body{font-family:system-ui,sans-serif;max-width:60rem;margin:2rem auto;padding:0 1rem;line-height:1.45;color:#222}
pre,code{font-family:ui-monospace,monospace;font-size:.9em}pre{background:#f6f8fa;padding:.6rem;overflow-x:auto}
.jp-InputPrompt,.jp-OutputPrompt,.prompt{display:none}nav{font-size:.9em;margin-bottom:1rem}
table{border-collapse:collapse}td,th{border:1px solid #ccc;padding:.2rem .5rem;vertical-align:top}
h3{border-top:1px solid #ddd;padding-top:.6rem}"""


def directives(cell) -> dict[str, str]:
    "The `#| name args` lines at the top of a code cell."
    out = {}
    for line in cell.source.splitlines():
        m = DIRECTIVE.match(line)
        if not m: break
        out[m[1]] = m[2].strip()
    return out


def strip_directives(src: str) -> str:
    lines = src.splitlines()
    while lines and DIRECTIVE.match(lines[0]): lines.pop(0)
    return "\n".join(lines).strip()


def defined_names(src: str) -> list[str]:
    "Top-level functions, classes and assignments of an exported cell, in order."
    try: tree = ast.parse(strip_directives(src))
    except SyntaxError: return []
    out = []
    for node in tree.body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)): out.append(node.name)
        elif isinstance(node, (ast.Assign, ast.AnnAssign)):
            for t in (node.targets if isinstance(node, ast.Assign) else [node.target]):
                if isinstance(t, ast.Name): out.append(t.id)
    return out


def library_notebooks() -> dict[str, Path]:
    "module (`data.store`) -> its notebook, for every notebook with `#| default_exp`."
    out = {}
    for p in sorted(NBS.glob("*.ipynb")):
        nb = nbformat.read(p, as_version=4)
        for c in nb.cells:
            if c.cell_type == "code" and "default_exp" in directives(c):
                out[directives(c)["default_exp"]] = p
                break
    return out


def _resolve(module, qualname: str):
    obj = module
    for part in qualname.split("."): obj = getattr(obj, part)
    return obj


class _Renderer(BasicMarkdownRenderer):
    "show_doc's Markdown without the link to the source on GitHub (no doc_host here; it also re-reads the config per name)."
    def _repr_markdown_(self): return f"### {self.nm}\n\n" + super(BasicMarkdownRenderer, self)._repr_markdown_()


def _plain_doc(obj, qualname: str) -> str:
    "Signature and docstring without docments (for what fastcore's docments cannot read, e.g. array defaults)."
    name = qualname.split(".")[-1]
    kind = "class" if inspect.isclass(obj) else "def"
    try: sig = str(inspect.signature(obj))
    except (TypeError, ValueError): sig = "(...)"
    doc = inspect.getdoc(obj) or ""
    return f"### {qualname}\n\n```python\n{kind} {name}{sig}\n```\n\n" + (f"*{doc}*" if doc else "")


def doc_markdown(module, qualname: str) -> str:
    "nbdev's `show_doc` of one name as Markdown (its heading carries an anchor the index links to)."
    anchor = qualname.lower()
    try:
        obj = _resolve(module, qualname)
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            md = show_doc(obj, renderer=_Renderer, name=qualname)._repr_markdown_()
        if any("docments unavailable" in str(w.message) for w in caught): md = _plain_doc(obj, qualname)
    except Exception:  # show_doc evaluates annotations (a lazily imported library's types): plain signature instead
        md = _plain_doc(_resolve(module, qualname), qualname)
    # the docstring is one italic line: a `*` inside it (reports/*.json) must not end the italics
    md = re.sub(r"^\*(.+)\*$", lambda m: "*" + m[1].replace("*", "\\*") + "*", md, flags=re.M)
    md = re.sub(r"^(#+ )(.+)$", lambda m: m[1] + m[2].replace("_", "\\_"), md, count=1, flags=re.M)  # no bold __init__
    return f'<a id="{html.escape(anchor)}"></a>\n\n{md}'


def page_notebook(module_name: str, path: Path, syms: dict) -> nbformat.NotebookNode:
    "The notebook as its page shows it: prose and examples; each exported cell replaced by the show_doc of its names."
    module = importlib.import_module(f"cryptopred.{module_name}")
    prefix = f"cryptopred.{module_name}."
    qualnames = [s[len(prefix):] for s in syms]
    done: set[str] = set()
    src = nbformat.read(path, as_version=4)
    cells = []
    for c in src.cells:
        if c.cell_type == "markdown": cells.append(nbformat.v4.new_markdown_cell(c.source)); continue
        if c.cell_type != "code": continue
        d = directives(c)
        if "default_exp" in d or "hide" in d: continue
        if "export" in d or "exports" in d:
            tops = defined_names(c.source)
            mine = [q for q in qualnames if q.split(".")[0] in tops and q not in done]
            mine.sort(key=lambda q: (tops.index(q.split(".")[0]), q.count(".")))
            if mine: cells.append(nbformat.v4.new_markdown_cell("\n\n".join(doc_markdown(module, q) for q in mine)))
            done.update(mine)
            if "exports" not in d: continue
        body = strip_directives(c.source)
        if body: cells.append(nbformat.v4.new_code_cell(body))
    rest = [q for q in qualnames if q not in done]
    if rest:
        cells.append(nbformat.v4.new_markdown_cell("## Other names\n\n" + "\n\n".join(doc_markdown(module, q) for q in rest)))
    nb = nbformat.v4.new_notebook(cells=cells)
    nb.metadata = {"kernelspec": {"name": "python3", "language": "python", "display_name": "Python 3"},
                   "language_info": {"name": "python"}}
    return nb


def wrap(title: str, body: str) -> str:
    return (f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8"><title>{html.escape(title)} · cryptopred</title>'
            f'<style>{CSS}</style></head><body><nav><a href="index.html">cryptopred docs</a></nav>\n{body}\n</body></html>\n')


def layer_rows(contributing: Path = ROOT / "CONTRIBUTING.md") -> list[dict]:
    "The rows of CONTRIBUTING.md's layer table: layer, notebook, module (top-level names), what."
    rows = []
    for line in contributing.read_text().splitlines():
        cols = [c.strip() for c in line.strip().strip("|").split("|")] if line.startswith("| ") else []
        if len(cols) == 4 and cols[0].isdigit():
            mods = [m.rstrip("/") for m in re.findall(r"`([^`]+)`", cols[2])]
            rows.append({"layer": int(cols[0]), "notebook": cols[1], "modules": mods, "what": cols[3]})
    return rows


def index_html(pages: dict[str, tuple[str, str]], rows: list[dict], exporter_md) -> str:
    "Pages grouped by the layer table; a page whose module is in no row is listed under 'Other'."
    placed, parts = set(), ["<h1>cryptopred: the library, layer by layer</h1>",
                            "<p>Generated by <code>make docs</code> from the notebooks in <code>nbs/</code>. A module "
                            "imports only from lower layers (CONTRIBUTING.md).</p>"]
    for r in rows:
        mine = [m for m in pages if m.split(".")[0] in r["modules"]]
        placed.update(mine)
        links = "".join(f'<li><a href="{m}.html">{html.escape(m)}</a> — {exporter_md(pages[m][1])}</li>' for m in mine)
        parts.append(f"<h2>Layer {r['layer']}: {exporter_md(r['notebook'])}</h2><p>{exporter_md(r['what'])}</p><ul>{links}</ul>")
    other = [m for m in pages if m not in placed]
    if other:
        parts.append("<h2>Other</h2><ul>" + "".join(f'<li><a href="{m}.html">{html.escape(m)}</a></li>' for m in other) + "</ul>")
    return wrap("index", "\n".join(parts))


def summary(nb_path: Path) -> str:
    "The notebook's one-line `>` summary."
    for c in nbformat.read(nb_path, as_version=4).cells:
        if c.cell_type == "markdown":
            m = re.search(r"^>\s*(.+)$", c.source, re.M)
            if m: return m[1].strip()
    return ""


def build_docs(out: Path = ROOT / "_docs") -> dict[str, Path]:
    "Render every library notebook and the index into `out` (replaced); {module: page}."
    sys.path.insert(0, str(ROOT))
    from cryptopred._modidx import d

    tmp = out.with_name(out.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    exporter = HTMLExporter(template_name="basic")
    notebooks, written, pages = library_notebooks(), {}, {}
    for mod, path in notebooks.items():
        syms = d["syms"].get(f"cryptopred.{mod}", {})
        body, _ = exporter.from_notebook_node(page_notebook(mod, path, syms))
        (tmp / f"{mod}.html").write_text(wrap(mod, body))
        pages[mod] = (path.name, summary(path))
        written[mod] = out / f"{mod}.html"
    md = lambda s: re.sub(r"`([^`]+)`", r"<code>\1</code>", html.escape(s))
    (tmp / "index.html").write_text(index_html(pages, layer_rows(), md))
    shutil.rmtree(out, ignore_errors=True)
    tmp.rename(out)
    return written


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=ROOT / "_docs", help="output folder (replaced)")
    a = ap.parse_args(argv)
    pages = build_docs(a.out)
    print(f"{len(pages)} pages and index.html in {a.out} (open {a.out / 'index.html'})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
