"""llama_core: the async library behind `llama` — types, model registry, prompt format, engine, providers.

`llama_core.__version__` is the installed distribution's version (pyproject.toml holds the one
literal), read on first use: importing importlib.metadata costs ~25 ms that `llama --help` skips.

Non-goals: no plugin discovery, no dependency-injection container, no routers. Heavy packages
(torch, fairscale, transformers, faiss) are imported only inside the module that needs them.
"""

from __future__ import annotations

import functools

DISTRIBUTION = "llama-toolchain"


@functools.cache
def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(DISTRIBUTION)
    except PackageNotFoundError:  # a source tree on sys.path, never installed
        return "0+unknown"


def __getattr__(name: str) -> str:
    if name == "__version__":
        return _version()
    raise AttributeError(f"module 'llama_core' has no attribute {name!r}")
