"""`llama model run` on a tiny checkpoint in ~/.llama: the answer on stdout, timings on stderr."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("torch")

MODEL = "Llama3.2-1B-Instruct"


@pytest.fixture
def installed_tiny(llama_home: Path) -> Path:
    sys.path.insert(0, str(Path(__file__).parents[1]))
    from engine.tiny_checkpoint import write_tiny_checkpoint

    return write_tiny_checkpoint(llama_home / "checkpoints" / MODEL)


def llama(*args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "llama_cli", *args], input=stdin, capture_output=True, text=True,
        env=os.environ | {"OMP_NUM_THREADS": "1"}, timeout=300,
    )


def test_one_prompt_prints_the_answer_and_verbose_stats(installed_tiny: Path) -> None:
    from llama_core.prompt.chat_format import ChatFormat
    from llama_core.tokenizer import Tokenizer
    from llama_core.types import UserMessage

    done = llama("model", "run", "-m", MODEL, "--max-tokens", "8", "--max-seq-len", "128", "--verbose", "Hello!")
    assert done.returncode == 0, done.stderr
    tok = Tokenizer.from_file(installed_tiny / "tokenizer.model")
    prompt_len = len(ChatFormat(tok).encode_dialog_prompt([UserMessage(content="Hello!")]))
    assert f"prompt eval count:    {prompt_len} token(s)" in done.stderr
    assert "eval count:           8 token(s)" in done.stderr
    assert "prompt eval rate:" in done.stderr and "\neval rate:" in done.stderr
    # piped stdin is the prompt; greedy is deterministic
    again = llama("model", "run", "-m", MODEL, "--max-tokens", "8", "--max-seq-len", "128", stdin="Hello!")
    assert again.returncode == 0 and again.stdout == done.stdout and again.stderr == ""


def test_missing_model_is_one_line() -> None:
    done = llama("model", "run", "-m", MODEL, "hi")
    assert done.returncode == 1
    assert done.stderr.startswith("Error: No checkpoint for Llama3.2-1B-Instruct")
    assert "llama download --model-id Llama3.2-1B-Instruct" in done.stderr
    assert "Traceback" not in done.stderr and len(done.stderr.strip().splitlines()) == 1


@pytest.mark.parametrize(
    ("args", "line"),
    [
        pytest.param(["-m", "Nope-1B"], "Error: Unknown model 'Nope-1B'. See `llama model list --show-all`.", id="unknown"),
        pytest.param(["-m", "Llama3.2-1B-Instruc"], "Error: Unknown model 'Llama3.2-1B-Instruc'. Did you mean: Llama3.2-1B-Instruct, "
                     "Llama3.2-3B-Instruct, Llama3.1-8B-Instruct? See `llama model list --show-all`.", id="nearest"),
        pytest.param(["-m", MODEL, "--max-seq-len", "0"], "Error: max_seq_len must be at least 1, got 0", id="engine-limit"),
    ],
)
def test_a_model_or_size_the_engine_cannot_run_is_a_usage_error(args: list[str], line: str) -> None:
    done = llama("model", "run", *args, "hi")
    assert (done.returncode, done.stderr) == (2, line + "\n")


def test_debug_shows_the_traceback_once_and_does_not_ask_for_it() -> None:
    from llama_cli.errors import report

    class Odd(Exception):
        pass

    import contextlib
    import io

    try:
        raise Odd("boom")
    except Odd as e:
        error = e
    err = io.StringIO()
    with contextlib.redirect_stderr(err):
        assert report(error, debug=True) == 1
    assert err.getvalue().count("Traceback") == 1
    assert err.getvalue().endswith("Error: unexpected Odd: boom (the traceback is above)\n")
