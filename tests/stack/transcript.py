"""The reference's configure session (Step 3.3) as our providers ask it, and a pty driver to answer it.

`drive(argv, PROMPTS)` runs a command on a pseudo-terminal, waits for each prompt and types its
answer, as a person at a terminal would; the end-to-end tests (build, configure, run) share it.
"""

from __future__ import annotations

import os
import pty
import select
import subprocess
import time
from collections.abc import Mapping, Sequence

# Prompt lines end with ": " and the answer typed after it (empty: Enter alone).
TRANSCRIPT = """\
Configuring API: inference (meta-reference)
Enter value for model (default: SmolLM2-135M-Instruct): Llama3.1-8B-Instruct
Enter value for max_seq_len (default: 4096): 4096
Enter value for max_batch_size (default: 8): 1
Enter value for device (optional): 
Enter value for dtype (optional): 
Enter value for model_parallel_size (optional): 
Enter value for checkpoint_dir (optional): 
Enter value for threads (optional): 
Configuring API: safety (meta-reference)
Do you want to configure llama_guard_shield? (y/n): y
Entering sub-configuration for llama_guard_shield:
Enter value for model (default: Llama-Guard-3-8B): Llama-Guard-3-8B
Enter value for excluded_categories (default: []): []
Enter value for disable_input_check (default: False): 
Enter value for disable_output_check (default: False): 
Do you want to configure prompt_guard_shield? (y/n): y
Entering sub-configuration for prompt_guard_shield:
Enter value for model (default: Prompt-Guard-86M): Prompt-Guard-86M
Inference also serves Llama-Guard-3-8B, the model of llama_guard_shield.
Configuring API: agentic_system (meta-reference)
Enter value for brave_search_api_key (optional): 
Enter value for wolfram_api_key (optional): 
Configuring API: memory (meta-reference-faiss)
"""  # noqa: W291 (an empty answer leaves the prompt's trailing space)

# (prompt, answer) in order.
PROMPTS: list[tuple[str, str]] = [
    (prompt + "): ", answer) for prompt, _, answer in (line.partition("): ") for line in TRANSCRIPT.splitlines()) if _
]
ANSWERS: list[str] = [answer for _, answer in PROMPTS]

# The provider tables that session writes (None: absent from the TOML).
CONFIGURED: dict[str, dict] = {
    "inference": {"provider_id": "meta-reference", "model": "Llama3.1-8B-Instruct", "max_seq_len": 4096, "max_batch_size": 1,
                  "device": None, "dtype": None, "model_parallel_size": None, "checkpoint_dir": None,
                  "threads": None, "nnodes": None, "master_addr": None, "master_port": None,
                  "extra_models": [{"model": "Llama-Guard-3-8B", "max_seq_len": None, "max_batch_size": None, "device": None,
                                    "dtype": None, "model_parallel_size": None, "checkpoint_dir": None, "threads": None}]},
    "safety": {"provider_id": "meta-reference",
               "llama_guard_shield": {"model": "Llama-Guard-3-8B", "excluded_categories": [], "disable_input_check": False,
                                      "disable_output_check": False},
               "prompt_guard_shield": {"model": "Prompt-Guard-86M", "threshold": 0.9}},
    "agentic_system": {"provider_id": "meta-reference", "brave_search_api_key": None, "wolfram_api_key": None,
                       "brave_search_url": "https://api.search.brave.com", "wolfram_alpha_url": "https://api.wolframalpha.com"},
    "memory": {"provider_id": "meta-reference-faiss", "storage_dir": None, "hnsw_min_chunks": None, "max_document_chars": 4000000},
}  # fmt: skip


def drive(
    argv: Sequence[str], prompts: Sequence[tuple[str, str]], env: Mapping[str, str] | None = None, timeout: float = 60.0
) -> tuple[int, str]:
    """Run `argv` on a pty, answering each prompt in turn; (exit status, everything the terminal showed).

    The terminal echoes answers, so the output reads like the reference's transcript ("\\r\\n" becomes "\\n").
    """
    master, slave = pty.openpty()
    proc = subprocess.Popen(list(argv), stdin=slave, stdout=slave, stderr=slave, env=dict(env or os.environ), close_fds=True)
    os.close(slave)
    seen, pos = b"", 0
    deadline = time.monotonic() + timeout

    def read_more() -> bool:
        nonlocal seen
        ready, _, _ = select.select([master], [], [], max(0.0, deadline - time.monotonic()))
        if not ready:
            raise TimeoutError(f"no output for the next prompt; the terminal showed:\n{seen.decode(errors='replace')}")
        try:
            chunk = os.read(master, 4096)
        except OSError:  # EIO: the child closed the terminal
            chunk = b""
        seen += chunk
        return bool(chunk)

    try:
        for prompt, answer in prompts:
            while (at := seen.find(prompt.encode(), pos)) < 0:
                if not read_more():
                    raise AssertionError(f"exited before {prompt!r}; the terminal showed:\n{seen.decode(errors='replace')}")
            pos = at + len(prompt)
            os.write(master, answer.encode() + b"\n")
        while read_more():
            pass
        return proc.wait(timeout=max(1.0, deadline - time.monotonic())), seen.decode(errors="replace").replace("\r\n", "\n")
    finally:
        os.close(master)
        if proc.poll() is None:
            proc.kill()
            proc.wait()
