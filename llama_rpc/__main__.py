"""`python -m llama_rpc [CONFIG.toml | DIST --name NAME]`: MCP / JSON-RPC 2.0 on stdin and stdout.

With no argument it serves `local` on the demo model (which must be downloaded: `llama stack run
--stdio` downloads it first). Logs go to stderr (`--log-level`); stdout carries only protocol.
"""

from __future__ import annotations

import argparse
import logging
import sys
from typing import Any

from llama_core.errors import LlamaError


def stack_of(config: str | None, name: str | None, image_type: str | None) -> Any:
    """The (not yet started) Stack named by the arguments, as `llama stack run` names it."""
    from llama_core.config import resolve_run_config
    from llama_core.stack import Stack

    path = resolve_run_config(config, name, image_type)
    return Stack.default() if path is None else Stack.from_config(path)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m llama_rpc", description=__doc__.splitlines()[0])
    parser.add_argument("config", nargs="?", help="a run config .toml, or a distribution id with --name")
    parser.add_argument("--name", "-n", help="the build to run (with a distribution id)")
    parser.add_argument("--image-type", choices=["venv", "conda", "container"])
    parser.add_argument("--log-level", default="WARNING", help="stderr log level (default WARNING)")
    args = parser.parse_args(argv)
    logging.basicConfig(stream=sys.stderr, level=args.log_level.upper(), format="%(levelname)s %(name)s: %(message)s")

    import anyio

    from llama_rpc.mcp import serve_stdio

    try:
        anyio.run(serve_stdio, stack_of(args.config, args.name, args.image_type))
    except LlamaError as e:
        print(f"Error: {e.message}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
