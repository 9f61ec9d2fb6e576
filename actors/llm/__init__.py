"""The LLM pool: OpenRouter with fallbacks, breakers and shared rate limits, or offline FAQ."""

from actors.llm.chat import POLITE_FAILURE
from actors.llm.pool import LLMPool

__all__ = ["POLITE_FAILURE", "LLMPool"]
