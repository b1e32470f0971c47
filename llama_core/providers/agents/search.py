"""brave_search and wolfram_alpha: the builtin tools that call a vendor's public HTTP API.

    brave_search   GET {brave_search_url}/res/v1/web/search?q=<query>, header X-Subscription-Token
                   -> {"query": q, "top_k": [{"title", "url", "description"}, ...]} (the first 3 web results)
    wolfram_alpha  GET {wolfram_alpha_url}/v2/query?input=<query>&appid=<key>&format=plaintext&output=json
                   -> {"queryresult": {"success": bool, "pods": [{"title", "subpods": [{"title", "plaintext"}]}]}}

The answer is JSON text: what the model reads as the tool's result. The key comes from the
provider's config (`brave_search_api_key`, `wolfram_api_key`) or, when the config has none, from the
request's X-LlamaStack-ProviderData header under the same name. A key never reaches a log or an
error: a vendor's failure is worded by vendor_errors (its body redacted of every key we hold).

Errors: no key is an InvalidRequestError naming both places to put one; a vendor's non-200 is the
vendor_errors table's error (a 401 says which key to check); an unreachable vendor or a body that
is not the expected JSON is a ProviderError.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import httpx

from llama_core.config import AgenticSystemConfig
from llama_core.errors import InvalidRequestError, ProviderError
from llama_core.providers.provider_data import HEADER, provider_data
from llama_core.providers.vendor_errors import vendor_error
from llama_core.redact import known_secrets

TIMEOUT_S = 30.0
BRAVE_TOP_K = 3


@dataclass(frozen=True, slots=True)
class Vendor:
    """One search vendor: its name in messages, where its key is configured, how to call it."""

    name: str
    key_field: str  # the config field and provider-data key holding its key


BRAVE = Vendor("Brave Search", "brave_search_api_key")
WOLFRAM = Vendor("Wolfram Alpha", "wolfram_api_key")


def api_key(config: AgenticSystemConfig, vendor: Vendor) -> str:
    """The key from the config, else the request's provider data; InvalidRequestError without one."""
    key = getattr(config, vendor.key_field) or provider_data().get(vendor.key_field)
    if not isinstance(key, str) or not key:
        raise InvalidRequestError(
            f"{vendor.name} needs an API key: set {vendor.key_field} in the agentic_system provider's config, "
            f"or send it in the {HEADER} header as {{\"{vendor.key_field}\": \"<key>\"}}.",
            field=vendor.key_field,
        )
    return key


async def _get(config: AgenticSystemConfig, vendor: Vendor, url: str, **kwargs: Any) -> Any:
    secrets = known_secrets(config)
    try:
        async with httpx.AsyncClient(timeout=TIMEOUT_S, follow_redirects=False) as client:
            response = await client.get(url, **kwargs)
    except httpx.HTTPError as e:
        # httpx's message may quote the URL, whose query can hold Wolfram's appid: name the failure only.
        raise ProviderError(f"{vendor.name} could not be reached ({type(e).__name__}).") from None
    if response.status_code != 200:
        raise vendor_error(vendor.name, response.status_code, response.text, secrets=secrets, key=vendor.key_field)
    try:
        return response.json()
    except ValueError:
        raise ProviderError(f"{vendor.name} answered 200 with a body that is not JSON.") from None


async def brave_search(config: AgenticSystemConfig, query: str) -> str:
    """The first BRAVE_TOP_K web results for `query`, as JSON text."""
    key = api_key(config, BRAVE)
    body = await _get(
        config, BRAVE, f"{config.brave_search_url}/res/v1/web/search",
        params={"q": query}, headers={"X-Subscription-Token": key, "Accept": "application/json"},
    )  # fmt: skip
    return brave_result(query, body)


def brave_result(query: str, body: Any) -> str:
    """The tool's result text from Brave's answer `body` (decoded JSON); ProviderError if it has no results."""
    web = body.get("web", {}) if isinstance(body, dict) else None
    results = web.get("results", []) if isinstance(web, dict) else None
    if not isinstance(results, list):
        raise ProviderError(f"{BRAVE.name} answered 200 with a body that is not a search result.")
    top = [
        {"title": r.get("title"), "url": r.get("url"), "description": r.get("description")}
        for r in results[:BRAVE_TOP_K]
        if isinstance(r, dict)
    ]
    return json.dumps({"query": query, "top_k": top})


async def wolfram_alpha(config: AgenticSystemConfig, query: str) -> str:
    """Wolfram Alpha's plaintext pods for `query`, as JSON text."""
    key = api_key(config, WOLFRAM)
    params = {"input": query, "appid": key, "format": "plaintext", "output": "json"}
    body = await _get(config, WOLFRAM, f"{config.wolfram_alpha_url}/v2/query", params=params)
    result = body.get("queryresult") if isinstance(body, dict) else None
    if not isinstance(result, dict):
        raise ProviderError(f"{WOLFRAM.name} answered 200 with a body that is not a query result.")
    pods = [
        {
            "title": pod.get("title"),
            "subpods": [
                {"title": sub.get("title"), "plaintext": sub.get("plaintext")}
                for sub in pod.get("subpods", [])
                if isinstance(sub, dict)
            ],
        }
        for pod in result.get("pods", [])
        if isinstance(pod, dict)
    ]
    return json.dumps({"queryresult": {"success": bool(result.get("success")), "pods": pods}})
