"""The meta-reference agentic system: provider.py (the API), turn.py (the loop), store.py (SQLite),
tools.py / search.py / sandbox.py (builtin tools), rag.py (retrieval), shields.py."""
