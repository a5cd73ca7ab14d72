__version__ = "0.1.0"

# The one hand-written line of the package (everything else is exported from nbs/), here so that it runs before any
# cryptopred module imports nbformat, whatever the order: jsonschema (under nbformat and papermill) imports
# `rfc3987_syntax` whenever it is installed (JupyterLab brings it), only to check the "iri" string format, and that
# module compiles some forty Lark grammars on import: about 3 s of CPU in every process that reads or writes a notebook
# (each CLI command, run-book kernel, notebook test). No notebook schema uses "iri", so cryptopred's processes go
# without it; jsonschema then skips that one format and validates everything else.
import sys as _sys

_sys.modules.setdefault("rfc3987_syntax", None)
