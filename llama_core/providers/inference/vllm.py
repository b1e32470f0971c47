"""`remote::vllm` inference: a vLLM server's OpenAI-compatible API (`vllm serve MODEL`, default http://localhost:8000).

    start            ->  GET  {url}/v1/models            what it serves (served_model.py maps names)
    chat_completion  ->  POST {url}/v1/chat/completions  messages, tools, sampling (SSE if stream)
    completion       ->  POST {url}/v1/completions       prompt, sampling (SSE if stream)
    embeddings       ->  POST {url}/v1/embeddings        (a local embedding model's name: answered here)

One vLLM server may span many GPUs and hosts (tensor and pipeline parallel, over Ray): to us it is
one URL. Tool calls come back as vLLM's parser wrote them (`--enable-auto-tool-choice
--tool-call-parser llama3_json`); without those flags vLLM refuses `tools`, and its 400 says so.
`api_token` is sent as a bearer token when set (`vllm serve --api-key`). Everything else, streams
and errors included, is llama_core.providers.inference.openai_compat's.
"""

from __future__ import annotations

from llama_core.config import VLLMImplConfig
from llama_core.errors import LlamaError, ProviderError, UnavailableError
from llama_core.providers.inference.openai_compat import OpenAIStyleInference
from llama_core.providers.inference.served_model import Served, served_name
from llama_core.providers.inference.vendor_stream import error_message
from llama_core.providers.vendor_errors import vendor_error
from llama_core.redact import redact


class VLLMInference(OpenAIStyleInference):
    """apis.Inference served by a vLLM server. An async context manager: entering asks what it serves."""

    vendor = "vLLM"
    key_name = "api_token"
    model_ids: dict[str, str] = {}  # the registry table is what /v1/models says, asked at start

    def __init__(self, config: VLLMImplConfig) -> None:
        super().__init__(config)
        self.shown_url = redact(config.url)  # for messages: a url may carry user:password@
        self.served: list[Served] = []

    async def __aenter__(self) -> VLLMInference:
        await super().__aenter__()
        try:
            await self.refresh()
        except BaseException:
            await self.__aexit__()
            raise
        return self

    def auth_headers(self) -> dict[str, str]:
        """A bearer token only when the config has one (vLLM asks for none unless run with --api-key)."""
        return {"Authorization": f"Bearer {self.config.api_token}"} if self.config.api_token else {}

    def key_source(self) -> str:
        return "the api_token in the run config (vLLM's --api-key)"

    def unreachable(self, reason: str) -> LlamaError:
        return UnavailableError(
            f"vLLM is not answering at {self.shown_url}: start it with `vllm serve MODEL` and wait until it has loaded the model ({reason})."
        )

    async def refresh(self) -> list[Served]:
        """What vLLM serves now (GET /v1/models)."""
        assert self._http is not None, "use `async with VLLMInference(...)` first"
        import httpx

        try:
            response = await self._http.get("/models", headers=self.auth_headers())
        except httpx.TransportError as e:
            raise self.unreachable(redact(f"{e or type(e).__name__}", self.secrets())) from None
        if response.status_code >= 400:
            raise vendor_error(self.vendor, response.status_code, error_message(response.content),
                               secrets=self.secrets(), key=self.key_source())  # fmt: skip
        cards = self._json(response).get("data")
        if not isinstance(cards, list) or not all(isinstance(c, dict) and isinstance(c.get("id"), str) for c in cards):
            raise ProviderError("vLLM's /v1/models answer has no list of models.")
        self.served = [Served(c["id"], c.get("root") if isinstance(c.get("root"), str) else None) for c in cards]
        return self.served

    async def model_for(self, model_id: str) -> str:
        """The served name of `model_id`; asks vLLM again before refusing (it may have been restarted
        with another model). NotFoundError naming what it serves otherwise."""
        try:
            return served_name(model_id, self.served, self.vendor, self.shown_url)
        except LlamaError:
            return served_name(model_id, await self.refresh(), self.vendor, self.shown_url)

    def vendor_model(self, model_id: str) -> str:
        return served_name(model_id, self.served, self.vendor, self.shown_url)

    async def served_models(self) -> list[str]:
        """What vLLM serves: registry descriptors where the model is one of ours, else vLLM's name."""
        return [m.descriptor() for m in await self.refresh()]
