"""The `llama` command line: a thin cyclopts shell over llama_core.

Each command parses its arguments, calls one llama_core function and prints the result with rich.
Errors from llama_core become one line on stderr (see llama_cli.errors).

Non-goals: no business logic here, no interactive prompts where a flag will do, and nothing heavy
(torch, transformers) imported before a command that needs it runs.
"""
