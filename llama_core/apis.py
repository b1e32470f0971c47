"""One typing.Protocol per API: the seam between transports and providers.

Every method takes one request Struct (the body of its route) and is async. A method whose request
has a `stream` field returns the whole response when `request.stream` is false, and an async
iterator of chunks when it is true. `llama_core.routes.METHODS` names the route each method serves,
and reads the request, response and chunk types from these annotations.

Non-goals: no routing, no provider lookup, no validation (requests arrive decoded and valid).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Protocol

from llama_core.types.agents import (
    AgenticSystemCreateRequest,
    AgenticSystemCreateResponse,
    AgenticSystemDeleteRequest,
    AgenticSystemMemoryBankAttachRequest,
    AgenticSystemMemoryBankDetachRequest,
    AgenticSystemSessionCreateRequest,
    AgenticSystemSessionCreateResponse,
    AgenticSystemSessionDeleteRequest,
    AgenticSystemSessionGetRequest,
    AgenticSystemStepGetRequest,
    AgenticSystemStepResponse,
    AgenticSystemTurnCreateRequest,
    AgenticSystemTurnGetRequest,
    AgenticSystemTurnResponseStreamChunk,
    Session,
    Turn,
)
from llama_core.types.inference import (
    BatchChatCompletionRequest,
    BatchChatCompletionResponse,
    BatchCompletionRequest,
    BatchCompletionResponse,
    ChatCompletionRequest,
    ChatCompletionResponse,
    ChatCompletionResponseStreamChunk,
    CompletionRequest,
    CompletionResponse,
    CompletionResponseStreamChunk,
    EmbeddingsRequest,
    EmbeddingsResponse,
)
from llama_core.types.memory import (
    CreateMemoryBankRequest,
    DeleteDocumentsRequest,
    DropMemoryBankRequest,
    GetDocumentsRequest,
    GetMemoryBankRequest,
    InsertDocumentsRequest,
    ListMemoryBanksRequest,
    MemoryBank,
    MemoryBankDocument,
    QueryDocumentsRequest,
    QueryDocumentsResponse,
    UpdateDocumentsRequest,
)
from llama_core.types.models import Model, ModelsGetRequest, ModelsListRequest
from llama_core.types.safety import RunShieldsRequest, RunShieldsResponse


class Inference(Protocol):
    async def chat_completion(
        self, request: ChatCompletionRequest
    ) -> ChatCompletionResponse | AsyncIterator[ChatCompletionResponseStreamChunk]:
        """A reply to `request.messages`; a chunk stream (start, progress..., complete) if `stream`."""
        ...

    async def completion(
        self, request: CompletionRequest
    ) -> CompletionResponse | AsyncIterator[CompletionResponseStreamChunk]:
        """A raw continuation of `request.content`; a chunk stream if `stream`."""
        ...

    async def batch_chat_completion(
        self, request: BatchChatCompletionRequest
    ) -> BatchChatCompletionResponse:
        """One CompletionMessage per dialog of `messages_batch`, in order."""
        ...

    async def batch_completion(self, request: BatchCompletionRequest) -> BatchCompletionResponse:
        """One CompletionMessage per prompt of `content_batch`, in order."""
        ...

    async def embeddings(self, request: EmbeddingsRequest) -> EmbeddingsResponse:
        """One vector per item of `request.contents`."""
        ...


class Safety(Protocol):
    async def run_shields(self, request: RunShieldsRequest) -> RunShieldsResponse:
        """Every shield's verdict on the messages, in the order of `request.shields`."""
        ...


class Memory(Protocol):
    async def create_memory_bank(self, request: CreateMemoryBankRequest) -> MemoryBank:
        """A new, empty bank with a fresh `bank_id`."""
        ...

    async def list_memory_banks(self, request: ListMemoryBanksRequest) -> list[MemoryBank]:
        """Every bank of this stack."""
        ...

    async def get_memory_bank(self, request: GetMemoryBankRequest) -> MemoryBank | None:
        """The bank, or None if there is no such bank (as the original answered)."""
        ...

    async def drop_memory_bank(self, request: DropMemoryBankRequest) -> str:
        """Delete the bank and its documents; returns its `bank_id`."""
        ...

    async def insert_documents(self, request: InsertDocumentsRequest) -> None:
        """Chunk, embed and index the documents; returns once they are searchable."""
        ...

    async def update_documents(self, request: UpdateDocumentsRequest) -> None:
        """Replace the documents that share a `document_id` with the given ones."""
        ...

    async def query_documents(self, request: QueryDocumentsRequest) -> QueryDocumentsResponse:
        """The chunks nearest to `request.query`, best first."""
        ...

    async def get_documents(self, request: GetDocumentsRequest) -> list[MemoryBankDocument]:
        """The stored documents named by `request.document_ids`."""
        ...

    async def delete_documents(self, request: DeleteDocumentsRequest) -> None:
        """Remove the documents and their chunks."""
        ...


class AgenticSystem(Protocol):
    async def create_agentic_system(
        self, request: AgenticSystemCreateRequest
    ) -> AgenticSystemCreateResponse:
        """A new agent from `request.agent_config`."""
        ...

    async def delete_agentic_system(self, request: AgenticSystemDeleteRequest) -> None:
        """Delete the agent and its sessions."""
        ...

    async def create_agentic_system_session(
        self, request: AgenticSystemSessionCreateRequest
    ) -> AgenticSystemSessionCreateResponse:
        """A new, empty session of the agent."""
        ...

    async def get_agentic_system_session(self, request: AgenticSystemSessionGetRequest) -> Session:
        """The session with its turns (only `turn_ids`, if given)."""
        ...

    async def delete_agentic_system_session(
        self, request: AgenticSystemSessionDeleteRequest
    ) -> None:
        """Delete the session and its turns."""
        ...

    async def create_agentic_system_turn(
        self, request: AgenticSystemTurnCreateRequest
    ) -> Turn | AsyncIterator[AgenticSystemTurnResponseStreamChunk]:
        """Run one turn: the finished Turn, or its event stream (turn_start ... turn_complete)."""
        ...

    async def get_agentic_system_turn(self, request: AgenticSystemTurnGetRequest) -> Turn:
        """A finished turn."""
        ...

    async def get_agentic_system_step(
        self, request: AgenticSystemStepGetRequest
    ) -> AgenticSystemStepResponse:
        """One step of a finished turn."""
        ...

    async def attach_memory_bank_to_agentic_system(
        self, request: AgenticSystemMemoryBankAttachRequest
    ) -> None:
        """Make the session's turns retrieve from these banks too."""
        ...

    async def detach_memory_bank_from_agentic_system(
        self, request: AgenticSystemMemoryBankDetachRequest
    ) -> None:
        """Stop retrieving from these banks in the session."""
        ...


class Models(Protocol):
    async def list_models(self, request: ModelsListRequest) -> list[Model]:
        """Every model this stack serves."""
        ...

    async def get_model(self, request: ModelsGetRequest) -> Model:
        """The model named by descriptor or Hugging Face repo; ModelNotFoundError otherwise."""
        ...

