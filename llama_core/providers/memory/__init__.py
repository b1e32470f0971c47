"""Memory banks: the `meta-reference-faiss` provider and what it stands on (document text in documents.py)."""
