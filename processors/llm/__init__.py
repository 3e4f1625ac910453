"""Language-model stage: the conversation context, its aggregators and local LLM backends.

Importing this package loads pydantic but no model runtime: ``llama_cpp`` is
imported when a :class:`LlamaCppLLM` loads its model.
"""

from processors.llm.context import (
    AssistantContextAggregator,
    AssistantContextAggregatorParams,
    LLMContext,
    UserContextAggregator,
    UserContextAggregatorParams,
    context_pair,
)
from processors.llm.llama_cpp import GenerationStats, LlamaCppLLM, LlamaCppLLMParams

__all__ = [
    "AssistantContextAggregator",
    "AssistantContextAggregatorParams",
    "GenerationStats",
    "LLMContext",
    "LlamaCppLLM",
    "LlamaCppLLMParams",
    "UserContextAggregator",
    "UserContextAggregatorParams",
    "context_pair",
]
