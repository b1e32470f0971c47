"""The meta-reference safety provider and its shields, one module per shield family (see shields.py)."""
