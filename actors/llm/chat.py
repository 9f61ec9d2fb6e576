"""The interface every reply generator offers the pool: OpenRouter or the offline responder."""

from __future__ import annotations

from typing import Protocol

from actors.llm.context import LLMProfile
from actors.wire import LLMRequest, LLMResult

# Said when every model failed: the customer never gets silence or a stack trace.
POLITE_FAILURE = (
    "Sorry, I can't answer that right now. A member of our team will follow up with you shortly."
)


class ChatClient(Protocol):
    async def reply(self, request: LLMRequest, profile: LLMProfile) -> LLMResult: ...

    def breaker_states(self) -> dict[str, str]: ...

    async def close(self) -> None: ...
