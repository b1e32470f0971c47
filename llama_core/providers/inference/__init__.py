"""Inference providers: meta_reference (local engine); remote adapters join here."""
