"""`meta-reference` agentic system: agents, sessions and turns over this stack's other APIs.

    async with MetaReferenceAgenticSystem(AgenticSystemConfig(), stack) as agents:
        agent_id = (await agents.create_agentic_system(AgenticSystemCreateRequest(agent_config=...))).agent_id
        session_id = (await agents.create_agentic_system_session(...)).session_id
        turn = await agents.create_agentic_system_turn(AgenticSystemTurnCreateRequest(..., stream=False))

The turn loop is turn.py; storage store.py (SQLite under ~/.llama/runtime/agents, so a restart
keeps every agent, session and finished turn, and the next turn sees the earlier ones); the builtin
tools tools.py, search.py and sandbox.py; retrieval rag.py; shields shields.py.

Inference, safety and memory are reached through `stack.api(...)`, and only the features that need
them need them: an agent with shields needs safety, one with a memory tool (or a turn with
attachments, or a session with attached banks) needs memory. Asking for such a feature on a stack
without that API is a 501 naming it, before anything changes; plain turns work without either.

Errors (all before a turn starts, so a stream never opens on a bad request): a malformed id 400, an
unknown agent, session, turn, step or bank 404; a config this provider cannot run (two tools of
one kind, a function named like a builtin, max_infer_iters out of range, the `custom` query
generator or an `llm` one whose template does not parse, code_interpreter without bubblewrap) 400;
a config whose every turn would fail, with the error the turn would raise (a model, or an `llm` query
generator's model, not served: 404; a shield type safety does not know or configure, tools on a
model without tool calling, instructions past the model's context: 400 naming the config field);
an attachment that cannot be read (a file:// URL, a fetch that fails) 400, one past 16 MiB 413.
Turns of one session run one at a time, in arrival order (the second sees the first's messages).
"""

from __future__ import annotations

import logging
import os
import shutil
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import anyio
import anyio.to_thread
import msgspec

from llama_core.config import AgenticSystemConfig
from llama_core.errors import InvalidRequestError, LlamaError, NotConfiguredError, NotFoundError, UnsupportedError, shown
from llama_core.paths import config_dir
from llama_core.providers.agents import files, query, rag, sandbox
from llama_core.providers.agents.store import AgentStore, check_id
from llama_core.providers.agents.tools import ToolContext
from llama_core.providers.agents.turn import (
    TurnInput,
    TurnRun,
    attachments_to_bank,
    has_code_interpreter,
    kind,
    memory_tool,
    tool_definitions,
)
from llama_core.types.agents import (
    AgentConfig,
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
    AgenticSystemTurnResponseEvent,
    AgenticSystemTurnResponseStreamChunk,
    AgenticSystemTurnResponseTurnCompletePayload,
    Attachment,
    CodeInterpreterToolDefinition,
    FunctionCallToolDefinition,
    LLMMemoryQueryGeneratorConfig,
    Session,
    Turn,
)
from llama_core.types.inference import ChatCompletionRequest
from llama_core.types.memory import DropMemoryBankRequest, GetMemoryBankRequest, MemoryBank
from llama_core.types.messages import SystemMessage, UserMessage, builtin_tool
from llama_core.types.safety import ShieldDefinition

log = logging.getLogger(__name__)

MAX_INFER_ITERS = 100
SESSION_NAME_CHARS = 256

# Overridable per turn: the request field and the AgentConfig field share the name.
# A chat request's field at fault, as the AgentConfig field it came from.
CHAT_FIELDS = {"messages": "instructions"}

OVERRIDES = ("instructions", "sampling_params", "input_shields", "output_shields", "tools", "tool_choice", "tool_prompt_format")


class MetaReferenceAgenticSystem:
    """apis.AgenticSystem over `stack`'s inference, safety and memory."""

    def __init__(self, config: AgenticSystemConfig, stack: Any) -> None:
        self.config = config
        self.stack = stack
        self.root = config_dir() / "runtime" / "agents"
        self.store: AgentStore | None = None
        self._locks: dict[str, anyio.Lock] = {}

    async def __aenter__(self) -> MetaReferenceAgenticSystem:
        self.store = await anyio.to_thread.run_sync(AgentStore, self.root)
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        store, self.store = self.store, None
        if store is not None:
            with anyio.CancelScope(shield=True):
                await anyio.to_thread.run_sync(store.close)  # waits for a call in progress

    async def _db(self, method: str, *args: Any) -> Any:
        if self.store is None:
            raise NotConfiguredError("The agentic_system provider is not started.")
        return await anyio.to_thread.run_sync(getattr(self.store, method), *args)

    # --- what a config needs ------------------------------------------------------------------

    def _need(self, api: str, feature: str) -> None:
        reason = self.stack.unserved_reason(api)
        if reason is not None:
            raise NotConfiguredError(f"{feature} cannot work without the {api} API. {reason}")

    async def _check_config(self, config: AgentConfig, field: str) -> None:
        """400/404/501 for a config this provider cannot run; nothing changes on failure."""
        if not 1 <= config.max_infer_iters <= MAX_INFER_ITERS:
            raise InvalidRequestError(
                f"max_infer_iters must be between 1 and {MAX_INFER_ITERS}, got {config.max_infer_iters}.",
                field=f"{field}.max_infer_iters",
            )
        kinds: set[str] = set()
        for i, tool in enumerate(config.tools):
            where = f"{field}.tools[{i}]"
            name = tool.function_name if isinstance(tool, FunctionCallToolDefinition) else kind(tool)
            if isinstance(tool, FunctionCallToolDefinition) and builtin_tool(name) is not None:
                raise InvalidRequestError(f"A function_call tool cannot be named {name}, a builtin tool's name.", field=f"{where}.function_name")
            if name in kinds:
                raise InvalidRequestError(f"The tool {shown(name, 60)} is given twice.", field=where)
            kinds.add(name)
            if getattr(tool, "remote_execution", None) is not None:
                raise UnsupportedError("remote_execution of tools is not supported by this provider.", field=f"{where}.remote_execution")
            if isinstance(tool, CodeInterpreterToolDefinition):
                try:
                    sandbox.bwrap()
                except UnsupportedError as e:
                    raise UnsupportedError(e.message, field=where) from None
            if tool.input_shields or tool.output_shields:
                self._need("safety", f"The shields of {where}")
            for name in ("input_shields", "output_shields"):
                self._check_shields(getattr(tool, name), f"{where}.{name}")
        for name in ("input_shields", "output_shields"):
            if getattr(config, name):
                self._need("safety", f"{field}.{name}")
                self._check_shields(getattr(config, name), f"{field}.{name}")
        await self._check_model(config, field)
        tool = memory_tool(config)
        if tool is not None:
            where = f"{field}.tools[{config.tools.index(tool)}]"
            query.check_generator(tool.query_generator_config, f"{where}.query_generator_config")
            generator = tool.query_generator_config
            if isinstance(generator, LLMMemoryQueryGeneratorConfig):
                try:
                    await self._check_chat(ChatCompletionRequest(model=generator.model, messages=[UserMessage(content="q")]))
                except NotFoundError as e:
                    raise NotFoundError(f"{e.message} ({where}.query_generator_config.model)") from None
            if tool.max_chunks < 1 or tool.max_tokens_in_context < 1:
                raise InvalidRequestError("max_chunks and max_tokens_in_context must be at least 1.", field=where)
            self._need("memory", f"The memory tool ({where})")
            await self._check_banks([b.bank_id for b in tool.memory_bank_configs], f"{where}.memory_bank_configs")

    def _check_shields(self, definitions: list[ShieldDefinition], field: str) -> None:
        """The turn's own 400 for a shield type the safety provider does not know or configure."""
        row_for = getattr(self.stack.api("safety"), "row_for", None) if definitions else None
        for i, definition in enumerate(definitions if row_for is not None else ()):
            try:
                row_for(definition, i)
            except InvalidRequestError as e:
                e.field = f"{field}[{i}].shield_type"
                raise

    async def _check_model(self, config: AgentConfig, field: str) -> None:
        """The turn's own 404 for a model not served and 400 for tools on a model without tool
        calling (field `tools`), or instructions past its context (field `instructions`)."""
        system = [SystemMessage(content=config.instructions)] if config.instructions else []
        request = ChatCompletionRequest(
            model=config.model, messages=system, tools=tool_definitions(config), tool_choice=config.tool_choice,
            tool_prompt_format=config.tool_prompt_format,
        )  # fmt: skip
        try:
            await self._check_chat(request)
        except InvalidRequestError as e:
            if e.field:
                e.field = f"{field}.{CHAT_FIELDS.get(e.field, e.field)}"
            raise

    async def _check_chat(self, request: ChatCompletionRequest) -> None:
        """The inference provider's check of a chat request, where it has one (meta-reference)."""
        if self.stack.unserved_reason("inference") is not None:
            return
        check = getattr(self.stack.api("inference"), "check_chat", None)
        if check is not None:
            await check(request)

    async def _check_banks(self, bank_ids: list[str], field: str) -> None:
        memory = self.stack.api("memory")
        for i, bank_id in enumerate(bank_ids):
            if await memory.get_memory_bank(GetMemoryBankRequest(bank_id=bank_id)) is None:
                raise NotFoundError(f"Unknown memory bank '{shown(bank_id, 80)}' ({field}[{i}]).")

    # --- agents and sessions ------------------------------------------------------------------

    async def create_agentic_system(self, request: AgenticSystemCreateRequest) -> AgenticSystemCreateResponse:
        """A new agent from `request.agent_config`."""
        await self._check_config(request.agent_config, "agent_config")
        return AgenticSystemCreateResponse(agent_id=await self._db("create_agent", request.agent_config))

    async def delete_agentic_system(self, request: AgenticSystemDeleteRequest) -> None:
        """Delete the agent and its sessions (and the sessions' scratch folders and own memory banks)."""
        for session_id, bank in await self._db("delete_agent", request.agent_id):
            await self._forget_session(session_id, bank)

    async def _forget_session(self, session_id: str, bank: MemoryBank | None) -> None:
        """What a deleted session leaves outside the store: its lock, scratch folder and own bank."""
        self._locks.pop(session_id, None)
        await anyio.to_thread.run_sync(_remove_tree, self.root / "scratch" / session_id)
        if bank is None or self.stack.unserved_reason("memory") is not None:
            return
        try:
            await self.stack.api("memory").drop_memory_bank(DropMemoryBankRequest(bank_id=bank.bank_id))
        except NotFoundError:
            pass  # dropped already

    async def create_agentic_system_session(self, request: AgenticSystemSessionCreateRequest) -> AgenticSystemSessionCreateResponse:
        """A new, empty session of the agent."""
        name = request.session_name
        if not name or len(name) > SESSION_NAME_CHARS:
            raise InvalidRequestError(f"session_name must have 1 to {SESSION_NAME_CHARS} characters.", field="session_name")
        return AgenticSystemSessionCreateResponse(session_id=await self._db("create_session", request.agent_id, name))

    async def get_agentic_system_session(self, request: AgenticSystemSessionGetRequest) -> Session:
        """The session with its turns (only `turn_ids`, if given)."""
        return await self._db("session", request.agent_id, request.session_id, request.turn_ids)

    async def delete_agentic_system_session(self, request: AgenticSystemSessionDeleteRequest) -> None:
        """Delete the session, its turns, its scratch folder and its own memory bank."""
        bank = await self._db("delete_session", request.agent_id, request.session_id)
        await self._forget_session(request.session_id, bank)

    async def attach_memory_bank_to_agentic_system(self, request: AgenticSystemMemoryBankAttachRequest) -> None:
        """Make the session's turns retrieve from these banks too."""
        self._need("memory", "memory_bank/attach")
        await self._db("session", request.agent_id, request.session_id, [])  # 400/404 first
        await self._check_banks(request.memory_bank_ids, "memory_bank_ids")
        await self._db("update_attached", request.agent_id, request.session_id, request.memory_bank_ids, [])

    async def detach_memory_bank_from_agentic_system(self, request: AgenticSystemMemoryBankDetachRequest) -> None:
        """Stop retrieving from these banks in the session."""
        await self._db("update_attached", request.agent_id, request.session_id, [], request.memory_bank_ids)

    # --- turns and steps ----------------------------------------------------------------------

    async def get_agentic_system_turn(self, request: AgenticSystemTurnGetRequest) -> Turn:
        """A finished turn."""
        return await self._db("turn", request.agent_id, request.turn_id)

    async def get_agentic_system_step(self, request: AgenticSystemStepGetRequest) -> AgenticSystemStepResponse:
        """One step of a finished turn."""
        check_id(request.step_id, "step_id")
        turn = await self._db("turn", request.agent_id, request.turn_id)
        for step in turn.steps:
            if step.step_id == request.step_id:
                return AgenticSystemStepResponse(step=step)
        raise NotFoundError(f"Unknown step '{request.step_id}' of turn '{request.turn_id}'.")

    async def create_agentic_system_turn(
        self, request: AgenticSystemTurnCreateRequest
    ) -> Turn | AsyncIterator[AgenticSystemTurnResponseStreamChunk]:
        """Run one turn: the finished Turn, or its event stream (turn_start ... turn_complete)."""
        agent = await self._db("agent", request.agent_id)
        self._need("inference", "A turn")
        await self._db("session", request.agent_id, request.session_id, [])  # 400/404 before the stream opens
        if not request.messages:
            raise InvalidRequestError("A turn needs at least one message.", field="messages")
        overrides = {name: getattr(request, name) for name in OVERRIDES if getattr(request, name) is not None}
        config = msgspec.structs.replace(agent, **overrides)
        if overrides:
            await self._check_config(config, "request")
        to_bank = bool(request.attachments) and attachments_to_bank(config)
        if to_bank:
            self._need("memory", "A turn's attachments")
        read = await files.read_attachments(request.attachments or [])  # 400/413 before the stream opens
        turn_files = read if has_code_interpreter(config) else []
        to_bank_attachments = [f.as_attachment(a) for f, a in zip(read, request.attachments or [], strict=True)] if to_bank else []
        events = self._turn_events(request, config, to_bank_attachments, turn_files)
        if request.stream:
            return self._chunks(events)
        async with _closing(events):
            async for payload in events:
                if isinstance(payload, AgenticSystemTurnResponseTurnCompletePayload):
                    return payload.turn
        raise LlamaError("The turn ended without a turn_complete event.")

    async def _chunks(self, events: AsyncIterator[Any]) -> AsyncIterator[AgenticSystemTurnResponseStreamChunk]:
        async with _closing(events):
            async for payload in events:
                yield AgenticSystemTurnResponseStreamChunk(event=AgenticSystemTurnResponseEvent(payload=payload))

    async def _turn_events(
        self, request: AgenticSystemTurnCreateRequest, config: AgentConfig,
        attachments: list[Attachment], turn_files: list[files.File],
    ) -> AsyncIterator[Any]:  # fmt: skip
        # One turn per session at a time: the next one waits, then sees this one in its history.
        lock = self._locks.setdefault(request.session_id, anyio.Lock())
        async with lock:
            session = await self._db("session", request.agent_id, request.session_id)
            attached = await self._db("attached_banks", request.agent_id, request.session_id)
            if attached:
                self._need("memory", "The session's attached memory banks")
            bank = session.memory_bank
            if attachments and bank is None:
                bank = await rag.create_session_bank(self.stack, session.session_id)
                await self._db("set_session_bank", request.agent_id, session.session_id, bank)
            run = TurnRun(
                TurnInput(
                    stack=self.stack, agent_id=request.agent_id, session_id=session.session_id, config=config,
                    messages=request.messages, attachments=attachments, files=turn_files, earlier=session.turns,
                    session_bank=bank, attached=attached,
                    tools=ToolContext(self.config, self.root / "scratch" / session.session_id),
                )
            )  # fmt: skip
            events = run.events()
            async with _closing(events):
                async for payload in events:
                    if isinstance(payload, AgenticSystemTurnResponseTurnCompletePayload):
                        await self._db("add_turn", request.agent_id, payload.turn)
                    yield payload


def _remove_tree(path: Path) -> None:
    """Remove the folder `path` and all in it, if there. Sandboxed code runs as our user and may
    have taken the bits off a folder of its own: each is given rwx back first (never through a link).
    What still cannot go is logged: the session is gone from the store by then."""
    if path.is_symlink() or not path.is_dir():
        return
    path.chmod(0o700)
    for folder, subfolders, _ in os.walk(path):
        for name in subfolders:
            if not os.path.islink(sub := os.path.join(folder, name)):
                os.chmod(sub, 0o700)

    def report(_function: Any, failed: str, exc_info: Any) -> None:
        log.warning("could not remove %s of a deleted session: %s", failed, exc_info[1])

    shutil.rmtree(path, onerror=report)


class _closing:
    """`async with _closing(agen):` closes the generator on the way out, even when cancelled."""

    def __init__(self, generator: Any) -> None:
        self.generator = generator

    async def __aenter__(self) -> Any:
        return self.generator

    async def __aexit__(self, *exc_info: object) -> None:
        with anyio.CancelScope(shield=True):
            await self.generator.aclose()
