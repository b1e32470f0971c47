"""`python -m llama_rpc [CONFIG.toml | DIST --name NAME]`: MCP / JSON-RPC 2.0 on stdin and stdout.

With no argument it serves `local` on the demo model (which must be downloaded: `llama stack run
--stdio` downloads it first). Logs go to stderr (`--log-level`); stdout carries only protocol.
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path
from typing import Any

from llama_core.errors import InvalidRequestError, LlamaError


def stack_of(config: str | None, name: str | None, image_type: str | None) -> Any:
    """The (not yet started) Stack named by the arguments, as `llama stack run` names it."""
    from llama_core.config import find_run_config
    from llama_core.distributions import distribution
    from llama_core.stack import Stack

    if config is None:
        if name is not None:
            raise InvalidRequestError("--name needs a distribution: `python -m llama_rpc DIST --name NAME`.", field="name")
        return Stack.default()
    if config.endswith(".toml") or Path(config).is_file():
        return Stack.from_config(Path(config).expanduser())
    dist = distribution(config)  # unknown -> NotFoundError with suggestions
    if name is None:
        raise InvalidRequestError(f"Which build of {dist.distribution_id}? Add --name NAME.", field="name")
    return Stack.from_config(find_run_config(dist.distribution_id, name, image_type))


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
