"""Wire types: every Struct round-trips, tagged unions read the original's JSON, bad input is named."""

from __future__ import annotations

import inspect
import json
from datetime import datetime, timezone

import jsonschema
import msgspec
import pytest

from llama_core.errors import InvalidRequestError
from llama_core.routes import METHODS
from llama_core.types import agents, inference, memory, models, safety
from llama_core.types import *  # noqa: F403
from llama_core.types._base import Base

T0 = datetime(2024, 9, 4, 10, 11, 12, 345678, tzinfo=timezone.utc)
T1 = datetime(2024, 9, 4, 10, 11, 13, tzinfo=timezone.utc)

USER = UserMessage(content="What is 2+2?", context=[TextContentItem(text="ctx")])
CALL = ToolCall(call_id="c1", tool_name="brave_search", arguments={"query": "llamas", "n": [1, 2]})
ASSISTANT = CompletionMessage(content="", stop_reason=StopReason.end_of_message, tool_calls=[CALL])
TOOL_RESULT = ToolResponseMessage(call_id="c1", tool_name="brave_search", content="3 results")
PARAMS = SamplingParams(strategy=SamplingStrategy.top_p, temperature=0.7, top_p=0.9, max_tokens=64)
TOOL_DEF = ToolDefinition(
    tool_name="get_weather",
    description="Weather in a city",
    parameters={"city": ToolParamDefinition(param_type="str", description="City", required=True)},
)
LOGPROBS = [TokenLogProbs(logprobs_by_token={"4": -0.01})]
URL_ = URL(uri="https://example.com/doc.txt")
REST = RestAPIExecutionConfig(url=URL_, method=RestAPIMethod.POST, headers={"X-Key": "k"})
SHIELD = ShieldDefinition(
    shield_type=BuiltinShield.llama_guard, on_violation_action=OnViolationAction.WARN, execution_config=REST
)
SHIELD_RESPONSE = ShieldResponse(
    shield_type="llama_guard", is_violation=True, violation_type="S9", violation_return_message="No."
)
VECTOR = VectorMemoryBankConfig(embedding_model="all-MiniLM-L6-v2", chunk_size_in_tokens=512)
BANK = MemoryBank(bank_id="b1", name="docs", config=VECTOR)
DOC = MemoryBankDocument(document_id="d1", content=URL_, mime_type="text/plain", metadata={"k": 1})
CHUNK = Chunk(content="chunk text", token_count=2, document_id="d1")
MEMORY_TOOL = MemoryToolDefinition(
    memory_bank_configs=[
        AgenticSystemVectorMemoryBankConfig(bank_id="b1"),
        AgenticSystemKeyValueMemoryBankConfig(bank_id="b2", keys=["k"]),
        AgenticSystemKeywordMemoryBankConfig(bank_id="b3"),
        AgenticSystemGraphMemoryBankConfig(bank_id="b4", entities=["e"]),
    ],
    query_generator_config=LLMMemoryQueryGeneratorConfig(model="m", template="{messages}"),
    max_chunks=5,
)
FUNCTION_TOOL = FunctionCallToolDefinition(
    function_name="get_weather",
    description="Weather in a city",
    parameters={"city": ToolParamDefinition(param_type="str")},
    input_shields=[SHIELD],
)
AGENT_TOOLS = [
    BraveSearchToolDefinition(remote_execution=REST),
    WolframAlphaToolDefinition(),
    PhotogenToolDefinition(output_shields=[SHIELD]),
    CodeInterpreterToolDefinition(enable_inline_code_execution=False),
    FUNCTION_TOOL,
    MEMORY_TOOL,
]
AGENT_CONFIG = AgentConfig(
    model="Llama3.1-8B-Instruct",
    instructions="Be brief.",
    sampling_params=PARAMS,
    input_shields=[SHIELD],
    tools=AGENT_TOOLS,
    tool_prompt_format=ToolPromptFormat.function_tag,
    max_infer_iters=3,
)
ATTACHMENT = Attachment(content=URL_, mime_type="text/plain")
STEPS = [
    InferenceStep(turn_id="t1", step_id="s1", started_at=T0, completed_at=T1, model_response=ASSISTANT),
    ToolExecutionStep(
        turn_id="t1",
        step_id="s2",
        tool_calls=[CALL],
        tool_responses=[ToolResponse(call_id="c1", tool_name="brave_search", content="3 results")],
    ),
    ShieldCallStep(turn_id="t1", step_id="s3", response=SHIELD_RESPONSE),
    MemoryRetrievalStep(turn_id="t1", step_id="s4", memory_bank_ids=["b1"], inserted_context="ctx"),
]
TURN = Turn(
    turn_id="t1",
    session_id="sess1",
    input_messages=[USER, TOOL_RESULT],
    steps=STEPS,
    output_message=CompletionMessage(content="4", stop_reason=StopReason.end_of_turn),
    output_attachments=[ATTACHMENT],
    started_at=T0,
    completed_at=T1,
)
DELTA = ToolCallDelta(content=CALL, parse_status=ToolCallParseStatus.success)

# One populated instance of every wire Struct of inference, safety, memory, agents and models.
METRICS = [MetricInResponse(metric="prompt_tokens", value=12), MetricInResponse(metric="completion_tokens", value=2)]

EXAMPLES: dict[str, Base] = {
    "ChatCompletionRequest": ChatCompletionRequest(
        model="Llama3.1-8B-Instruct",
        messages=[SystemMessage(content="sys"), USER, ASSISTANT, TOOL_RESULT],
        sampling_params=PARAMS,
        tools=[TOOL_DEF],
        tool_choice=ToolChoice.required,
        tool_prompt_format=ToolPromptFormat.python_list,
        stream=True,
        logprobs=LogProbConfig(top_k=1),
        response_format=JsonSchemaResponseFormat(json_schema={"type": "object"}),
    ),
    "CompletionRequest": CompletionRequest(
        model="m", content="Once upon", stream=True, response_format=GrammarResponseFormat(bnf={"gbnf": 'root ::= "a"'})
    ),
    "JsonSchemaResponseFormat": JsonSchemaResponseFormat(json_schema={"type": "integer", "minimum": 0}),
    "GrammarResponseFormat": GrammarResponseFormat(bnf={"lark": 'start: "yes" | "no"'}),
    "BatchChatCompletionRequest": BatchChatCompletionRequest(
        model="m", messages_batch=[[USER], [USER, ASSISTANT]], tools=[TOOL_DEF]
    ),
    "BatchCompletionRequest": BatchCompletionRequest(
        model="m", content_batch=["a", [TextContentItem(text="b")]], logprobs=LogProbConfig(top_k=2)
    ),
    "EmbeddingsRequest": EmbeddingsRequest(model="all-MiniLM-L6-v2", contents=["a", "b"]),
    "ChatCompletionResponse": ChatCompletionResponse(completion_message=ASSISTANT, logprobs=LOGPROBS, metrics=METRICS),
    "CompletionResponse": CompletionResponse(content=" a time", stop_reason=StopReason.out_of_tokens),
    "MetricInResponse": METRICS[0],
    "BatchChatCompletionResponse": BatchChatCompletionResponse(completion_message_batch=[ASSISTANT]),
    "BatchCompletionResponse": BatchCompletionResponse(completion_message_batch=[ASSISTANT]),
    "EmbeddingsResponse": EmbeddingsResponse(embeddings=[[0.5, -1.0], [0.25, 2.0]], usage=EmbeddingsUsage(prompt_tokens=6, total_tokens=6)),
    "EmbeddingsUsage": EmbeddingsUsage(prompt_tokens=6, total_tokens=6),
    "ToolCallDelta": DELTA,
    "ChatCompletionResponseEvent": ChatCompletionResponseEvent(
        event_type=ChatCompletionResponseEventType.progress, delta="4", logprobs=LOGPROBS
    ),
    "ChatCompletionResponseStreamChunk": ChatCompletionResponseStreamChunk(
        event=ChatCompletionResponseEvent(
            event_type=ChatCompletionResponseEventType.progress,
            delta=DELTA,
            stop_reason=StopReason.end_of_message,
        )
    ),
    "CompletionResponseStreamChunk": CompletionResponseStreamChunk(delta=" a", stop_reason=StopReason.end_of_turn),
    "RestAPIExecutionConfig": REST,
    "ShieldDefinition": SHIELD,
    "ShieldResponse": SHIELD_RESPONSE,
    "RunShieldsRequest": RunShieldsRequest(messages=[USER, ASSISTANT], shields=[SHIELD]),
    "RunShieldsResponse": RunShieldsResponse(responses=[SHIELD_RESPONSE]),
    "SafetyViolation": SafetyViolation(violation_level=ViolationLevel.error, user_message="No.", metadata={"c": "S1"}),
    "MemoryBankDocument": DOC,
    "VectorMemoryBankConfig": VectorMemoryBankConfig(
        embedding_model="all-MiniLM-L6-v2", chunk_size_in_tokens=512, overlap_size_in_tokens=64
    ),
    "KeyValueMemoryBankConfig": KeyValueMemoryBankConfig(),
    "KeywordMemoryBankConfig": KeywordMemoryBankConfig(),
    "GraphMemoryBankConfig": GraphMemoryBankConfig(),
    "MemoryBank": MemoryBank(bank_id="b1", name="docs", config=GraphMemoryBankConfig(), url=URL_),
    "Chunk": CHUNK,
    "QueryDocumentsResponse": QueryDocumentsResponse(chunks=[CHUNK], scores=[0.5]),
    "CreateMemoryBankRequest": CreateMemoryBankRequest(name="docs", config=VECTOR),
    "ListMemoryBanksRequest": ListMemoryBanksRequest(),
    "GetMemoryBankRequest": GetMemoryBankRequest(bank_id="b1"),
    "DropMemoryBankRequest": DropMemoryBankRequest(bank_id="b1"),
    "InsertDocumentsRequest": InsertDocumentsRequest(
        bank_id="b1", documents=[DOC, MemoryBankDocument(document_id="d2", content="inline")], ttl_seconds=60
    ),
    "UpdateDocumentsRequest": UpdateDocumentsRequest(bank_id="b1", documents=[DOC]),
    "QueryDocumentsRequest": QueryDocumentsRequest(bank_id="b1", query="llamas", params={"max_chunks": 3}),
    "GetDocumentsRequest": GetDocumentsRequest(bank_id="b1", document_ids=["d1"]),
    "DeleteDocumentsRequest": DeleteDocumentsRequest(bank_id="b1", document_ids=["d1", "d2"]),
    "Attachment": ATTACHMENT,
    "BraveSearchToolDefinition": AGENT_TOOLS[0],
    "WolframAlphaToolDefinition": AGENT_TOOLS[1],
    "PhotogenToolDefinition": AGENT_TOOLS[2],
    "CodeInterpreterToolDefinition": AGENT_TOOLS[3],
    "FunctionCallToolDefinition": FUNCTION_TOOL,
    "AgenticSystemVectorMemoryBankConfig": AgenticSystemVectorMemoryBankConfig(bank_id="b1"),
    "AgenticSystemKeyValueMemoryBankConfig": AgenticSystemKeyValueMemoryBankConfig(bank_id="b2", keys=["k"]),
    "AgenticSystemKeywordMemoryBankConfig": AgenticSystemKeywordMemoryBankConfig(bank_id="b3"),
    "AgenticSystemGraphMemoryBankConfig": AgenticSystemGraphMemoryBankConfig(bank_id="b4", entities=["e"]),
    "DefaultMemoryQueryGeneratorConfig": DefaultMemoryQueryGeneratorConfig(sep="\n"),
    "LLMMemoryQueryGeneratorConfig": LLMMemoryQueryGeneratorConfig(model="m", template="t"),
    "CustomMemoryQueryGeneratorConfig": CustomMemoryQueryGeneratorConfig(),
    "MemoryToolDefinition": MEMORY_TOOL,
    "AgentConfig": AGENT_CONFIG,
    "InferenceStep": STEPS[0],
    "ToolExecutionStep": STEPS[1],
    "ShieldCallStep": STEPS[2],
    "MemoryRetrievalStep": STEPS[3],
    "Turn": TURN,
    "Session": Session(session_id="sess1", session_name="s", turns=[TURN], started_at=T0, memory_bank=BANK),
    "AgenticSystemTurnResponseTurnStartPayload": AgenticSystemTurnResponseTurnStartPayload(turn_id="t1"),
    "AgenticSystemTurnResponseStepStartPayload": AgenticSystemTurnResponseStepStartPayload(
        step_type=StepType.shield_call, step_id="s3", metadata={"touchpoint": "user-input"}
    ),
    "AgenticSystemTurnResponseStepProgressPayload": AgenticSystemTurnResponseStepProgressPayload(
        step_type=StepType.inference, step_id="s1", tool_call_delta=DELTA
    ),
    "AgenticSystemTurnResponseStepCompletePayload": AgenticSystemTurnResponseStepCompletePayload(
        step_type=StepType.tool_execution, step_details=STEPS[1]
    ),
    "AgenticSystemTurnResponseTurnCompletePayload": AgenticSystemTurnResponseTurnCompletePayload(turn=TURN),
    "AgenticSystemTurnResponseEvent": AgenticSystemTurnResponseEvent(
        payload=AgenticSystemTurnResponseTurnStartPayload(turn_id="t1")
    ),
    "AgenticSystemTurnResponseStreamChunk": AgenticSystemTurnResponseStreamChunk(
        event=AgenticSystemTurnResponseEvent(payload=AgenticSystemTurnResponseTurnCompletePayload(turn=TURN))
    ),
    "AgenticSystemCreateRequest": AgenticSystemCreateRequest(agent_config=AGENT_CONFIG),
    "AgenticSystemCreateResponse": AgenticSystemCreateResponse(agent_id="a1"),
    "AgenticSystemDeleteRequest": AgenticSystemDeleteRequest(agent_id="a1"),
    "AgenticSystemSessionCreateRequest": AgenticSystemSessionCreateRequest(agent_id="a1", session_name="s"),
    "AgenticSystemSessionCreateResponse": AgenticSystemSessionCreateResponse(session_id="sess1"),
    "AgenticSystemSessionGetRequest": AgenticSystemSessionGetRequest(
        agent_id="a1", session_id="sess1", turn_ids=["t1"]
    ),
    "AgenticSystemSessionDeleteRequest": AgenticSystemSessionDeleteRequest(agent_id="a1", session_id="sess1"),
    "AgenticSystemTurnCreateRequest": AgenticSystemTurnCreateRequest(
        agent_id="a1",
        session_id="sess1",
        messages=[USER, TOOL_RESULT],
        attachments=[ATTACHMENT],
        stream=True,
        tools=[FUNCTION_TOOL],
        tool_choice=ToolChoice.required,
    ),
    "AgenticSystemTurnGetRequest": AgenticSystemTurnGetRequest(agent_id="a1", turn_id="t1"),
    "AgenticSystemStepGetRequest": AgenticSystemStepGetRequest(agent_id="a1", turn_id="t1", step_id="s1"),
    "AgenticSystemStepResponse": AgenticSystemStepResponse(step=STEPS[3]),
    "AgenticSystemMemoryBankAttachRequest": AgenticSystemMemoryBankAttachRequest(
        agent_id="a1", session_id="sess1", memory_bank_ids=["b1"]
    ),
    "AgenticSystemMemoryBankDetachRequest": AgenticSystemMemoryBankDetachRequest(
        agent_id="a1", session_id="sess1", memory_bank_ids=["b1"]
    ),
    "HardwareRequirements": HardwareRequirements(memory_gb_per_gpu=20, gpu_count=1),
    "Model": Model(
        descriptor="Llama3.1-8B-Instruct",
        core_model_id="Llama3.1-8B-Instruct",
        huggingface_repo="meta-llama/Llama-3.1-8B-Instruct",
        description="Llama 3.1 8b instruct model",
        max_seq_length=131072,
        arch_args={"dim": 4096, "n_layers": 32, "use_scaled_rope": True, "norm_eps": 1e-05},
        recommended_sampling_params=SamplingParams(strategy=SamplingStrategy.top_p, temperature=1.0, top_p=0.9),
        hardware_requirements=HardwareRequirements(memory_gb_per_gpu=20, gpu_count=1),
        provider="meta-reference",
    ),
    "ModelsListRequest": ModelsListRequest(),
    "ModelsGetRequest": ModelsGetRequest(core_model_id="meta-llama/Llama-3.1-8B-Instruct"),
}


def _wire_structs() -> set[str]:
    """Names of the concrete wire Structs defined in the API type modules (shared bases excluded)."""
    names = set()
    for module in (inference, safety, memory, agents, models):
        for name, obj in vars(module).items():
            if inspect.isclass(obj) and issubclass(obj, Base) and obj.__module__ == module.__name__:
                if not name.endswith("Common"):
                    names.add(name)
    return names


def test_every_wire_struct_has_an_example() -> None:
    assert set(EXAMPLES) == _wire_structs()
    assert all(type(value).__name__ == name for name, value in EXAMPLES.items())


@pytest.mark.parametrize("value", list(EXAMPLES.values()), ids=list(EXAMPLES))
def test_round_trip(value: Base) -> None:
    encoded = msgspec.json.encode(value)
    assert msgspec.json.decode(encoded, type=type(value)) == value
    # Enums become their plain values, datetimes RFC 3339: re-encoding is byte-identical.
    assert msgspec.json.encode(msgspec.json.decode(encoded, type=type(value))) == encoded


UNION_CASES = [
    pytest.param(MemoryBankConfig, EXAMPLES["KeyValueMemoryBankConfig"], id="MemoryBankConfig"),
    pytest.param(Step, STEPS[2], id="Step-shield_call"),
    pytest.param(Step, STEPS[3], id="Step-memory_retrieval"),
    pytest.param(AgenticSystemToolDefinition, MEMORY_TOOL, id="AgenticSystemToolDefinition-memory"),
    pytest.param(AgenticSystemToolDefinition, AGENT_TOOLS[3], id="AgenticSystemToolDefinition-code"),
    pytest.param(AgenticSystemMemoryBankConfig, MEMORY_TOOL.memory_bank_configs[3], id="AgentMemoryBank-graph"),
    pytest.param(MemoryQueryGeneratorConfig, CustomMemoryQueryGeneratorConfig(), id="MemoryQueryGenerator-custom"),
    pytest.param(
        AgenticSystemTurnResponseEventPayload,
        EXAMPLES["AgenticSystemTurnResponseStepProgressPayload"],
        id="TurnEventPayload-step_progress",
    ),
]


@pytest.mark.parametrize(("union", "value"), UNION_CASES)
def test_tagged_union_picks_the_member(union: object, value: Base) -> None:
    assert msgspec.json.decode(msgspec.json.encode(value), type=union) == value


# --- JSON as the original (pydantic) server and clients wrote it ------------------------------


def test_original_chat_stream_chunks_decode() -> None:
    lines = [
        b'{"event": {"event_type": "start", "delta": "", "logprobs": null, "stop_reason": null}}',
        b'{"event": {"event_type": "progress", "delta": {"content": "", "parse_status": "started"},'
        b' "logprobs": null, "stop_reason": null}}',
        b'{"event": {"event_type": "progress", "delta": {"content": "brave_search.call(", '
        b'"parse_status": "in_progress"}, "logprobs": null, "stop_reason": null}}',
        b'{"event": {"event_type": "progress", "delta": {"content": {"call_id": "5e0b", '
        b'"tool_name": "brave_search", "arguments": {"query": "llamas"}}, "parse_status": "success"}, '
        b'"logprobs": null, "stop_reason": "end_of_message"}}',
        b'{"event": {"event_type": "complete", "delta": "", "logprobs": null, "stop_reason": "end_of_message"}}',
    ]
    events = [msgspec.json.decode(line, type=ChatCompletionResponseStreamChunk).event for line in lines]
    assert [e.event_type for e in events] == ["start", "progress", "progress", "progress", "complete"]
    assert events[0].delta == ""
    assert events[1].delta == ToolCallDelta(content="", parse_status=ToolCallParseStatus.started)
    assert events[2].delta == ToolCallDelta(content="brave_search.call(", parse_status=ToolCallParseStatus.in_progress)
    assert events[3].delta == ToolCallDelta(
        content=ToolCall(call_id="5e0b", tool_name="brave_search", arguments={"query": "llamas"}),
        parse_status=ToolCallParseStatus.success,
    )
    assert events[3].delta.content.tool_name == BuiltinTool.brave_search
    assert events[4].stop_reason is StopReason.end_of_message


def test_original_chat_completion_response_decodes() -> None:
    body = (
        b'{"completion_message": {"role": "assistant", "content": "4", "stop_reason": "end_of_turn",'
        b' "tool_calls": []}, "logprobs": [{"logprobs_by_token": {"4": -0.0001}}]}'
    )
    assert msgspec.json.decode(body, type=ChatCompletionResponse) == ChatCompletionResponse(
        completion_message=CompletionMessage(content="4", stop_reason=StopReason.end_of_turn),
        logprobs=[TokenLogProbs(logprobs_by_token={"4": -0.0001})],
    )


def test_original_shield_definition_uses_integer_action() -> None:
    body = (
        b'{"shield_type": "llama_guard", "description": null, "parameters": null,'
        b' "on_violation_action": 2, "execution_config": null}'
    )
    shield = msgspec.json.decode(body, type=ShieldDefinition)
    assert shield.on_violation_action is OnViolationAction.RAISE
    assert shield.shield_type == BuiltinShield.llama_guard
    assert msgspec.json.encode(ShieldDefinition(shield_type="x", on_violation_action=OnViolationAction.IGNORE)) == (
        b'{"shield_type":"x","description":null,"parameters":null,"on_violation_action":0,"execution_config":null}'
    )


def test_original_memory_bank_decodes() -> None:
    body = (
        b'{"bank_id": "3f1c", "name": "docs", "config": {"type": "vector", "embedding_model":'
        b' "all-MiniLM-L6-v2", "chunk_size_in_tokens": 512, "overlap_size_in_tokens": null}, "url": null}'
    )
    assert msgspec.json.decode(body, type=MemoryBank) == MemoryBank(bank_id="3f1c", name="docs", config=VECTOR)
    graph = msgspec.json.decode(b'{"bank_id": "g", "name": "n", "config": {"type": "graph"}}', type=MemoryBank)
    assert graph.config == GraphMemoryBankConfig()


def test_original_agent_config_decodes() -> None:
    body = b"""{
      "sampling_params": {"strategy": "greedy", "temperature": 0.0, "top_p": 0.95, "top_k": 0,
                          "max_tokens": 0, "repetition_penalty": 1.0},
      "input_shields": [{"shield_type": "llama_guard", "on_violation_action": 2}],
      "output_shields": [],
      "tools": [
        {"type": "brave_search", "input_shields": [], "output_shields": [], "remote_execution": null},
        {"type": "code_interpreter", "enable_inline_code_execution": true},
        {"type": "function_call", "function_name": "get_boiling_point", "description": "Boiling point",
         "parameters": {"liquid_name": {"param_type": "str", "description": "Liquid", "required": true}}},
        {"type": "memory", "memory_bank_configs": [{"type": "vector", "bank_id": "b1"},
                                                   {"type": "keyvalue", "bank_id": "b2", "keys": ["k"]}],
         "max_tokens_in_context": 2048, "max_chunks": 5}
      ],
      "tool_choice": "auto", "tool_prompt_format": "json",
      "model": "Meta-Llama3.1-8B-Instruct", "instructions": "You are a helpful assistant"
    }"""
    config = msgspec.json.decode(body, type=AgentConfig)
    assert [type(t).__name__ for t in config.tools] == [
        "BraveSearchToolDefinition",
        "CodeInterpreterToolDefinition",
        "FunctionCallToolDefinition",
        "MemoryToolDefinition",
    ]
    assert config.tools[2].parameters["liquid_name"].description == "Liquid"
    assert config.tools[3] == MemoryToolDefinition(
        memory_bank_configs=[
            AgenticSystemVectorMemoryBankConfig(bank_id="b1"),
            AgenticSystemKeyValueMemoryBankConfig(bank_id="b2", keys=["k"]),
        ],
        max_tokens_in_context=2048,
        max_chunks=5,
    )
    assert config.tools[3].query_generator_config == DefaultMemoryQueryGeneratorConfig(sep=" ")
    assert config.max_infer_iters == 10
    assert config.input_shields[0].on_violation_action is OnViolationAction.RAISE


def test_original_turn_stream_decodes() -> None:
    # pydantic wrote naive datetimes (no offset); msgspec reads them as naive datetimes.
    lines = [
        b'{"event": {"payload": {"event_type": "turn_start", "turn_id": "t1"}}}',
        b'{"event": {"payload": {"event_type": "step_start", "step_type": "inference", "step_id": "s1",'
        b' "metadata": {}}}}',
        b'{"event": {"payload": {"event_type": "step_progress", "step_type": "inference", "step_id": "s1",'
        b' "model_response_text_delta": "Hel", "tool_call_delta": null, "tool_response_text_delta": null}}}',
        b'{"event": {"payload": {"event_type": "step_complete", "step_type": "inference", "step_details":'
        b' {"turn_id": "t1", "step_id": "s1", "started_at": "2024-09-04T10:11:12.345678",'
        b' "completed_at": null, "step_type": "inference", "model_response": {"role": "assistant",'
        b' "content": "Hello", "stop_reason": "end_of_turn", "tool_calls": []}}}}}',
        b'{"event": {"payload": {"event_type": "turn_complete", "turn": {"turn_id": "t1", "session_id": "s",'
        b' "input_messages": [{"role": "user", "content": "Hi", "context": null}], "steps": [],'
        b' "output_message": {"role": "assistant", "content": "Hello", "stop_reason": "end_of_turn",'
        b' "tool_calls": []}, "output_attachments": [], "started_at": "2024-09-04T10:11:12Z",'
        b' "completed_at": "2024-09-04T10:11:13+00:00"}}}}',
    ]
    payloads = [msgspec.json.decode(line, type=AgenticSystemTurnResponseStreamChunk).event.payload for line in lines]
    assert [type(p).__name__.removeprefix("AgenticSystemTurnResponse") for p in payloads] == [
        "TurnStartPayload",
        "StepStartPayload",
        "StepProgressPayload",
        "StepCompletePayload",
        "TurnCompletePayload",
    ]
    assert payloads[2].model_response_text_delta == "Hel"
    step = payloads[3].step_details
    assert step == InferenceStep(
        turn_id="t1",
        step_id="s1",
        started_at=datetime(2024, 9, 4, 10, 11, 12, 345678),
        model_response=CompletionMessage(content="Hello", stop_reason=StopReason.end_of_turn),
    )
    assert payloads[4].turn.completed_at == T1
    assert payloads[4].turn.input_messages == [UserMessage(content="Hi")]


def test_encoded_shapes_are_tagged_like_the_original() -> None:
    assert msgspec.json.encode(STEPS[3]) == (
        b'{"step_type":"memory_retrieval","turn_id":"t1","step_id":"s4","started_at":null,'
        b'"completed_at":null,"memory_bank_ids":["b1"],"inserted_context":"ctx"}'
    )
    assert msgspec.json.encode(EXAMPLES["AgenticSystemTurnResponseEvent"]) == (
        b'{"payload":{"event_type":"turn_start","turn_id":"t1"}}'
    )
    assert msgspec.json.encode(AgenticSystemKeyValueMemoryBankConfig(bank_id="b2", keys=["k"])) == (
        b'{"type":"keyvalue","bank_id":"b2","keys":["k"]}'
    )
    assert msgspec.json.encode(STEPS[0]).startswith(b'{"step_type":"inference","turn_id":"t1","step_id":"s1",'
                                                    b'"started_at":"2024-09-04T10:11:12.345678Z"')


def test_request_defaults_match_the_original() -> None:
    request = msgspec.json.decode(b'{"model": "m", "messages": [{"role": "user", "content": "hi"}]}', type=ChatCompletionRequest)
    assert request == ChatCompletionRequest(model="m", messages=[UserMessage(content="hi")])
    assert (request.sampling_params, request.tools, request.stream, request.logprobs) == (SamplingParams(), [], False, None)
    # No tool_prompt_format is the model's own (the original defaulted to json, which 3.2/3.3 refuse: #16).
    assert (request.tool_choice, request.tool_prompt_format) == (ToolChoice.auto, None)
    # Defaults are per instance, never shared.
    assert ChatCompletionRequest(model="m", messages=[]).sampling_params is not request.sampling_params
    turn = msgspec.json.decode(
        b'{"agent_id": "a", "session_id": "s", "messages": [{"role": "user", "content": "hi"}]}',
        type=AgenticSystemTurnCreateRequest,
    )
    assert (turn.stream, turn.tools, turn.sampling_params, turn.instructions) == (False, None, None, None)


def test_turn_input_rejects_assistant_messages() -> None:
    body = b'{"agent_id": "a", "session_id": "s", "messages": [{"role": "assistant", "content": "x", "stop_reason": "end_of_turn"}]}'
    with pytest.raises(InvalidRequestError) as info:
        decode_request(AgenticSystemTurnCreateRequest, body)
    assert info.value.field == "messages[0].role"


# --- decode_request: errors name the field; the legacy wrapper is accepted --------------------

BAD_REQUESTS = [
    pytest.param(b'{"messages": [{"role": "user", "content": "hi"}]}', "model", "Missing required field `model`", id="missing"),
    pytest.param(b'{"model": "m", "messages": [{"role": "user", "content": "hi"}], "temperature": 1}', "temperature", "Unknown field `temperature`", id="unknown-top"),
    pytest.param(
        b'{"model": "m", "messages": [{"role": "user", "content": "hi", "extra": 1}]}',
        "messages[0].extra",
        "Unknown field `messages[0].extra`",
        id="unknown-nested",
    ),
    pytest.param(
        b'{"model": "m", "messages": [{"role": "robot", "content": "hi"}]}',
        "messages[0].role",
        "Invalid `messages[0].role`: Invalid value 'robot'",
        id="bad-tag",
    ),
    pytest.param(
        b'{"model": "m", "messages": [{"role": "user", "content": "hi"}], "sampling_params": {"temperature": -1}}',
        "sampling_params.temperature",
        "Invalid `sampling_params.temperature`: Expected `float` >= 0.0",
        id="constraint",
    ),
    pytest.param(
        b'{"model": "m", "messages": [{"role": "user", "content": 3}]}',
        "messages[0].content",
        "Invalid `messages[0].content`: Expected `str | array`, got `int`",
        id="wrong-type",
    ),
    pytest.param(b'{"model": "m", "messages": []}', "messages", "Invalid `messages`: Expected `array` of length >= 1", id="no-messages"),
    pytest.param(b'{"model": 7, "messages": []}', "model", "Invalid `model`: Expected `str`, got `int`", id="model-int"),
    pytest.param(
        b'{"request": {"model": "m"}}', "request.messages", "Missing required field `request.messages`", id="wrapped-missing"
    ),
    pytest.param(b"[1, 2]", None, "Invalid request: Expected `object`, got `array`", id="not-object"),
    pytest.param(b'{"model": "m", ', None, "Malformed JSON body: Input data was truncated", id="truncated"),
    pytest.param(b'{"model": "\xff", "messages": []}', None, "Malformed JSON body: Invalid UTF-8 encoded string", id="bad-utf8"),
]


@pytest.mark.parametrize(("body", "field", "message"), BAD_REQUESTS)
def test_bad_request_names_the_field(body: bytes, field: str | None, message: str) -> None:
    with pytest.raises(InvalidRequestError) as info:
        decode_request(ChatCompletionRequest, body)
    assert (info.value.field, str(info.value)) == (field, message)
    assert info.value.status == 400


REQUEST_TYPES = {name: method.request_type for name, method in METHODS.items()}
REQUEST_EXAMPLES = [v for v in EXAMPLES.values() if type(v) in set(REQUEST_TYPES.values())]


def test_every_route_has_an_example_request() -> None:
    assert {type(v) for v in REQUEST_EXAMPLES} == set(REQUEST_TYPES.values())


@pytest.mark.parametrize("value", REQUEST_EXAMPLES, ids=lambda v: type(v).__name__)
def test_decode_request_flat_and_wrapped(value: Base) -> None:
    flat = msgspec.json.encode(value)
    assert decode_request(type(value), flat) == value
    assert decode_request(type(value), b'{"request": ' + flat + b"}") == value


@pytest.mark.parametrize("value", REQUEST_EXAMPLES, ids=lambda v: type(v).__name__)
def test_schema_accepts_what_the_decoder_accepts(value: Base) -> None:
    schema = json_schema(type(value))
    body = json.loads(msgspec.json.encode(value))
    jsonschema.validate(body, schema)
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate({**body, "no_such_field": 1}, schema)


def test_empty_body_is_an_empty_request() -> None:
    assert decode_request(ListMemoryBanksRequest, b"") == ListMemoryBanksRequest()
    assert decode_request(ModelsListRequest, b" \n") == ModelsListRequest()
    assert decode_request(ModelsListRequest, b'{"request": {}}') == ModelsListRequest()
    with pytest.raises(InvalidRequestError) as info:
        decode_request(ModelsGetRequest, b"")
    assert info.value.field == "core_model_id"


def test_decode_request_reads_any_buffer() -> None:
    # JSON-RPC keeps `params` as msgspec.Raw and decodes it once the method is known.
    params = msgspec.json.decode(b'{"params": {"bank_id": "b1"}}', type=dict[str, msgspec.Raw])["params"]
    assert decode_request(GetMemoryBankRequest, params) == GetMemoryBankRequest(bank_id="b1")
    assert decode_request(GetMemoryBankRequest, memoryview(b'{"bank_id": "b2"}')) == GetMemoryBankRequest(bank_id="b2")
    assert decode_request(ModelsListRequest, msgspec.Raw(b"")) == ModelsListRequest()


def test_original_wrapped_chat_request_decodes() -> None:
    # 0.0.13's client posted {"request": ChatCompletionRequest.json()} with every field present.
    body = b"""{"request": {"model": "Meta-Llama3.1-8B-Instruct",
      "messages": [{"role": "user", "content": "hello world, write me a 2 sentence poem about the moon",
                    "context": null}],
      "sampling_params": {"strategy": "greedy", "temperature": 0.0, "top_p": 0.95, "top_k": 0,
                          "max_tokens": 0, "repetition_penalty": 1.0},
      "tools": [], "tool_choice": "auto", "tool_prompt_format": "json", "stream": true, "logprobs": null}}"""
    request = decode_request(ChatCompletionRequest, body)
    assert request == ChatCompletionRequest(
        model="Meta-Llama3.1-8B-Instruct",
        messages=[UserMessage(content="hello world, write me a 2 sentence poem about the moon")],
        tool_prompt_format=ToolPromptFormat.json,
        stream=True,
    )
