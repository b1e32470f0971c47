"""`llama --help` and `llama model list` start without importing the heavy stack."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

HEAVY = ("torch", "transformers", "faiss", "sentence_transformers", "fairscale", "tiktoken", "numpy", "llama_models")
# Not heavy, but ~0.1 s together that the hot path does not need (the wire types, markdown help).
AVOIDABLE = ("msgspec", "llama_core.types", "markdown_it", "rich.markdown")

# Run the command in a fresh interpreter, then report which heavy packages it pulled in.
PROBE = """
import contextlib, io, json, sys
from llama_cli.app import main
with contextlib.redirect_stdout(io.StringIO()):
    rc = main(sys.argv[1:])
print(json.dumps({"rc": rc, "heavy": sorted(m for m in %r if m in sys.modules)}))
""" % (HEAVY + AVOIDABLE,)


@pytest.mark.parametrize("argv", [["--help"], ["model", "list"], ["model", "describe", "-m", "Llama3.2-1B"]], ids=" ".join)
def test_no_heavy_imports(argv):
    done = subprocess.run([sys.executable, "-c", PROBE, *argv], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == {"rc": 0, "heavy": []}
