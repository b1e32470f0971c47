"""llama_core: the async library behind `llama` — types, model registry, prompt format, engine, providers.

Non-goals: no plugin discovery, no dependency-injection container, no routers. Heavy packages
(torch, fairscale, transformers, faiss) are imported only inside the module that needs them.
"""

__version__ = "0.1.0"
