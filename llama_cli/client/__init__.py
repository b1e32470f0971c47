"""Clients of a running stack, as the original's bundled ones: `python -m llama_cli.client.<api> HOST PORT`.

They speak HTTP through llama_core.client.StackClient and print; nothing else.
"""
