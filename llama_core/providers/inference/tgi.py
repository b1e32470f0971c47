"""`remote::tgi` inference: a Hugging Face Text Generation Inference server (default http://localhost:8080).

    start            ->  GET  {url}/info                  the model it serves (`model_id`)
    chat_completion  ->  POST {url}/v1/chat/completions   TGI's Messages API: the model's chat template, tools
    completion       ->  POST {url}/generate              raw prompt, TGI's parameters
                         POST {url}/generate_stream       the same as server-sent events, one token each

TGI serves one model; a request naming another is a 404 saying which (served_model.py). Its
/generate parameters carry every sampling strategy (greedy is `do_sample: false`, since TGI takes
no temperature of 0); its chat API takes no top_k or repetition_penalty, so those are refused there
with a 400 that says to use completion. Streams give the meta-reference chunk sequence; special
tokens (`<|eot_id|>`) are not text. Errors: TGI's `{"error", "error_type"}` bodies go through
llama_core.providers.vendor_errors by status (422 validation: 400; 429 overloaded: retried, then
503; 424 generation: 502); the same in a stream's error event, by `error_type`.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Any

import msgspec

from llama_core.errors import InvalidRequestError, LlamaError, ProviderError, UnavailableError, UnsupportedError, shown
from llama_core.providers.inference.local_embeddings import is_embedding_model, local_embeddings
from llama_core.providers.inference.openai_compat import FINISH_REASONS, seed_penalty_stop
from llama_core.providers.inference.self_hosted import SelfHostedInference
from llama_core.providers.inference.served_model import Served
from llama_core.providers.inference.vendor_stream import (
    OpenStream,
    Piece,
    completion_chunks,
    cut_piece,
    drain,
    stop_at,
    stream_lines,
)
from llama_core.providers.vendor_errors import stream_failure, vendor_detail
from llama_core.sse import iter_sse_data
from llama_core.types import SamplingParams, SamplingStrategy, StopReason, content_text
from llama_core.types.inference import (
    ChatCompletionRequest,
    CompletionRequest,
    CompletionResponse,
    CompletionResponseStreamChunk,
    EmbeddingsRequest,
    EmbeddingsResponse,
)

if TYPE_CHECKING:
    import httpx

VENDOR = "TGI"
EOM = "<|eom_id|>"  # the special token that ends a message awaiting a tool's result

# TGI's finish_reason -> ours: /generate says eos_token; its chat API says stop (TGI 3) or eos_token (TGI 2).
TGI_FINISH: dict[str, StopReason] = {
    **FINISH_REASONS,
    "eos_token": StopReason.end_of_turn,
    "stop_sequence": StopReason.end_of_turn,
}

# A stream's error event by its error_type -> (our error, what TGI did).
STREAM_ERRORS: dict[str, tuple[type[LlamaError], str]] = {
    "validation": (InvalidRequestError, "refused the request"),
    "overloaded": (UnavailableError, "is overloaded"),
}


def generate_parameters(sp: SamplingParams) -> dict[str, Any]:
    """TGI's /generate `parameters`: do_sample with temperature and top_p or top_k by strategy (TGI
    takes neither a temperature of 0 nor a top_p of 1), max_new_tokens when set, seed,
    repetition_penalty, stop, and details (for the finish reason)."""
    sampling = sp.strategy != SamplingStrategy.greedy and sp.temperature > 0
    params: dict[str, Any] = {"do_sample": sampling}
    if sampling:
        params["temperature"] = sp.temperature
        if sp.strategy == SamplingStrategy.top_p and sp.top_p < 1.0:
            params["top_p"] = sp.top_p
        elif sp.strategy == SamplingStrategy.top_k and sp.top_k > 0:
            params["top_k"] = sp.top_k
    if sp.max_tokens > 0:
        params["max_new_tokens"] = sp.max_tokens
    return params | seed_penalty_stop(sp) | {"details": True}


def finish_of(details: Any, last_token: Any) -> StopReason:
    """Our stop reason from /generate's `details` and the last token (`<|eom_id|>`: end_of_message)."""
    reason = details.get("finish_reason") if isinstance(details, dict) else None
    if reason == "eos_token" and isinstance(last_token, dict) and last_token.get("text") == EOM:
        return StopReason.end_of_message
    return TGI_FINISH.get(reason or "eos_token", StopReason.end_of_turn)


def stream_error(event: dict[str, Any], secrets: set[str]) -> LlamaError:
    """The error of a stream's `{"error", "error_type"}` event."""
    cls, what = STREAM_ERRORS.get(str(event.get("error_type")), (None, ""))
    if cls is None:
        return stream_failure(VENDOR, "failed during the stream", str(event.get("error")), secrets)
    return cls(f"{VENDOR} {what}: {vendor_detail(VENDOR, what, str(event.get('error')), secrets)}")


class TGIInference(SelfHostedInference):
    """apis.Inference served by a TGI server. An async context manager: entering asks what it serves."""

    vendor = VENDOR
    finish_reasons = TGI_FINISH
    chat_path = "/v1/chat/completions"
    info_path = "/info"
    start_hint = "start it (`text-generation-launcher --model-id MODEL`, or its container)"
    key_hint = "the api_token in the run config"

    @property
    def api_base(self) -> str:
        """TGI's routes hang off its root (/generate, /info) as well as /v1."""
        return str(self.config.url).rstrip("/")

    def parse_served(self, data: Any) -> list[Served]:
        """TGI's /info: the one `model_id` it serves."""
        model_id = data.get("model_id")
        if not isinstance(model_id, str) or not model_id:
            raise ProviderError("TGI's /info answer names no model_id.")
        return [Served(model_id)]

    def chat_body(self, request: ChatCompletionRequest, model: str | None = None) -> dict[str, Any]:
        """The Messages API body; UnsupportedError for what it cannot sample with (top_k, repetition_penalty)."""
        sp = request.sampling_params
        if sp.strategy == SamplingStrategy.top_k:
            raise UnsupportedError(
                "TGI's chat API has no top_k: use the greedy or top_p strategy, or /inference/completion.",
                field="sampling_params.strategy",
            )
        if sp.repetition_penalty != 1.0:
            raise UnsupportedError(
                "TGI's chat API has no repetition_penalty: leave it at 1.0, or use /inference/completion.",
                field="sampling_params.repetition_penalty",
            )
        body = super().chat_body(request, model)
        if body.get("top_p", 0.0) >= 1.0:
            del body["top_p"]  # TGI takes a top_p below 1 only; 1 is no nucleus at all
        return body

    async def completion(
        self, request: CompletionRequest
    ) -> CompletionResponse | AsyncIterator[CompletionResponseStreamChunk]:
        """A raw continuation of `request.content` from /generate; a chunk stream from /generate_stream if `stream`."""
        self._check_logprobs(request.logprobs)
        await self.model_for(request.model)  # TGI serves one model: refuse another before asking
        body = {"inputs": content_text(request.content), "parameters": generate_parameters(request.sampling_params)}
        stops = request.sampling_params.stop
        if request.stream:
            response = await self._post("/generate_stream", body, stream=True)
            pieces = stop_at(response, self._generate_pieces(response, self.secrets()), stops)
            return OpenStream(response, completion_chunks(VENDOR, pieces))
        data = self._json(await self._post("/generate", body))
        details = data.get("details") or {}
        tokens = details.get("tokens") if isinstance(details, dict) else None
        stop = finish_of(details, tokens[-1] if isinstance(tokens, list) and tokens else None)
        text = str(data.get("generated_text") or "")
        if text.endswith(EOM):  # a TGI that does not skip special tokens in generated_text
            text = text.removesuffix(EOM)
        piece = cut_piece(Piece(text=text, finish=stop), stops)
        return CompletionResponse(content=piece.text, stop_reason=piece.finish or stop)

    async def embeddings(self, request: EmbeddingsRequest) -> EmbeddingsResponse:
        """Vectors from the local embedding model of that name; TGI serves none (that is TEI)."""
        if is_embedding_model(request.model):
            return await local_embeddings(request)
        raise UnsupportedError(
            f"TGI serves no embeddings; ask for a local embedding model (all-MiniLM-L6-v2), not '{shown(request.model)}'.",
            field="model",
        )

    async def _generate_pieces(self, response: httpx.Response, secrets: set[str]) -> AsyncIterator[Piece]:
        """Pieces of a /generate_stream answer: one token each; special tokens carry no text."""
        async with (
            contextlib.aclosing(stream_lines(VENDOR, response)) as lines,
            contextlib.aclosing(iter_sse_data(lines, drain)) as events,
        ):
            async for data in events:
                try:
                    event = msgspec.json.decode(data)
                except msgspec.DecodeError:
                    await drain(events)
                    raise stream_failure(VENDOR, "sent a stream event that is not JSON", data, secrets) from None
                if not isinstance(event, dict):
                    await drain(events)
                    raise stream_failure(VENDOR, "sent a stream event that is not an object", data, secrets)
                if "error" in event:
                    await drain(events)
                    raise stream_error(event, secrets)
                token = event.get("token") or {}
                text = "" if token.get("special") else str(token.get("text") or "")
                details = event.get("details")
                finish = finish_of(details, token) if isinstance(details, dict) else None
                yield Piece(text=text, finish=finish)
