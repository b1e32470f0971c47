"""`llama stack --help`, the list commands and configure's imports stay light (no torch, no numpy)."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

HEAVY = ("torch", "transformers", "faiss", "sentence_transformers", "fairscale", "numpy", "quart", "hypercorn")

PROBE = """
import contextlib, io, json, sys
from llama_cli.app import main
with contextlib.redirect_stdout(io.StringIO()):
    rc = main(sys.argv[1:])
print(json.dumps({"rc": rc, "heavy": sorted(m for m in %r if m in sys.modules)}))
""" % (HEAVY,)


@pytest.mark.parametrize(
    "argv",
    [["stack", "--help"], ["stack", "list-distributions"], ["stack", "list-apis"], ["stack", "list-providers", "memory"]],
    ids=" ".join,
)
def test_no_heavy_imports(argv):
    done = subprocess.run([sys.executable, "-c", PROBE, *argv], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == {"rc": 0, "heavy": []}


def test_configure_loads_provider_configs_without_the_engine(llama_home):
    probe = (
        "import sys; from llama_cli.app import main; "
        "rc = main(['stack', 'build', 'local', '--name', 'x', '--use-current-env', '--yes']); "
        f"print(rc, sorted(m for m in {HEAVY!r} if m in sys.modules))"
    )
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=60)
    assert done.stdout.splitlines()[-1] == "0 []", done.stdout + done.stderr
