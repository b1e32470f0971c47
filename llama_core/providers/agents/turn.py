"""One turn of an agent: the reference's algorithm, as an async generator of stream event payloads.

    turn_start
    1. input shields          shield_call step (touchpoint "user-input"); a RAISE violation ends the
                              turn with the violation message
    2. memory retrieval       attachments inserted into the session's bank; the query generated
                              (query.py); the memory tool's banks, the attached banks and the session
                              bank queried; the context set on the last user message
                              (memory_retrieval step)
       attachments as files   with code_interpreter: the attachments written into the session's
                              scratch folder and an ipython message telling their paths appended
                              (files.py); they then go to retrieval only if a memory tool is set too
    3. inference and tools    inference step (text and tool-call deltas); builtin calls run in a
                              tool_execution step (tool-call and tool-response deltas) and the loop
                              goes on; it stops when no call is left, when a custom (function_call)
                              call is made (it goes back to the client, which answers with a
                              ToolResponseMessage in a new turn), when an answer runs out of tokens,
                              or after max_infer_iters inferences.
                              A tool's own shields run on its call (input) and on its result
                              (output): a shield_call step (touchpoint "tool") follows the
                              tool_execution step; a RAISE violation withholds the result (the step
                              records the violation message instead) and ends the turn with it
    4. output shields         shield_call step (touchpoint "assistant-output") on the conversation
                              with the answer; a RAISE violation replaces the answer
    turn_complete {turn}

A shield_call step comes for each phase that has shields, violation or not (then its response is
a clean one of the first shield: `is_violation` false), as a step_start and a step_complete.

The model sees: the agent's instructions as the system prompt, the session's earlier turns
(`history`), then this turn's messages. Nothing is stored here: the provider stores the Turn of
turn_complete.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import anyio.to_thread
import msgspec

from llama_core.providers.agents import files, rag, shields
from llama_core.providers.agents.query import generate_query
from llama_core.providers.agents.store import new_id, now
from llama_core.providers.agents.tools import ToolContext, run_tool
from llama_core.types.agents import (
    AgentConfig,
    AgenticSystemMemoryBankConfig,
    AgenticSystemTurnResponseEventPayload,
    AgenticSystemTurnResponseStepCompletePayload,
    AgenticSystemTurnResponseStepProgressPayload,
    AgenticSystemTurnResponseStepStartPayload,
    AgenticSystemTurnResponseTurnCompletePayload,
    AgenticSystemTurnResponseTurnStartPayload,
    Attachment,
    CodeInterpreterToolDefinition,
    FunctionCallToolDefinition,
    InferenceStep,
    MemoryRetrievalStep,
    MemoryToolDefinition,
    ShieldCallStep,
    Step,
    StepType,
    ToolExecutionStep,
    Turn,
)
from llama_core.types.common import StopReason
from llama_core.types.folds import fold_chat
from llama_core.types.inference import (
    ChatCompletionRequest,
    ChatCompletionResponseEventType,
    ToolCallDelta,
    ToolCallParseStatus,
)
from llama_core.types.memory import MemoryBank
from llama_core.types.messages import (
    BuiltinTool,
    CompletionMessage,
    Message,
    SystemMessage,
    ToolCall,
    ToolDefinition,
    ToolResponse,
    ToolResponseMessage,
    UserMessage,
    builtin_tool,
)
from llama_core.types.safety import ShieldDefinition

Payload = AgenticSystemTurnResponseEventPayload


def history(turns: list[Turn]) -> list[Message]:
    """Earlier turns as the model saw them: inputs (without their RAG context), answers, tool
    results, and each shield violation as the assistant's reply."""
    messages: list[Message] = []
    for turn in turns:
        messages += [msgspec.structs.replace(m, context=None) if isinstance(m, UserMessage) else m for m in turn.input_messages]
        for step in turn.steps:
            if isinstance(step, InferenceStep):
                messages.append(step.model_response)
            elif isinstance(step, ToolExecutionStep):
                messages += [ToolResponseMessage(call_id=r.call_id, tool_name=r.tool_name, content=r.content) for r in step.tool_responses]
            elif isinstance(step, ShieldCallStep) and step.response.is_violation:
                text = step.response.violation_return_message or shields.DEFAULT_MESSAGE
                messages.append(CompletionMessage(content=text, stop_reason=StopReason.end_of_turn))
    return messages


def kind(struct: Any) -> str:
    """A tagged Struct's tag: a tool's `type`, a step's `step_type` (msgspec keeps it off the instance)."""
    return type(struct).__struct_config__.tag


def tool_definitions(config: AgentConfig) -> list[ToolDefinition]:
    """What inference offers the model: the builtins by name, function_call tools with their parameters."""
    defs = []
    for tool in config.tools:
        if isinstance(tool, FunctionCallToolDefinition):
            defs.append(ToolDefinition(tool_name=tool.function_name, description=tool.description, parameters=tool.parameters))
        elif not isinstance(tool, MemoryToolDefinition):
            defs.append(ToolDefinition(tool_name=kind(tool)))
    return defs


def memory_tool(config: AgentConfig) -> MemoryToolDefinition | None:
    return next((t for t in config.tools if isinstance(t, MemoryToolDefinition)), None)


def has_code_interpreter(config: AgentConfig) -> bool:
    return any(isinstance(t, CodeInterpreterToolDefinition) for t in config.tools)


def attachments_to_bank(config: AgentConfig) -> bool:
    """Whether a turn's attachments go to retrieval: always, but with code_interpreter only if a
    memory tool is set too (the interpreter gets them as files; the reference's later rule)."""
    return not has_code_interpreter(config) or memory_tool(config) is not None


@dataclass(slots=True, kw_only=True)
class TurnInput:
    """Everything one turn needs, loaded by the provider."""

    stack: Any
    agent_id: str
    session_id: str
    config: AgentConfig  # the agent's, with this turn's overrides
    messages: list[UserMessage | ToolResponseMessage]
    attachments: list[Attachment]  # for retrieval (inserted into the session bank)
    files: list[files.File]  # for the code interpreter (written into the scratch folder)
    earlier: list[Turn]
    session_bank: MemoryBank | None  # created by the provider when attachments arrive
    attached: list[str]  # bank ids attached to the session
    tools: ToolContext


@dataclass
class TurnRun:
    """The state of one running turn; `events()` runs it (each step leaves its result on self)."""

    t: TurnInput
    turn_id: str = field(default_factory=new_id)
    steps: list[Step] = field(default_factory=list)
    output_attachments: list[Attachment] = field(default_factory=list)
    _violation: CompletionMessage | None = None  # set by a RAISE violation: the turn's answer

    async def events(self) -> AsyncIterator[Payload]:
        t = self.t
        started = now()
        yield AgenticSystemTurnResponseTurnStartPayload(turn_id=self.turn_id)
        earlier = history(t.earlier)
        inputs: list[Message] = list(t.messages)
        output: CompletionMessage | None = None
        if t.config.input_shields:
            async for event in self._shield_step(earlier + inputs, t.config.input_shields, "user-input"):
                yield event
            output = self._violation
        if output is None:
            if t.attachments or memory_tool(t.config) or t.attached:
                async for event in self._memory_step(earlier, inputs):
                    yield event
                inputs = self._inputs
            if t.files:
                names = await anyio.to_thread.run_sync(files.write_files, t.files, t.tools.scratch)
                inputs = [*inputs, files.files_message(names)]
            async for event in self._infer_loop(earlier + inputs):
                yield event
            output = self._answer
            if self._violation is None and t.config.output_shields:
                async for event in self._shield_step(earlier + inputs + [output], t.config.output_shields, "assistant-output"):
                    yield event
                output = self._violation or output
        turn = Turn(
            turn_id=self.turn_id, session_id=t.session_id, input_messages=t.messages, steps=self.steps,
            output_message=output, output_attachments=self.output_attachments, started_at=started, completed_at=now(),
        )  # fmt: skip
        yield AgenticSystemTurnResponseTurnCompletePayload(turn=turn)

    # --- steps --------------------------------------------------------------------------------

    def _start(self, step_type: StepType, **metadata: Any) -> tuple[str, Any, Payload]:
        step_id = new_id()
        return step_id, now(), AgenticSystemTurnResponseStepStartPayload(step_type=step_type, step_id=step_id, metadata=metadata)

    def _complete(self, step: Step) -> Payload:
        self.steps.append(step)
        return AgenticSystemTurnResponseStepCompletePayload(step_type=StepType(kind(step)), step_details=step)

    async def _shield_step(self, messages: list[Message], defs: list[ShieldDefinition], touchpoint: str) -> AsyncIterator[Payload]:
        step_id, started, event = self._start(StepType.shield_call, touchpoint=touchpoint)
        yield event
        verdict = await shields.check(self.t.stack, messages, defs)
        yield self._shield_complete(step_id, started, verdict)

    def _shield_complete(self, step_id: str, started: Any, verdict: shields.Verdict) -> Payload:
        if verdict.violation:
            self._violation = CompletionMessage(content=verdict.message, stop_reason=StopReason.end_of_turn)
        return self._complete(
            ShieldCallStep(turn_id=self.turn_id, step_id=step_id, started_at=started, completed_at=now(), response=verdict.response)
        )

    async def _memory_step(self, earlier: list[Message], inputs: list[Message]) -> AsyncIterator[Payload]:
        t = self.t
        step_id, started, event = self._start(StepType.memory_retrieval)
        yield event
        tool = memory_tool(t.config) or MemoryToolDefinition()
        banks: list[AgenticSystemMemoryBankConfig | str] = [*tool.memory_bank_configs, *t.attached]
        if t.session_bank is not None:
            if t.attachments:
                await rag.insert_attachments(t.stack, t.session_bank, self.turn_id, t.attachments)
            banks.append(t.session_bank.bank_id)
        query = await generate_query(t.stack, tool.query_generator_config, list(t.messages), earlier + list(t.messages))
        context = await rag.retrieve(t.stack, tool, banks, query) if query.strip() else None
        self._inputs = inputs
        if context is not None:
            last_user = max((i for i, m in enumerate(inputs) if isinstance(m, UserMessage)), default=None)
            if last_user is not None:
                self._inputs = list(inputs)
                self._inputs[last_user] = msgspec.structs.replace(inputs[last_user], context=context)
        yield self._complete(
            MemoryRetrievalStep(
                turn_id=self.turn_id, step_id=step_id, started_at=started, completed_at=now(),
                memory_bank_ids=rag.bank_ids(banks), inserted_context=context or "",
            )
        )  # fmt: skip

    async def _infer_loop(self, messages: list[Message]) -> AsyncIterator[Payload]:
        config = self.t.config
        enabled = {kind(tool) for tool in config.tools if builtin_tool(kind(tool)) is not None}
        for _ in range(config.max_infer_iters):
            async for event in self._inference_step(messages):
                yield event
            message = self._answer
            messages = [*messages, message]
            if message.stop_reason == StopReason.out_of_tokens:
                return  # cut short: a call in it may be cut too (the reference stops here as well)
            if not message.tool_calls:
                if message.stop_reason == StopReason.end_of_message:
                    continue  # the model paused without a call: let it go on
                return
            if any(builtin_tool(call.tool_name) is None for call in message.tool_calls):
                return  # a custom tool: the client runs it and answers in its next turn
            async for event in self._tool_step(message.tool_calls, enabled):
                yield event
            if self._violation is not None:  # a tool's shield: the turn ends with its message
                self._answer = self._violation
                return
            messages += self._tool_messages

    async def _inference_step(self, messages: list[Message]) -> AsyncIterator[Payload]:
        config = self.t.config
        step_id, started, event = self._start(StepType.inference)
        yield event
        system = [SystemMessage(content=config.instructions)] if config.instructions else []
        request = ChatCompletionRequest(
            model=config.model, messages=system + messages, sampling_params=config.sampling_params,
            tools=tool_definitions(config), tool_choice=config.tool_choice,
            tool_prompt_format=config.tool_prompt_format, stream=True,
        )  # fmt: skip
        stream = await self.t.stack.api("inference").chat_completion(request)
        chunks = []
        try:
            async for chunk in stream:
                chunks.append(chunk)
                if chunk.event.event_type != ChatCompletionResponseEventType.progress:
                    continue
                delta = chunk.event.delta
                if isinstance(delta, ToolCallDelta):
                    yield self._progress(StepType.inference, step_id, tool_call_delta=delta)
                elif delta:
                    yield self._progress(StepType.inference, step_id, model_response_text_delta=delta)
        finally:
            aclose = getattr(stream, "aclose", None)
            if aclose is not None:
                await aclose()
        message = fold_chat(chunks).completion_message
        if message.tool_calls:  # as a non-streamed reply: a call's text is not also its content
            message = msgspec.structs.replace(message, content="")
        self._answer = message
        yield self._complete(
            InferenceStep(turn_id=self.turn_id, step_id=step_id, started_at=started, completed_at=now(), model_response=message)
        )

    async def _tool_step(self, calls: list[ToolCall], enabled: set[str]) -> AsyncIterator[Payload]:
        """The calls run in one tool_execution step; then, if any of their tools has shields, one
        shield_call step with the first RAISE violation (the calls after it are not run) or a clean verdict."""
        step_id, started, event = self._start(StepType.tool_execution)
        yield event
        responses: list[ToolResponse] = []
        verdicts: list[shields.Verdict] = []
        shields_started = None
        for call in calls:
            yield self._progress(
                StepType.tool_execution, step_id, tool_call_delta=ToolCallDelta(content=call, parse_status=ToolCallParseStatus.success)
            )
            tool = next((x for x in self.t.config.tools if kind(x) == call.tool_name), None)
            if tool is not None and (tool.input_shields or tool.output_shields) and shields_started is None:
                shields_started = now()
            content, verdict = await self._run_shielded(call, tool, enabled)
            responses.append(ToolResponse(call_id=call.call_id, tool_name=call.tool_name, content=content))
            yield self._progress(StepType.tool_execution, step_id, tool_response_text_delta=content)
            if verdict is not None:
                verdicts.append(verdict)
                if verdict.violation:
                    break
        self._tool_messages = [ToolResponseMessage(call_id=r.call_id, tool_name=r.tool_name, content=r.content) for r in responses]
        yield self._complete(
            ToolExecutionStep(
                turn_id=self.turn_id, step_id=step_id, started_at=started, completed_at=now(),
                tool_calls=calls[: len(responses)], tool_responses=responses,
            )
        )  # fmt: skip
        if verdicts:
            shield_id, _, event = self._start(StepType.shield_call, touchpoint="tool")
            yield event
            yield self._shield_complete(shield_id, shields_started, next((v for v in verdicts if v.violation), verdicts[0]))

    async def _run_shielded(self, call: ToolCall, tool: Any, enabled: set[str]) -> tuple[str, shields.Verdict | None]:
        """A builtin call's result between its tool's own input shields (on the call) and output
        shields (on the call and its result), and their verdict (None without shields). On a RAISE
        violation the result is the violation's message: what the tool answered goes nowhere."""
        t = self.t
        asked = CompletionMessage(content="", stop_reason=StopReason.end_of_message, tool_calls=[call])
        verdict = None
        if tool is not None and tool.input_shields:
            verdict = await shields.check(t.stack, [asked], tool.input_shields)
            if verdict.violation:
                return verdict.message, verdict
        output = await run_tool(call, enabled, t.tools)
        if tool is not None and tool.output_shields:
            answer = ToolResponseMessage(call_id=call.call_id, tool_name=call.tool_name, content=output.content)
            verdict = await shields.check(t.stack, [asked, answer], tool.output_shields)
            if verdict.violation:
                return verdict.message, verdict
        if call.tool_name == BuiltinTool.code_interpreter:
            self.output_attachments += output.attachments
        return output.content, verdict

    def _progress(self, step_type: StepType, step_id: str, **delta: Any) -> Payload:
        return AgenticSystemTurnResponseStepProgressPayload(step_type=step_type, step_id=step_id, **delta)
