"""The builtin tools against the loopback vendors: keys from the config or the provider-data header,
failures as one-line results that never hold a key."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from pathlib import Path

import pytest

from llama_core.config import AgenticSystemConfig
from llama_core.providers.agents.search import brave_result
from llama_core.providers.agents.tools import ToolContext, run_tool
from llama_core.providers.provider_data import provider_data_scope
from llama_core.types.messages import ToolCall

from .agent_checkpoint import BRAVE_BODY
from .vendors import BRAVE_KEY, WOLFRAM_KEY, Vendors, serving_vendors

pytestmark = pytest.mark.anyio

ALL = {"brave_search", "wolfram_alpha", "photogen", "code_interpreter"}


@pytest.fixture
def vendors() -> Iterator[Vendors]:
    with serving_vendors() as v:
        yield v


def context(vendors: Vendors, tmp_path: Path, **keys: str) -> ToolContext:
    config = AgenticSystemConfig(brave_search_url=vendors.url, wolfram_alpha_url=vendors.url + "/", **keys)
    return ToolContext(config, tmp_path)


def call(tool: str, **arguments: str) -> ToolCall:
    return ToolCall(call_id="1", tool_name=tool, arguments=arguments)


async def test_brave_search_with_the_configured_key(vendors: Vendors, tmp_path: Path) -> None:
    out = await run_tool(call("brave_search", query="tour"), ALL, context(vendors, tmp_path, brave_search_api_key=BRAVE_KEY))
    assert (out.content, out.failed) == (brave_result("tour", BRAVE_BODY), False)
    assert json.loads(out.content)["top_k"][0] == {
        "title": "Tour de France 2026: the winner", "url": "https://example.org/tdf", "description": "Jonas Vingegaard wins."
    }  # fmt: skip
    [request] = vendors.requests
    assert (request["path"], request["query"], request["headers"]["x-subscription-token"]) == ("/res/v1/web/search", {"q": "tour"}, BRAVE_KEY)


async def test_wolfram_alpha_with_the_provider_data_key(vendors: Vendors, tmp_path: Path) -> None:
    with provider_data_scope({"wolfram_api_key": WOLFRAM_KEY}):
        out = await run_tool(call("wolfram_alpha", query="2+2"), ALL, context(vendors, tmp_path))
    assert json.loads(out.content) == {"queryresult": {"success": True, "pods": [
        {"title": "Input", "subpods": [{"title": "", "plaintext": "2 + 2"}]},
        {"title": "Result", "subpods": [{"title": "", "plaintext": "4"}]},
    ]}}  # fmt: skip
    [request] = vendors.requests
    assert request["query"] == {"input": "2+2", "appid": WOLFRAM_KEY, "format": "plaintext", "output": "json"}


async def test_a_missing_key_says_where_to_put_one(vendors: Vendors, tmp_path: Path) -> None:
    out = await run_tool(call("brave_search", query="tour"), ALL, context(vendors, tmp_path))
    assert out.failed and out.content == (
        "Error: Brave Search needs an API key: set brave_search_api_key in the agentic_system provider's config, "
        'or send it in the X-LlamaStack-ProviderData header as {"brave_search_api_key": "<key>"}.'
    )
    assert vendors.requests == []


async def test_a_rejected_key_is_named_never_shown(vendors: Vendors, tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    wrong = "wrong-brave-key-9876543210"
    with provider_data_scope({"brave_search_api_key": wrong}):
        out = await run_tool(call("brave_search", query="tour"), ALL, context(vendors, tmp_path))
    assert out.content == "Error: Brave Search answered 401 Unauthorized: check brave_search_api_key"
    assert wrong not in caplog.text  # the vendor echoed it; the log has it redacted


async def test_photogen_is_not_available(tmp_path: Path) -> None:
    out = await run_tool(call("photogen", query="a cat"), ALL, ToolContext(AgenticSystemConfig(), tmp_path))
    assert (out.content, out.failed) == ("Error: photogen is not available in this stack: no image generation model is served.", True)


async def test_a_tool_the_agent_was_not_given_is_refused(tmp_path: Path) -> None:
    out = await run_tool(call("wolfram_alpha", query="2+2"), {"brave_search"}, ToolContext(AgenticSystemConfig(), tmp_path))
    assert out.content == "Error: The tool wolfram_alpha is not enabled for this agent."


async def test_a_call_without_its_argument_is_refused(tmp_path: Path) -> None:
    out = await run_tool(call("brave_search", q="tour"), ALL, ToolContext(AgenticSystemConfig(), tmp_path))
    assert out.content == "Error: brave_search takes one text argument 'query'; this call gave ['q']."


def test_vendor_urls_are_checked() -> None:
    import msgspec

    with pytest.raises(msgspec.ValidationError, match="brave_search_url must start with http:// or https://"):
        msgspec.convert({"brave_search_url": "ftp://x"}, AgenticSystemConfig)
