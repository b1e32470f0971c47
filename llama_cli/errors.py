"""The CLI's one mapping from the error tree to what a user sees: one line on stderr and an exit code."""

from __future__ import annotations

import sys

from llama_core.errors import InvalidRequestError, LlamaError, NotFoundError

# Exit codes: 2 is the usage-error code (argparse, cyclopts): the input names something that does
# not exist or is malformed. 1 is everything else that went wrong on purpose.
EXIT_USAGE = 2
EXIT_FAILURE = 1
EXIT_INTERRUPTED = 130
EXIT_BROKEN_PIPE = 141  # 128 + SIGPIPE: what a shell reports for `cat` when its reader left


def exit_code(error: BaseException) -> int:
    """The process exit status for `error`."""
    if isinstance(error, InvalidRequestError | NotFoundError):
        return EXIT_USAGE
    if isinstance(error, KeyboardInterrupt):
        return EXIT_INTERRUPTED
    return EXIT_FAILURE


def one_line(message: str) -> str:
    """`message` squeezed onto one line (a user-facing error never spans several)."""
    return " ".join(message.split())


def report(error: BaseException, debug: bool) -> int:
    """Print `error` for a user ("Error: ..." on stderr; the traceback too when `debug`); return the exit code."""
    if debug:
        import traceback

        traceback.print_exception(error, file=sys.stderr)
    if isinstance(error, KeyboardInterrupt):
        print("Interrupted.", file=sys.stderr)
    elif isinstance(error, LlamaError):
        print(f"Error: {one_line(error.message)}", file=sys.stderr)
    elif isinstance(error, OSError) and error.filename and error.strerror:  # a path we could not use: not a bug
        path = error.filename if isinstance(error.filename, str) else repr(error.filename)
        print(f"Error: {error.strerror}: {path}. Check that path (LLAMA_STACK_CONFIG_DIR moves ~/.llama).", file=sys.stderr)
    else:  # a bug: still one line, and the way to see more (already shown above with --debug)
        more = " (the traceback is above)" if debug else " (rerun with --debug for the traceback)"
        print(f"Error: unexpected {type(error).__name__}: {one_line(str(error))}{more}", file=sys.stderr)
    return exit_code(error)


def not_utf8(text: str) -> str | None:
    """Why typed or piped `text` cannot be used, or None ("is not UTF-8 text (byte 0xe9 at character 3); ...").

    Bytes that are not UTF-8 (a file in another encoding, a terminal in another locale) come from stdin
    and argv as lone surrogates, which no tokenizer takes and no TOML or JSON file can hold."""
    try:
        text.encode()
    except UnicodeEncodeError as e:
        code = ord(text[e.start])
        what = f"byte 0x{code - 0xDC00:02x}" if 0xDC80 <= code <= 0xDCFF else f"U+{code:04X}"  # surrogateescape's
        return f"is not UTF-8 text ({what} at character {e.start}); convert it to UTF-8 (iconv -t UTF-8)"
    return None
