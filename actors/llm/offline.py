"""The offline responder: answers from the FAQ, with no LLM, when no OpenRouter key is set."""

from __future__ import annotations

from actors.llm.context import LLMProfile
from actors.llm.faq import Faq, FaqIndex
from actors.wire import LLMRequest, LLMResult


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
