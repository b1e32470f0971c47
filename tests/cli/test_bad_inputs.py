"""Bad input and a broken environment through the real CLI: one line that says what happened and what
to do, never 'unexpected' (which is kept for our own bugs) and never a traceback."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest


def llama(*args: str, home: Path) -> subprocess.CompletedProcess[str]:
    env = os.environ | {"LLAMA_STACK_CONFIG_DIR": str(home), "LLAMA_META_URL": "", "OMP_NUM_THREADS": "1"}
    return subprocess.run([sys.executable, "-m", "llama_cli", *args], capture_output=True, text=True, env=env, timeout=120)


def test_a_home_that_is_a_file_is_one_line(tmp_path: Path) -> None:
    home = tmp_path / "not-a-folder"
    home.write_text("")
    done = llama("stack", "build", "local", "--name", "x", "--use-current-env", "--yes", home=home)
    assert done.returncode == 1
    assert done.stderr == (f"Error: Not a directory: {home}/builds/local/venv. "
                           "Check that path (LLAMA_STACK_CONFIG_DIR moves ~/.llama).\n")


@pytest.mark.parametrize("url", ["http://[::1/*?Policy=x", "https://cdn.example:99999/*?Policy=x"], ids=["ipv6", "port"])
def test_a_meta_url_that_is_no_url_is_a_usage_error(tmp_path: Path, url: str) -> None:
    env_url = os.environ | {"LLAMA_STACK_CONFIG_DIR": str(tmp_path), "LLAMA_META_URL": url}
    done = subprocess.run([sys.executable, "-m", "llama_cli", "download", "-m", "Llama3.2-1B"],
                          capture_output=True, text=True, env=env_url, timeout=60)  # fmt: skip
    assert (done.returncode, done.stderr) == (2, "Error: The --meta-url must be the https:// link from Meta's e-mail.\n")
    assert not (tmp_path / "checkpoints").exists()


@pytest.mark.parametrize(
    ("args", "line"),
    [
        (["--max-tokens", "-1"], "Error: Invalid --max-tokens: expected `int` >= 0, got -1.\n"),
        (["--temperature", "3"], "Error: Invalid --temperature: expected `float` <= 2.0, got 3.0.\n"),
        (["--top-p", "0"], "Error: Invalid --top-p: expected `float` > 0.0, got 0.0.\n"),
    ],
)
def test_model_run_sampling_out_of_range_is_a_usage_error(tmp_path: Path, args: list[str], line: str) -> None:
    done = llama("model", "run", "-m", "Llama3.2-1B-Instruct", *args, "hi", home=tmp_path)
    assert (done.returncode, done.stderr) == (2, line)


@pytest.mark.parametrize("host", ["nope.example.invalid", "300.1.1.1"])
def test_stack_run_on_a_host_that_does_not_resolve_is_a_usage_error(tmp_path: Path, host: str) -> None:
    pytest.importorskip("torch")
    sys.path.insert(0, str(Path(__file__).parents[1]))
    from engine.tiny_checkpoint import write_tiny_run_config

    config = write_tiny_run_config(tmp_path, "Llama3.2-1B-Instruct", max_seq_len=64, max_batch_size=1)
    done = llama("stack", "run", str(config), "--host", host, "--port", "5099", home=tmp_path / "home")
    assert done.returncode == 2
    import socket

    with pytest.raises(socket.gaierror) as resolver:  # its words are the C library's
        socket.getaddrinfo(host, 5099)
    assert done.stderr == (f"Error: Cannot bind to {host}: {resolver.value.strerror}. Give --host an address of this "
                           "machine (e.g. 127.0.0.1, or :: for all).\n")
    assert "Listening" not in done.stdout


def test_a_reader_that_leaves_early_stops_the_answer_quietly(tmp_path: Path) -> None:
    pytest.importorskip("torch")
    sys.path.insert(0, str(Path(__file__).parents[1]))
    from engine.tiny_checkpoint import write_tiny_checkpoint

    write_tiny_checkpoint(tmp_path / "checkpoints" / "Llama3.2-1B-Instruct")
    env = os.environ | {"LLAMA_STACK_CONFIG_DIR": str(tmp_path), "OMP_NUM_THREADS": "1", "LLAMA_CPU_KERNELS": "0"}
    argv = [sys.executable, "-m", "llama_cli", "model", "run", "-m", "Llama3.2-1B-Instruct", "--max-tokens", "400", "hi"]
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)
    assert proc.stdout is not None and proc.stderr is not None
    proc.stdout.read(1)  # `| head -c 1`: one byte, then the pipe closes
    proc.stdout.close()
    with proc.stderr:
        assert (proc.wait(timeout=120), proc.stderr.read()) == (141, b"")


@pytest.mark.parametrize("host", ["127.0.0.1", "nope.example.invalid"], ids=["busy-port", "unresolvable-host"])
def test_stack_run_binds_before_it_fetches_the_demo_model(tmp_path: Path, host: str) -> None:
    # A bare `llama stack run` on an empty ~/.llama serves the demo model, which it would download
    # first: a port it cannot have is said before that, and nothing is fetched.
    import socket

    with socket.create_server(("127.0.0.1", 0)) as taken:
        port = taken.getsockname()[1]
        done = llama("stack", "run", "--host", host, "--port", str(port), home=tmp_path)
    if host == "127.0.0.1":
        assert (done.returncode, done.stderr) == (1, f"Error: 127.0.0.1:{port} is already in use by another program; pick another --port.\n")
    else:
        assert done.returncode == 2 and done.stderr.startswith(f"Error: Cannot bind to {host}: ")
    assert done.stdout == ""
    assert not (tmp_path / "checkpoints").exists()


def test_a_prompt_that_is_not_utf8_is_a_usage_error(tmp_path: Path) -> None:
    # Piped from a file in another encoding: Python hands such bytes on as lone surrogates, which
    # the tokenizer refused as "unexpected UnicodeEncodeError".
    env = os.environ | {"LLAMA_STACK_CONFIG_DIR": str(tmp_path)}
    argv = [sys.executable, "-m", "llama_cli", "model", "run", "-m", "Llama3.2-1B-Instruct"]
    done = subprocess.run(argv, input=b"caf\xe9 au lait", capture_output=True, env=env, timeout=60)
    assert (done.returncode, done.stdout, done.stderr.decode()) == (
        2, b"", "Error: The prompt is not UTF-8 text (byte 0xe9 at character 3); convert it to UTF-8 (iconv -t UTF-8).\n"
    )


def test_configure_refuses_an_answer_that_is_not_utf8_and_asks_again(tmp_path: Path) -> None:
    # No run config can hold such an answer: it failed as "unexpected UnicodeEncodeError" when written.
    assert llama("stack", "build", "local", "--name", "u", "--use-current-env", "--yes", home=tmp_path).returncode == 0
    env = os.environ | {"LLAMA_STACK_CONFIG_DIR": str(tmp_path)}
    argv = [sys.executable, "-m", "llama_cli", "stack", "configure", "local", "--name", "u"]
    answers = b"\n" * 11 + b"k\xff\nkey\n" + b"\n" * 10  # the wolfram_api_key question: refused, then asked again
    done = subprocess.run(argv, input=answers, capture_output=True, env=env, timeout=120)
    out = done.stdout.decode()
    assert done.returncode == 0, done.stderr
    assert ("Enter value for wolfram_api_key (optional): Validation error: the answer is not UTF-8 text (byte 0xff at "
            "character 1); convert it to UTF-8 (iconv -t UTF-8).\nEnter value for wolfram_api_key (optional): ") in out
    assert 'wolfram_api_key = "key"' in (tmp_path / "builds" / "local" / "venv" / "u.toml").read_text()
    done = subprocess.run([*argv, "--yes", "--set", "agentic_system.wolfram_api_key=k\udcff"], capture_output=True, env=env, timeout=60)
    assert (done.returncode, done.stderr.decode()) == (2, "Error: --set agentic_system.wolfram_api_key: the value is not UTF-8 "
                                                          "text (byte 0xff at character 1); convert it to UTF-8 (iconv -t UTF-8).\n")
