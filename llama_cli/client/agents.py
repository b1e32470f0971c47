"""`python -m llama_cli.client.agents HOST PORT`: a short agent chat with a running stack, its steps streamed.

It creates an agent (the stack's first model unless `--model`; builtin tools with `--tool`, e.g.
`--tool brave_search --tool code_interpreter`) and a session, then sends each message as a turn and
prints the turn's events as they come, as the reference's EventLogger did:

    Initializing client for http://localhost:5000
    User> What is the capital of France?
    shield_call> No Violation
    memory_retrieval> fetched 812 bytes from ['<bank id>']
    inference> The capital of France is Paris.
    tool_execution> Tool:brave_search Args:{'query': '...'}
    tool_execution> Tool:brave_search Response:{"query": ...}
    CustomTool> get_boiling_point {'liquid_name': 'polyjuice'} (this client runs no custom tools)

With stdin a terminal it is interactive (empty line or Ctrl-D ends it); otherwise it sends one
message (`--message`, piped stdin, or DEFAULT_MESSAGE) and exits.

The demo model (SmolLM2-135M-Instruct) cannot call tools: `--tool` needs a Llama 3.1 or later model
(e.g. `llama download --model-id Llama3.2-1B-Instruct`); the stack refuses the agent otherwise.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from typing import Annotated, Any, Literal

from cyclopts import App, Parameter

from llama_cli.client import CYAN, GREEN, RED, YELLOW, ApiKey, ask, colour, host_url, run_client, stack_api_key

DEFAULT_MESSAGE = "Hello, who are you?"
INSTRUCTIONS = "You are a helpful assistant."

app = App(name="python -m llama_cli.client.agents", help_format="plaintext", result_action="return_value")


@app.default
def agents(
    host: Annotated[str, Parameter(help="Host of the stack server.")],
    port: Annotated[int, Parameter(help="Its port.")],
    *,
    model: Annotated[str | None, Parameter(help="The agent's model (default: the first the stack serves).")] = None,
    tool: Annotated[tuple[Literal["brave_search", "wolfram_alpha", "code_interpreter", "photogen"], ...], Parameter(help="A builtin tool to give the agent (repeatable): brave_search, wolfram_alpha, code_interpreter. Tools need a Llama 3.1+ model (e.g. `llama download --model-id Llama3.2-1B-Instruct`): the demo model SmolLM2-135M-Instruct cannot call tools.")] = (),
    message: Annotated[str | None, Parameter(help="The message (default: piped stdin, else a greeting).")] = None,
    max_tokens: Annotated[int, Parameter(help="Most tokens per inference (0: up to the context).")] = 0,
    api_key: ApiKey = None,
) -> None:
    """Create an agent and a session on a stack, and chat with it turn by turn."""
    import anyio

    api_key = stack_api_key(api_key)
    interactive = message is None and sys.stdin.isatty()
    if message is None and not interactive:
        message = sys.stdin.read().strip() or DEFAULT_MESSAGE
    base_url = host_url(host, port)
    print(f"Initializing client for {base_url}")
    anyio.run(_chat, base_url, api_key, model, list(tool), message, max_tokens)


async def _chat(base_url: str, api_key: str | None, model: str | None, tools: list[str], message: str | None, max_tokens: int) -> None:
    import msgspec

    from llama_core.client import StackClient
    from llama_core.types import SamplingParams, UserMessage
    from llama_core.types.agents import (
        AgentConfig,
        AgenticSystemCreateRequest,
        AgenticSystemSessionCreateRequest,
        AgenticSystemTurnCreateRequest,
    )

    async with StackClient(base_url, api_key=api_key) as client:
        if model is None:
            models = await client.list_models()
            model = models[0].descriptor if models else "SmolLM2-135M-Instruct"
        config = msgspec.convert(
            {"model": model, "instructions": INSTRUCTIONS, "sampling_params": msgspec.to_builtins(SamplingParams(max_tokens=max_tokens)),
             "tools": [{"type": name} for name in tools]},
            AgentConfig,
        )  # fmt: skip
        agent_id = (await client.create_agentic_system(AgenticSystemCreateRequest(agent_config=config))).agent_id
        session = AgenticSystemSessionCreateRequest(agent_id=agent_id, session_name="client")
        session_id = (await client.create_agentic_system_session(session)).session_id
        while True:
            text = message if message is not None else ask()
            if not text:
                return
            if message is not None:
                print(f"User> {text}")
            request = AgenticSystemTurnCreateRequest(
                agent_id=agent_id, session_id=session_id, messages=[UserMessage(content=text)], stream=True
            )
            async for chunk in await client.create_agentic_system_turn(request):
                _log(chunk.event.payload)
            if message is not None:
                return


def _log(payload: Any) -> None:
    """Print one turn event the way the reference's EventLogger did."""
    from llama_core.types.agents import (
        AgenticSystemTurnResponseStepCompletePayload,
        AgenticSystemTurnResponseStepProgressPayload,
        AgenticSystemTurnResponseStepStartPayload,
        AgenticSystemTurnResponseTurnCompletePayload,
        InferenceStep,
        MemoryRetrievalStep,
        ShieldCallStep,
        ToolExecutionStep,
    )
    from llama_core.types.common import content_text
    from llama_core.types.messages import builtin_tool

    if isinstance(payload, AgenticSystemTurnResponseStepStartPayload) and payload.step_type == "inference":
        print(colour("inference> ", CYAN), end="", flush=True)
    elif isinstance(payload, AgenticSystemTurnResponseStepProgressPayload) and payload.model_response_text_delta:
        print(colour(payload.model_response_text_delta, YELLOW), end="", flush=True)
    elif isinstance(payload, AgenticSystemTurnResponseStepCompletePayload):
        step = payload.step_details
        if isinstance(step, InferenceStep):
            print()
            for call in step.model_response.tool_calls:
                if builtin_tool(call.tool_name) is None:
                    print(colour(f"CustomTool> {call.tool_name} {call.arguments} (this client runs no custom tools)", RED))
        elif isinstance(step, ToolExecutionStep):
            for call, response in zip(step.tool_calls, step.tool_responses, strict=False):
                print(colour(f"tool_execution> Tool:{call.tool_name} Args:{call.arguments}", GREEN))
                print(colour(f"tool_execution> Tool:{call.tool_name} Response:{content_text(response.content)}", GREEN))
        elif isinstance(step, ShieldCallStep):
            verdict = f"Violation: {step.response.violation_return_message}" if step.response.is_violation else "No Violation"
            print(colour(f"shield_call> {verdict}", RED if step.response.is_violation else GREEN))
        elif isinstance(step, MemoryRetrievalStep):
            size = len(content_text(step.inserted_context).encode())
            print(colour(f"memory_retrieval> fetched {size} bytes from {step.memory_bank_ids}", CYAN))
    elif isinstance(payload, AgenticSystemTurnResponseTurnCompletePayload):
        if payload.turn.output_attachments:
            print(colour(f"attachments> {len(payload.turn.output_attachments)} file(s) came back", CYAN))


def main(argv: Sequence[str] | None = None) -> int:
    return run_client(app, argv)


if __name__ == "__main__":
    sys.exit(main())
