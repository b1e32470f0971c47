"""An engine the user runs (vLLM, TGI) behind OpenAIStyleInference: asked what it serves at start,
and again before a request's model is refused (it may have been restarted with another).

A subclass says where the engine tells its models (`info_path`, read by `parse_served`), how to
start it (`start_hint`, for the "not answering" error) and where its token comes from (`key_hint`).
`api_token` is sent as a bearer token only when the config has one.
"""

from __future__ import annotations

from typing import Any

from llama_core.errors import LlamaError, UnavailableError
from llama_core.providers.inference.openai_compat import OpenAIStyleInference
from llama_core.providers.inference.served_model import Served, served_name
from llama_core.providers.inference.vendor_stream import error_message
from llama_core.providers.vendor_errors import vendor_error
from llama_core.redact import redact


class SelfHostedInference(OpenAIStyleInference):
    """apis.Inference served by a self-hosted engine. An async context manager: entering asks what it serves."""

    key_name = "api_token"
    model_ids: dict[str, str] = {}  # the registry table is what the engine says it serves, asked at start
    info_path: str  # GET, relative to api_base: what the engine serves
    start_hint: str  # "start it with `vllm serve MODEL`"
    key_hint: str  # where a wrong token came from, for a 401's message
    # and `parse_served(self, data) -> list[Served]`: the models in the engine's answer to info_path
    # (ProviderError when it names none)

    def __init__(self, config: Any) -> None:
        super().__init__(config)
        self.shown_url = redact(config.url)  # for messages: a url may carry user:password@
        self.served: list[Served] = []

    async def __aenter__(self) -> SelfHostedInference:
        await super().__aenter__()
        try:
            await self.refresh()
        except BaseException:
            await self.__aexit__()
            raise
        return self

    def auth_headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.config.api_token}"} if self.config.api_token else {}

    def key_source(self) -> str:
        return self.key_hint

    def unreachable(self, reason: str) -> LlamaError:
        return UnavailableError(
            f"{self.vendor} is not answering at {self.shown_url}: {self.start_hint} and wait until it has loaded the model ({reason})."
        )

    async def refresh(self) -> list[Served]:
        """What the engine serves now (GET `info_path`)."""
        assert self._http is not None, f"use `async with {type(self).__name__}(...)` first"
        import httpx

        try:
            response = await self._http.get(self.info_path, headers=self.auth_headers())
        except httpx.TransportError as e:
            raise self.unreachable(redact(f"{e or type(e).__name__}", self.secrets())) from None
        if response.status_code >= 400:
            raise vendor_error(self.vendor, response.status_code, error_message(response.content),
                               secrets=self.secrets(), key=self.key_source())  # fmt: skip
        self.served = self.parse_served(self._json(response))
        return self.served

    async def model_for(self, model_id: str) -> str:
        """The served name of `model_id`; asks the engine again before refusing. NotFoundError
        naming what it serves otherwise."""
        try:
            return served_name(model_id, self.served, self.vendor, self.shown_url)
        except LlamaError:
            return served_name(model_id, await self.refresh(), self.vendor, self.shown_url)

    def vendor_model(self, model_id: str) -> str:
        return served_name(model_id, self.served, self.vendor, self.shown_url)

    async def served_models(self) -> list[str]:
        """What the engine serves: registry descriptors where the model is one of ours, else its own name."""
        return [m.descriptor() for m in await self.refresh()]
