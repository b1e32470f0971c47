"""`llama model run` on a tiny checkpoint in ~/.llama: the answer on stdout, timings on stderr."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from terminal import Terminal  # tests/cli is on sys.path (no __init__.py)

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

    greedy = ("--temperature", "0")
    done = llama("model", "run", "-m", MODEL, *greedy, "--max-tokens", "8", "--max-seq-len", "128", "--verbose", "Hello!")
    assert done.returncode == 0, done.stderr
    tok = Tokenizer.from_file(installed_tiny / "tokenizer.model")
    prompt_len = len(ChatFormat(tok).encode_dialog_prompt([UserMessage(content="Hello!")]))
    assert f"prompt eval count:    {prompt_len} token(s)" in done.stderr
    assert "eval count:           8 token(s)" in done.stderr
    assert "prompt eval rate:" in done.stderr and "\neval rate:" in done.stderr
    # piped stdin is the prompt; greedy is deterministic
    again = llama("model", "run", "-m", MODEL, *greedy, "--max-tokens", "8", "--max-seq-len", "128", stdin="Hello!")
    assert again.returncode == 0 and again.stdout == done.stdout and again.stderr == ""


def test_missing_model_is_one_line() -> None:
    done = llama("model", "run", "-m", MODEL, "hi")
    assert done.returncode == 1
    assert done.stderr.startswith("Error: No checkpoint for Llama3.2-1B-Instruct")
    assert "llama download --model-id Llama3.2-1B-Instruct" in done.stderr
    assert "Traceback" not in done.stderr and len(done.stderr.strip().splitlines()) == 1


def test_a_checkpoint_that_cannot_load_is_said_once(installed_tiny: Path) -> None:
    shard = installed_tiny / "consolidated.00.pth"
    shard.write_bytes(shard.read_bytes()[:1000])  # a download cut short
    done = llama("model", "run", "-m", MODEL, "hi")
    assert (done.returncode, done.stdout) == (1, "")
    assert done.stderr == (f"Error: Cannot read {shard}: PytorchStreamReader failed reading zip archive: "
                           "failed finding central directory. Re-download it.\n")


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


def chat(*args: str) -> Terminal:
    # LLAMA_CPU_KERNELS=0: the chat's keys do not depend on the decode kernels, whose first build takes a minute
    env = os.environ | {"OMP_NUM_THREADS": "1", "LLAMA_CPU_KERNELS": "0"}
    return Terminal("model", "run", "-m", MODEL, "--max-seq-len", "4096", "--verbose", *args, env=env)


def prompt_eval_count(shown: str) -> int:
    return int(shown.split("prompt eval count:")[1].split()[0])


def test_chat_commands_are_never_sent_to_the_model(installed_tiny: Path) -> None:
    from llama_core.prompt.chat_format import ChatFormat
    from llama_core.tokenizer import Tokenizer
    from llama_core.types import UserMessage

    term = chat()
    try:
        term.expect(">>> ")
        term.send("/?\n")
        assert term.expect(">>> ") == (
            "/?\nAvailable commands:\n"
            "  /set                    Set a sampling parameter: /set parameter temperature 0.7\n"
            "  /show                   Show the sampling parameters\n"
            "  /clear                  Clear the session context\n"
            "  /bye                    Leave the chat (also Ctrl-D)\n"
            "  /?                      List these commands (also /help)\n"
            "\nCtrl-C stops a reply; at the prompt, Ctrl-C or Ctrl-D leaves.\n>>> "
        )
        term.send("/help\n")
        assert "Available commands:" in term.expect(">>> ")
        # the model's recommended sampling (Meta's: nucleus, temperature 1.0, top_p 0.9) unless asked
        term.send("/show\n")
        assert term.expect(">>> ") == ("/show\nstrategy top_p, temperature 1.0, top_p 0.9, top_k 0, max_tokens 512, "
                                       "repetition_penalty 1.0, seed None\n>>> ")
        for typed, shown in [
            ("/set parameter temperature 9", "Error: Invalid temperature: expected `float` <= 2.0, got 9."),
            ("/set parameter warmth 1", "Error: Unknown parameter 'warmth'; one of: temperature, top_p, top_k, "
                                        "num_predict, max_tokens, repeat_penalty, repetition_penalty, seed."),
            ("/set parameter temperature 0", "Set parameter 'temperature' to '0'"),
            ("/set parameter num_predict 4", "Set parameter 'num_predict' to '4'"),
            ("/nope", "Unknown command '/nope'. Type /? for help."),
        ]:
            term.send(typed + "\n")
            assert term.expect(">>> ") == f"{typed}\n{shown}\n>>> "
        term.send("/show\n")
        assert "strategy greedy, temperature 0.0, top_p 0.9, top_k 0, max_tokens 4," in term.expect(">>> ")
        os.write(term.fd, b"caf\xe9\n")  # typed on a terminal in another locale: said, and the chat goes on
        assert term.expect(">>> ") == ("caf\ufffd\nError: that line is not UTF-8 text (byte 0xe9 at character 3); "
                                       "convert it to UTF-8 (iconv -t UTF-8).\n>>> ")
        term.send("Hello!\n")
        shown = term.expect(">>> ")
        tok = Tokenizer.from_file(installed_tiny / "tokenizer.model")
        assert prompt_eval_count(shown) == len(ChatFormat(tok).encode_dialog_prompt([UserMessage(content="Hello!")]))
        assert "eval count:           4 token(s)" in shown
        term.send("/bye\n")
        assert term.wait() == (0, "/bye\n")
    finally:
        term.close()


def test_ctrl_c_stops_a_reply_then_leaves_at_the_prompt(installed_tiny: Path) -> None:
    term = chat("--max-tokens", "4000", "--temperature", "0")
    try:
        term.expect(">>> ")
        term.send("Hello!\n")
        term.expect("Hello!\n")
        term.expect(" ")  # the reply has started (4,000 tokens: far from done)
        term.interrupt()
        stopped = term.expect(">>> ")
        assert stopped.endswith("^C\n>>> ") and "eval count" not in stopped  # no stats: the reply did not end
        # the chat goes on, with the stopped reply in its history
        term.send("/set parameter num_predict 3\n")
        term.expect(">>> ")
        term.send("Again\n")
        shown = term.expect(">>> ")
        assert "eval count:           3 token(s)" in shown and prompt_eval_count(shown) > 20
        term.send("/clear\n")
        assert term.expect(">>> ") == "/clear\nCleared session context.\n>>> "
        # at the prompt after a reply (whose worker threads the kernel may hand the SIGINT to): leave
        term.interrupt()
        assert term.wait() == (0, "^C\n")
    finally:
        term.close()


@pytest.mark.parametrize("attempt", range(3))
def test_ctrl_c_at_the_prompt_after_a_reply_leaves(installed_tiny: Path, attempt: int) -> None:
    # Once in five the kernel handed this SIGINT to a worker thread and input() kept waiting:
    # three fresh chats catch a regression most of the time.
    term = chat("--max-tokens", "3")
    try:
        term.expect(">>> ")
        term.send("Hello!\n")
        assert "eval count:           3 token(s)" in term.expect(">>> ")
        term.interrupt()
        status, shown = term.wait(timeout=30)
        assert (status, shown) == (0, "^C\n")
    finally:
        term.close()


def test_ctrl_d_leaves(installed_tiny: Path) -> None:
    term = chat()
    try:
        term.expect(">>> ")
        term.send("\x04")
        status, shown = term.wait()
        assert (status, shown.strip()) == (0, "")
    finally:
        term.close()


def test_ctrl_c_stops_a_one_prompt_run(installed_tiny: Path) -> None:
    term = chat("--max-tokens", "4000", "Hello!")
    try:
        # said on a terminal while it loads, then erased; never to a pipe (test_one_prompt_prints...)
        assert term.expect("\x1b[K") == f"Loading {MODEL} ...\r\x1b[K"
        term.expect(" ")  # the reply has started
        term.interrupt()
        status, shown = term.wait()
        assert status == 130 and "Traceback" not in shown and "eval count" not in shown
    finally:
        term.close()


def test_the_kernels_build_is_said_at_load(installed_tiny: Path, tmp_path: Path) -> None:
    from llama_core.engine import kernels
    from llama_core.engine.kernels.build import kernel_key

    # An empty kernel cache and a compiler that fails at once: the test is about what is said, and when.
    sources = [kernels.KERNEL_DIR / n for n in kernels.SOURCES]
    folder = tmp_path / "cache" / kernel_key(sources, [kernels.KERNEL_DIR / n for n in kernels.HEADERS], kernels.CFLAGS)
    done = subprocess.run(
        [sys.executable, "-m", "llama_cli", "model", "run", "-m", MODEL, "--max-tokens", "2", "--max-seq-len", "64", "hi"],
        capture_output=True, text=True, timeout=300,
        env=os.environ | {"OMP_NUM_THREADS": "1", "LLAMA_KERNELS_CACHE": str(tmp_path / "cache"), "CXX": "false"},
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    lines = done.stderr.splitlines()
    assert lines[0] == f"Compiling the CPU decode kernels once (about a minute); later starts reuse them from {folder}."
    assert lines[1].startswith("CPU decode kernels unavailable (")
