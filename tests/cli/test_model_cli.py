"""`llama model list | describe` and the CLI's error policy, run in-process on argv lists."""

from __future__ import annotations

import json
import textwrap

import pytest

from llama_cli import output
from llama_cli.app import main
from llama_core.models import all_models


@pytest.fixture
def llama(capsys, monkeypatch):
    """Run `llama <argv>`; return (exit status, stdout, stderr)."""
    monkeypatch.delenv("COLUMNS", raising=False)
    monkeypatch.delenv("LLAMA_DEBUG", raising=False)

    def run(*argv: str) -> tuple[int, str, str]:
        rc = main(list(argv))
        out, err = capsys.readouterr()
        return rc, out, err

    return run


def _row_cells(out: str, first: str) -> list[str]:
    """The cells of the table line whose first cell is `first`."""
    for line in out.splitlines():
        cells = [c.strip() for c in line.strip("|").split("|")]
        if cells and cells[0] == first:
            return cells
    raise AssertionError(f"no row for {first!r} in:\n{out}")


def test_help_lists_model(llama):
    rc, out, err = llama("--help")
    assert (rc, err) == (0, "")
    assert "Usage: llama COMMAND" in out and "Welcome to the Llama CLI" in out
    assert "│ model " in out and "list, describe, download, run, remove, template, verify-download" in out


def test_model_help_lists_subcommands(llama):
    rc, out, _ = llama("model", "--help")
    assert rc == 0 and "Usage: llama model COMMAND" in out
    for command in ("list", "describe", "template"):
        assert f"│ {command} " in out


def test_list_shows_every_featured_sku(llama):
    rc, out, err = llama("model", "list")
    assert (rc, err) == (0, "")
    header = _row_cells(out, "Model Descriptor")
    assert header == ["Model Descriptor", "Hugging Face Repo", "Context Length", "Hardware Requirements"]
    featured = all_models()
    for m in featured:
        hw = m.hardware_requirements
        assert _row_cells(out, m.descriptor) == [
            m.descriptor,
            m.huggingface_repo,
            output.context_length(m.context_length),
            output.hardware(hw.gpu_count, hw.memory_gb_per_gpu),
        ]
    body = [line for line in out.splitlines() if line.startswith("| ")]
    assert len(body) == 1 + len(featured)
    assert "Llama-2-7b" not in out and "Llama-3-8B " not in out


def test_list_rows_pinned(llama):
    _, out, _ = llama("model", "list")
    assert _row_cells(out, "Llama3.1-405B:bf16-mp16") == [
        "Llama3.1-405B:bf16-mp16", "meta-llama/Llama-3.1-405B", "128K", "16 GPUs, each >= 70GB VRAM",
    ]  # fmt: skip
    assert _row_cells(out, "SmolLM2-135M-Instruct") == [
        "SmolLM2-135M-Instruct", "HuggingFaceTB/SmolLM2-135M-Instruct", "8K", "runs on a CPU",
    ]  # fmt: skip
    assert _row_cells(out, "Prompt-Guard-86M")[2] == "512"
    assert out.splitlines()[0] == "+" + "+".join("-" * w for w in (41, 53, 16, 28)) + "+"


def test_list_show_all_adds_llama2_and_llama3(llama):
    _, out, _ = llama("model", "list", "--show-all")
    for descriptor in ("Llama-2-7b", "Llama-2-70b-chat", "Llama-3-8B", "Llama-3-70B-Instruct", "Llama3.1-8B"):
        assert _row_cells(out, descriptor)[0] == descriptor
    assert _row_cells(out, "Llama-3-8B-Instruct")[1:] == ["meta-llama/Llama-3-8B-Instruct", "8K", "1 GPU, each >= 20GB VRAM"]
    assert _row_cells(out, "Llama-2-13b")[2] == "4K"


@pytest.mark.parametrize("show_all", [False, True], ids=["featured", "show-all"])
def test_list_json_parses(llama, show_all):
    argv = ["model", "list", "--json"] + (["--show-all"] if show_all else [])
    rc, out, err = llama(*argv)
    assert (rc, err) == (0, "")
    data = json.loads(out)
    assert [d["descriptor"] for d in data] == [m.descriptor for m in all_models(show_all)]
    first = data[0]
    assert first["descriptor"] == ("Llama-2-7b" if show_all else "Llama3.1-8B")
    assert first["hardware_requirements"] == {"gpu_count": 1, "memory_gb_per_gpu": 20}
    assert {"huggingface_repo", "context_length", "arch_args", "quantization_format", "family"} <= set(first)


DESCRIBE_8B_INSTRUCT = """\
+-----------------------------+----------------------------------+
| Model                       | Llama3.1-8B-Instruct             |
+-----------------------------+----------------------------------+
| Hugging Face ID             | meta-llama/Llama-3.1-8B-Instruct |
+-----------------------------+----------------------------------+
| Description                 | Llama 3.1 8b instruct model      |
+-----------------------------+----------------------------------+
| Context Length              | 128K tokens                      |
+-----------------------------+----------------------------------+
| Weights format              | bf16                             |
+-----------------------------+----------------------------------+
| Model params.json           | {                                |
|                             |     "dim": 4096,                 |
|                             |     "n_layers": 32,              |
|                             |     "n_heads": 32,               |
|                             |     "n_kv_heads": 8,             |
|                             |     "vocab_size": 128256,        |
|                             |     "ffn_dim_multiplier": 1.3,   |
|                             |     "multiple_of": 1024,         |
|                             |     "norm_eps": 1e-05,           |
|                             |     "rope_theta": 500000.0,      |
|                             |     "use_scaled_rope": true      |
|                             | }                                |
+-----------------------------+----------------------------------+
| Recommended sampling params | {                                |
|                             |     "strategy": "top_p",         |
|                             |     "temperature": 1.0,          |
|                             |     "top_p": 0.9,                |
|                             |     "top_k": 0                   |
|                             | }                                |
+-----------------------------+----------------------------------+
"""


@pytest.mark.parametrize(
    "argv",
    [
        ["-m", "Llama3.1-8B-Instruct"],
        ["--model-id", "meta-llama/Llama-3.1-8B-Instruct"],
        ["-m", "Meta-Llama3.1-8B-Instruct"],  # the reference's spelling
    ],
    ids=["descriptor", "hf-repo", "old-descriptor"],
)
def test_describe_pinned(llama, argv):
    rc, out, err = llama("model", "describe", *argv)
    assert (rc, err) == (0, "")
    assert out == DESCRIBE_8B_INSTRUCT


def test_describe_demo_model(llama):
    _, out, _ = llama("model", "describe", "-m", "smollm2-135m-instruct")
    assert _row_cells(out, "Model")[1] == "SmolLM2-135M-Instruct"
    assert _row_cells(out, "Context Length")[1] == "8K tokens"
    assert '"hidden_dim": 1536,' in out and '"tie_word_embeddings": true' in out
    assert '"temperature": 0.2,' in out


def test_describe_prompt_guard_shows_its_hf_config(llama):
    rc, out, _ = llama("model", "describe", "-m", "prompt-guard-86m")
    assert rc == 0
    assert _row_cells(out, "Model config.json")[1] == "{"
    assert '"model_type": "deberta-v2",' in out and "params.json" not in out
    assert _row_cells(out, "Context Length")[1] == "512 tokens"


def test_describe_without_sampling_recommendation(llama):
    rc, out, _ = llama("model", "describe", "-m", "Llama-Guard-3-8B:int8")
    assert rc == 0
    assert _row_cells(out, "Weights format")[1] == "int8"
    assert '"use_scaled_rope": false' in out
    assert "Recommended sampling params" not in out


def test_unknown_model_is_one_line_exit_2(llama):
    rc, out, err = llama("model", "describe", "-m", "Llama3.1-8B-Instruc")
    assert rc == 2 and out == ""
    assert err == (
        "Error: Unknown model 'Llama3.1-8B-Instruc'. Did you mean: Llama3.1-8B-Instruct, "
        "Llama3.1-70B-Instruct, Llama-3-8B-Instruct? See `llama model list --show-all`.\n"
    )


@pytest.mark.parametrize("how", ["flag", "env"])
def test_debug_shows_traceback(llama, monkeypatch, how):
    if how == "env":
        monkeypatch.setenv("LLAMA_DEBUG", "1")
    rc, _, err = llama("model", "describe", "-m", "nope", *(["--debug"] if how == "flag" else []))
    assert rc == 2
    assert err.startswith("Traceback (most recent call last):")
    assert err.endswith("Error: Unknown model 'nope'. See `llama model list --show-all`.\n")


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["model", "describe"], 'Error: Command "model describe" parameter --model-id requires an argument.'),
        (["model", "lst"], 'Error: Unknown command "lst". Did you mean "list"?'),
        (["model", "list", "--bogus"], "Error: Unknown option"),
        (["model", "list", "--" + "x" * 300], "Error: Unknown option"),  # never wrapped
    ],
    ids=["missing-option", "unknown-command", "unknown-option", "long-unknown-option"],
)
def test_usage_errors_are_one_line_exit_2(llama, argv, message):
    rc, out, err = llama(*argv)
    assert rc == 2 and out == ""
    assert err.startswith(message)
    assert err.count("\n") == 1 and "Traceback" not in err


def test_unexpected_error_is_one_line_exit_1(llama, monkeypatch):
    import llama_core.models

    def boom(show_all=False):
        raise RuntimeError("disk on fire")

    monkeypatch.setattr(llama_core.models, "all_models", boom)
    rc, out, err = llama("model", "list")
    assert (rc, out) == (1, "")
    assert err == "Error: unexpected RuntimeError: disk on fire (rerun with --debug for the traceback)\n"


def test_pipe_width_follows_columns(llama, monkeypatch):
    monkeypatch.setenv("COLUMNS", "60")
    _, out, _ = llama("model", "list")
    assert max(len(line) for line in out.splitlines()) == 60


@pytest.mark.parametrize(
    ("tokens", "text"),
    [(131072, "128K"), (8192, "8K"), (4096, "4K"), (512, "512"), (1000, "1000")],
)
def test_context_length_format(tokens, text):
    assert output.context_length(tokens) == text


def test_hardware_format():
    assert output.hardware(1, 20) == "1 GPU, each >= 20GB VRAM"
    assert output.hardware(16, 70) == "16 GPUs, each >= 70GB VRAM"
    assert output.hardware(0, 1) == "runs on a CPU"


def test_prompt_text_marks_newlines_and_special_tokens():
    prompt = "<|start_header_id|>ipython<|end_header_id|>\n\n[stdout]ok[/stdout]<|eot_id|>"
    text = output.prompt_text(prompt, raw=False)
    assert text.plain == textwrap.dedent("""\
        <|start_header_id|>ipython<|end_header_id|>↵
        ↵
        [stdout]ok[/stdout]<|eot_id|>""")
    styled = [(text.plain[s.start : s.end], str(s.style)) for s in text.spans]
    assert styled == [
        ("<|start_header_id|>", "bold yellow"),
        ("<|end_header_id|>", "bold yellow"),
        ("<|eot_id|>", "bold yellow"),
    ]
    assert output.prompt_text(prompt, raw=True).plain == prompt
