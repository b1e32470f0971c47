"""Memory banks: the `meta-reference-faiss` provider (provider.py), one bank's storage (bank.py),
its faiss index (vectors.py), chunking and keyword queries (chunking.py), document text (documents.py)."""
