"""Reply generators behind one interface: OpenRouter (actors.llm_openrouter) or offline."""

from __future__ import annotations

from typing import Any, Protocol

from actors.faq import Faq, FaqIndex
from actors.llm_context import LLMProfile
from actors.messages import LLMRequest, LLMResult

# Said when every model failed: the customer never gets silence or a stack trace.
POLITE_FAILURE = (
    "Sorry, I can't answer that right now. A member of our team will follow up with you shortly."
)


class ChatClient(Protocol):
    async def reply(self, request: LLMRequest, profile: LLMProfile) -> LLMResult: ...

    def breaker_states(self) -> dict[str, str]: ...

    async def close(self) -> None: ...


class InvalidCompletion(ValueError):
    """A 200 answer that is not a usable chat completion (empty, null, HTML, cut off)."""


def parse_completion(body: Any) -> tuple[str, dict[str, Any]]:
    """Return the reply text and the usage block, or raise InvalidCompletion."""
    if not isinstance(body, dict):
        raise InvalidCompletion("body is not a JSON object")
    choices = body.get("choices")
    if not isinstance(choices, list) or not choices:
        raise InvalidCompletion("no choices")
    message = choices[0].get("message") if isinstance(choices[0], dict) else None
    content = message.get("content") if isinstance(message, dict) else None
    if not isinstance(content, str) or not content.strip():
        raise InvalidCompletion("empty or missing message content")
    usage = body.get("usage")
    return content.strip(), usage if isinstance(usage, dict) else {}


class OfflineResponder:
    """Answers from the FAQ with BM25 and no LLM: the default when no API key is set."""

    MODEL = "offline-faq"

    def __init__(self) -> None:
        self._indexed: tuple[Faq, FaqIndex] | None = None

    async def close(self) -> None:
        return None

    def breaker_states(self) -> dict[str, str]:
        return {}

    def _index(self, faq: Faq) -> FaqIndex:
        if self._indexed is None or self._indexed[0] is not faq:
            self._indexed = (faq, FaqIndex(faq))
        return self._indexed[1]

    async def reply(self, request: LLMRequest, profile: LLMProfile) -> LLMResult:
        entry = self._index(profile.faq).best(request.text)
        return LLMResult(
            request_id=request.request_id,
            text=entry.answer if entry is not None else profile.faq.fallback,
            ok=True,
            model=self.MODEL,
            prompt_tokens=0,
            completion_tokens=0,
            latency_ms=0.0,
        )
