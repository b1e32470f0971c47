"""The wire contract: msgspec Structs, one module per API, no logic.

Re-exports every public type so callers write `from llama_core.types import UserMessage`.
"""

from llama_core.types.common import (
    URL,
    Content,
    LogProbConfig,
    SamplingParams,
    SamplingStrategy,
    StopReason,
    TextContentItem,
    TokenLogProbs,
    content_text,
)
from llama_core.types.messages import (
    BuiltinTool,
    CompletionMessage,
    Message,
    Role,
    SystemMessage,
    ToolCall,
    ToolChoice,
    ToolDefinition,
    ToolParamDefinition,
    ToolPromptFormat,
    ToolResponse,
    ToolResponseMessage,
    UserMessage,
    builtin_tool,
)
