"""Agentic system wire types: agent tools (tagged on `type`), AgentConfig, steps (tagged on
`step_type`), Turn, Session, turn stream events (tagged on `event_type`), one request per route.

Shapes are those of 0.0.13, plus `max_infer_iters` (0.0.21) and the memory tool's
`query_generator_config` (0.0.14).
"""

from __future__ import annotations

import enum
from datetime import datetime
from typing import Any, TypeAlias

import msgspec

from llama_core.types._base import Base
from llama_core.types.common import URL, Content, SamplingParams
from llama_core.types.inference import ToolCallDelta
from llama_core.types.memory import MemoryBank
from llama_core.types.messages import (
    CompletionMessage,
    ToolCall,
    ToolChoice,
    ToolParamDefinition,
    ToolPromptFormat,
    ToolResponse,
    ToolResponseMessage,
    UserMessage,
)
from llama_core.types.safety import RestAPIExecutionConfig, ShieldDefinition, ShieldResponse


class Attachment(Base):
    """A file handed to a turn: inserted into the session's memory bank, or given to code_interpreter."""

    content: Content | URL
    mime_type: str


# --- agent tools ------------------------------------------------------------------------------


class ToolDefinitionCommon(Base, kw_only=True):
    """Shields that run on a tool's input (the call) and output (the result)."""

    input_shields: list[ShieldDefinition] = []
    output_shields: list[ShieldDefinition] = []


class BraveSearchToolDefinition(ToolDefinitionCommon, tag_field="type", tag="brave_search"):
    remote_execution: RestAPIExecutionConfig | None = None


class WolframAlphaToolDefinition(ToolDefinitionCommon, tag_field="type", tag="wolfram_alpha"):
    remote_execution: RestAPIExecutionConfig | None = None


class PhotogenToolDefinition(ToolDefinitionCommon, tag_field="type", tag="photogen"):
    remote_execution: RestAPIExecutionConfig | None = None


class CodeInterpreterToolDefinition(ToolDefinitionCommon, tag_field="type", tag="code_interpreter"):
    enable_inline_code_execution: bool = True
    remote_execution: RestAPIExecutionConfig | None = None


class FunctionCallToolDefinition(
    ToolDefinitionCommon, tag_field="type", tag="function_call", kw_only=True
):
    """A custom tool: the client executes it and sends the result back in a new turn."""

    function_name: str
    description: str
    parameters: dict[str, ToolParamDefinition]
    remote_execution: RestAPIExecutionConfig | None = None


# The memory tool names banks by id; each entry says how to use that bank (tagged on `type`).


class _MemoryBankRefCommon(Base, kw_only=True):
    bank_id: str


class AgenticSystemVectorMemoryBankConfig(_MemoryBankRefCommon, tag_field="type", tag="vector"):
    pass


class AgenticSystemKeyValueMemoryBankConfig(
    _MemoryBankRefCommon, tag_field="type", tag="keyvalue", kw_only=True
):
    keys: list[str]  # the keys to focus on


class AgenticSystemKeywordMemoryBankConfig(_MemoryBankRefCommon, tag_field="type", tag="keyword"):
    pass


class AgenticSystemGraphMemoryBankConfig(
    _MemoryBankRefCommon, tag_field="type", tag="graph", kw_only=True
):
    entities: list[str]  # the entities to focus on


AgenticSystemMemoryBankConfig: TypeAlias = (
    AgenticSystemVectorMemoryBankConfig
    | AgenticSystemKeyValueMemoryBankConfig
    | AgenticSystemKeywordMemoryBankConfig
    | AgenticSystemGraphMemoryBankConfig
)


class DefaultMemoryQueryGeneratorConfig(Base, tag_field="type", tag="default"):
    """The query is the turn's message texts joined by `sep`."""

    sep: str = " "


class LLMMemoryQueryGeneratorConfig(Base, tag_field="type", tag="llm"):
    """The query is written by `model` from `template`."""

    model: str
    template: str


class CustomMemoryQueryGeneratorConfig(Base, tag_field="type", tag="custom"):
    pass


MemoryQueryGeneratorConfig: TypeAlias = (
    DefaultMemoryQueryGeneratorConfig | LLMMemoryQueryGeneratorConfig | CustomMemoryQueryGeneratorConfig
)


class MemoryToolDefinition(ToolDefinitionCommon, tag_field="type", tag="memory"):
    """Retrieve from banks before inference; at most `max_chunks` within `max_tokens_in_context`."""

    memory_bank_configs: list[AgenticSystemMemoryBankConfig] = []
    query_generator_config: MemoryQueryGeneratorConfig = msgspec.field(
        default_factory=DefaultMemoryQueryGeneratorConfig
    )
    max_tokens_in_context: int = 4096
    max_chunks: int = 10


AgenticSystemToolDefinition: TypeAlias = (
    BraveSearchToolDefinition
    | WolframAlphaToolDefinition
    | PhotogenToolDefinition
    | CodeInterpreterToolDefinition
    | FunctionCallToolDefinition
    | MemoryToolDefinition
)


# --- agent config -----------------------------------------------------------------------------


class AgentConfig(Base, kw_only=True):
    """An agent: its model, instructions (system prompt), shields and tools (`tool_prompt_format`
    None: the model's own custom-tool format)."""

    model: str
    instructions: str
    sampling_params: SamplingParams = msgspec.field(default_factory=SamplingParams)
    input_shields: list[ShieldDefinition] = []
    output_shields: list[ShieldDefinition] = []
    tools: list[AgenticSystemToolDefinition] = []
    tool_choice: ToolChoice = ToolChoice.auto
    tool_prompt_format: ToolPromptFormat | None = None
    max_infer_iters: int = 10


# --- steps ------------------------------------------------------------------------------------


class StepType(enum.StrEnum):
    inference = "inference"
    tool_execution = "tool_execution"
    shield_call = "shield_call"
    memory_retrieval = "memory_retrieval"


class StepCommon(Base, kw_only=True):
    turn_id: str
    step_id: str
    started_at: datetime | None = None
    completed_at: datetime | None = None


class InferenceStep(StepCommon, tag_field="step_type", tag="inference", kw_only=True):
    model_response: CompletionMessage


class ToolExecutionStep(StepCommon, tag_field="step_type", tag="tool_execution", kw_only=True):
    tool_calls: list[ToolCall]
    tool_responses: list[ToolResponse]


class ShieldCallStep(StepCommon, tag_field="step_type", tag="shield_call", kw_only=True):
    response: ShieldResponse


class MemoryRetrievalStep(StepCommon, tag_field="step_type", tag="memory_retrieval", kw_only=True):
    memory_bank_ids: list[str]
    inserted_context: Content


Step: TypeAlias = InferenceStep | ToolExecutionStep | ShieldCallStep | MemoryRetrievalStep


# --- turns and sessions -----------------------------------------------------------------------


class Turn(Base, kw_only=True):
    """One user input and everything the agent did about it, ending in `output_message`."""

    turn_id: str
    session_id: str
    input_messages: list[UserMessage | ToolResponseMessage]
    steps: list[Step]
    output_message: CompletionMessage
    output_attachments: list[Attachment] = []
    started_at: datetime
    completed_at: datetime | None = None


class Session(Base, kw_only=True):
    """A conversation with an agent; `memory_bank` holds its attachments once any arrive."""

    session_id: str
    session_name: str
    turns: list[Turn]
    started_at: datetime
    memory_bank: MemoryBank | None = None


# --- turn stream ------------------------------------------------------------------------------


class AgenticSystemTurnResponseEventType(enum.StrEnum):
    turn_start = "turn_start"
    step_start = "step_start"
    step_progress = "step_progress"
    step_complete = "step_complete"
    turn_complete = "turn_complete"


class AgenticSystemTurnResponseTurnStartPayload(Base, tag_field="event_type", tag="turn_start"):
    turn_id: str


class AgenticSystemTurnResponseStepStartPayload(Base, tag_field="event_type", tag="step_start"):
    """`metadata` carries e.g. `{"touchpoint": "user-input"}` for shield steps."""

    step_type: StepType
    step_id: str
    metadata: dict[str, Any] = {}


class AgenticSystemTurnResponseStepProgressPayload(
    Base, tag_field="event_type", tag="step_progress"
):
    """Exactly one delta is set: model text, a tool-call delta, or tool output text."""

    step_type: StepType
    step_id: str
    model_response_text_delta: str | None = None
    tool_call_delta: ToolCallDelta | None = None
    tool_response_text_delta: str | None = None


class AgenticSystemTurnResponseStepCompletePayload(
    Base, tag_field="event_type", tag="step_complete"
):
    step_type: StepType
    step_details: Step


class AgenticSystemTurnResponseTurnCompletePayload(
    Base, tag_field="event_type", tag="turn_complete"
):
    turn: Turn


AgenticSystemTurnResponseEventPayload: TypeAlias = (
    AgenticSystemTurnResponseTurnStartPayload
    | AgenticSystemTurnResponseStepStartPayload
    | AgenticSystemTurnResponseStepProgressPayload
    | AgenticSystemTurnResponseStepCompletePayload
    | AgenticSystemTurnResponseTurnCompletePayload
)


class AgenticSystemTurnResponseEvent(Base):
    payload: AgenticSystemTurnResponseEventPayload


class AgenticSystemTurnResponseStreamChunk(Base):
    """One SSE `data:` line of a turn: `{"event": {"payload": {"event_type": ...}}}`."""

    event: AgenticSystemTurnResponseEvent


# --- one request per route, and the small responses -------------------------------------------


class AgenticSystemCreateRequest(Base):
    """POST /agentic_system/create."""

    agent_config: AgentConfig


class AgenticSystemCreateResponse(Base):
    agent_id: str


class AgenticSystemDeleteRequest(Base):
    """POST /agentic_system/delete."""

    agent_id: str


class AgenticSystemSessionCreateRequest(Base):
    """POST /agentic_system/session/create."""

    agent_id: str
    session_name: str


class AgenticSystemSessionCreateResponse(Base):
    session_id: str


class AgenticSystemSessionGetRequest(Base):
    """POST /agentic_system/session/get; `turn_ids` limits the turns returned."""

    agent_id: str
    session_id: str
    turn_ids: list[str] | None = None


class AgenticSystemSessionDeleteRequest(Base):
    """POST /agentic_system/session/delete."""

    agent_id: str
    session_id: str


class AgenticSystemTurnCreateRequest(Base, kw_only=True):
    """POST /agentic_system/turn/create.

    The optional fields override the agent's config for this turn only; None keeps the agent's.
    """

    agent_id: str
    session_id: str
    messages: list[UserMessage | ToolResponseMessage]
    attachments: list[Attachment] | None = None
    stream: bool = False
    instructions: str | None = None
    sampling_params: SamplingParams | None = None
    input_shields: list[ShieldDefinition] | None = None
    output_shields: list[ShieldDefinition] | None = None
    tools: list[AgenticSystemToolDefinition] | None = None
    tool_choice: ToolChoice | None = None
    tool_prompt_format: ToolPromptFormat | None = None


class AgenticSystemTurnGetRequest(Base):
    """POST /agentic_system/turn/get."""

    agent_id: str
    turn_id: str


class AgenticSystemStepGetRequest(Base):
    """POST /agentic_system/step/get."""

    agent_id: str
    turn_id: str
    step_id: str


class AgenticSystemStepResponse(Base):
    step: Step


class AgenticSystemMemoryBankAttachRequest(Base):
    """POST /agentic_system/memory_bank/attach: banks the session's turns retrieve from."""

    agent_id: str
    session_id: str
    memory_bank_ids: list[str]


class AgenticSystemMemoryBankDetachRequest(Base):
    """POST /agentic_system/memory_bank/detach."""

    agent_id: str
    session_id: str
    memory_bank_ids: list[str]
