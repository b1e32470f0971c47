"""Prompt formats: Llama 3 chat format, tool calls, tool system prompts, templates, Jinja templates.

    chat_format     messages <-> token ids for Llama 3.1/3.2/3.3; renders as text with no tokenizer
    tool_calls      encode a ToolCall as the model writes it; parse the model's text back to calls
    system_prompts  tool system prompts (exact llama-models 0.0.63 text) and `prepare_messages` routing
    templates       the ten example prompts of `llama model template`
    jinja_format    other Llama-architecture models (the demo model): their own Jinja chat template

Both formats offer `encode_dialog_prompt`, `render_dialog_text`, `decode_assistant_message`,
`stop_tokens` and `supports_tools`, so the engine can hold either.

Non-goals: images / Llama 3.2 vision input, Llama 4 formats, tool calling on Jinja-templated models.
"""

from llama_core.prompt.chat_format import ChatFormat, render_dialog_text
from llama_core.prompt.system_prompts import default_tool_prompt_format, prepare_messages
from llama_core.prompt.templates import TEMPLATES, render_template

__all__ = [
    "TEMPLATES",
    "ChatFormat",
    "default_tool_prompt_format",
    "prepare_messages",
    "render_dialog_text",
    "render_template",
]
