"""Batch requests as single ones: the split every provider shares, and the one-by-one batch of the
remote adapters (a vendor batches on its side; meta-reference runs the pieces concurrently instead)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from llama_core.types import CompletionMessage
from llama_core.types.inference import (
    BatchChatCompletionRequest,
    BatchChatCompletionResponse,
    BatchCompletionRequest,
    BatchCompletionResponse,
    ChatCompletionRequest,
    ChatCompletionResponse,
    CompletionRequest,
    CompletionResponse,
)

if TYPE_CHECKING:
    from llama_core.apis import Inference


def chat_requests(request: BatchChatCompletionRequest) -> list[ChatCompletionRequest]:
    """One non-streaming chat request per dialog of the batch, with the batch's settings."""
    return [
        ChatCompletionRequest(
            model=request.model,
            messages=messages,
            sampling_params=request.sampling_params,
            tools=request.tools,
            tool_choice=request.tool_choice,
            tool_prompt_format=request.tool_prompt_format,
            logprobs=request.logprobs,
        )
        for messages in request.messages_batch
    ]


def completion_requests(request: BatchCompletionRequest) -> list[CompletionRequest]:
    """One non-streaming completion request per prompt of the batch."""
    return [
        CompletionRequest(
            model=request.model, content=content, sampling_params=request.sampling_params, logprobs=request.logprobs
        )
        for content in request.content_batch
    ]


async def chat_one_by_one(provider: Inference, request: BatchChatCompletionRequest) -> BatchChatCompletionResponse:
    """One reply per dialog from `provider.chat_completion`, asked for one after another."""
    replies = []
    for one in chat_requests(request):
        response = await provider.chat_completion(one)
        assert isinstance(response, ChatCompletionResponse)
        replies.append(response.completion_message)
    return BatchChatCompletionResponse(completion_message_batch=replies)


async def completion_one_by_one(provider: Inference, request: BatchCompletionRequest) -> BatchCompletionResponse:
    """One continuation per prompt from `provider.completion`, asked for one after another."""
    replies = []
    for one in completion_requests(request):
        response = await provider.completion(one)
        assert isinstance(response, CompletionResponse)
        replies.append(CompletionMessage(content=response.content, stop_reason=response.stop_reason))
    return BatchCompletionResponse(completion_message_batch=replies)
