"""`llama model`: list the registry, describe one model, show prompt templates."""

from __future__ import annotations

import sys
from typing import Annotated, Literal

from cyclopts import App, Parameter

from llama_cli import output

app = App(name="model", help="Work with llama models: list, describe, download, run, remove, template, verify-download.")

ModelId = Annotated[str, Parameter(name=["--model-id", "-m"], help="Model descriptor or Hugging Face repo.")]

# Models on disk (llama_cli/model_files.py); `llama model download` is `llama download`, as in the original.
app.command("llama_cli.download:download", name="download", help="Download a model (same as `llama download`).")
app.command("llama_cli.model_files:verify_download", name="verify-download", help="Check a downloaded model's checksums.")
app.command("llama_cli.model_files:remove", name="remove", help="Delete a downloaded model.")
app.command("llama_cli.model_run:run", name="run", help="Chat with a model locally, without a server.")


@app.command(name="list")
def list_models(
    *,
    show_all: Annotated[bool, Parameter(negative=(), help="Also list Llama 2 and Llama 3.")] = False,
    json_: Annotated[bool, Parameter(name="--json", negative=(), help="Print a JSON array.")] = False,
    downloaded: Annotated[bool, Parameter(negative=(), help="List the downloaded models, with their size on disk.")] = False,
) -> None:
    """List the models available for download, with the hardware needed to serve them."""
    if downloaded:
        from llama_cli.model_files import list_downloaded

        return list_downloaded(json_)
    from llama_core.models import all_models

    models = all_models(show_all=show_all)
    if json_:
        import msgspec

        # Mappings (the sampling recommendation) are read-only proxies; msgspec encodes dicts.
        data = msgspec.json.encode(models, enc_hook=lambda obj: dict(obj))
        sys.stdout.write(msgspec.json.format(data, indent=2).decode() + "\n")
        return
    rows = [
        (
            m.descriptor,
            m.huggingface_repo or "",
            output.context_length(m.context_length),
            output.hardware(m.hardware_requirements.gpu_count, m.hardware_requirements.memory_gb_per_gpu),
        )
        for m in models
    ]
    headers = ("Model Descriptor", "Hugging Face Repo", "Context Length", "Hardware Requirements")
    output.console().print(output.grid(headers, rows))


@app.command
def describe(*, model_id: ModelId) -> None:
    """Describe a model: Hugging Face repo, context length, weights format, params.json, sampling."""
    import json

    from llama_core.models import resolve_model

    m = resolve_model(model_id)
    rows = [
        ("Model", m.descriptor),
        ("Hugging Face ID", m.huggingface_repo or ""),
        ("Description", m.description),
        ("Context Length", f"{output.context_length(m.context_length)} tokens"),
        ("Weights format", str(m.quantization_format)),
        # Prompt Guard is no Llama model: its arch args are a Hugging Face config.json
        (f"Model {'params' if m.is_llama_architecture else 'config'}.json", json.dumps(m.arch_args, indent=4)),
    ]
    if m.recommended_sampling is not None:
        rows.append(("Recommended sampling params", json.dumps(dict(m.recommended_sampling), indent=4)))
    output.console().print(output.grid(None, rows))


@app.command
def template(
    *,
    name: Annotated[str | None, Parameter(help="Template to render; omit for the list.")] = None,
    format: Annotated[
        Literal["json", "function_tag", "python_list"], Parameter(help="Tool prompt format of custom tools.")
    ] = "json",
    raw: Annotated[bool, Parameter(negative=(), help="Keep newlines as they are (no ↵ marks).")] = False,
) -> None:
    """Show the Llama 3 prompt templates and how each renders, special tokens highlighted."""
    from llama_core.prompt.templates import TEMPLATES, render_template
    from llama_core.types import ToolPromptFormat

    if name is None:
        table = output.grid(("Role", "Template Name"), ((t.role, t.name) for t in TEMPLATES))
        table.show_lines = False
        output.console().print(table)
        return
    prompt = render_template(name, tool_prompt_format=ToolPromptFormat(format))
    notes = output.template_notes(next(t.notes for t in TEMPLATES if t.name == name), raw)
    rows = [("Name", name), ("Template", output.prompt_text(prompt, raw)), ("Notes", notes)]
    output.console().print(output.grid(None, rows))
