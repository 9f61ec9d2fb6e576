"""Reply generators behind one interface: OpenRouter (any OpenAI-compatible API) or offline.

OpenRouter's chat completions API: https://openrouter.ai/docs/api-reference/chat-completion
"""

from __future__ import annotations

import time
from typing import Any, Protocol

import httpx
import structlog

from actors.faq import Faq, FaqIndex
from actors.messages import LLMRequest, LLMResult
from config import Settings

log = structlog.get_logger(__name__)

# Said when every model failed: the customer never gets silence or a stack trace.
POLITE_FAILURE = (
    "Sorry, I can't answer that right now. A member of our team will follow up with you shortly."
)


class ChatClient(Protocol):
    async def reply(self, request: LLMRequest) -> LLMResult: ...

    async def close(self) -> None: ...


class InvalidCompletion(ValueError):
    """A 200 answer that is not a usable chat completion (empty, null, HTML, cut off)."""


def build_messages(system_prompt: str, request: LLMRequest) -> list[dict[str, str]]:
    messages = [{"role": "system", "content": system_prompt}]
    messages += [{"role": t.role, "content": t.text} for t in request.history]
    messages.append({"role": "user", "content": request.text})
    return messages


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


class OpenRouterClient:
    def __init__(self, settings: Settings, faq: Faq) -> None:
        assert settings.openrouter_api_key is not None
        self._settings = settings
        self._models = settings.models
        self._system_prompt = f"{settings.system_prompt}\n\n{faq.as_prompt()}"
        self._http = httpx.AsyncClient(
            base_url=settings.openrouter_base_url.rstrip("/"),
            timeout=httpx.Timeout(settings.llm_timeout_seconds),
            headers={
                "Authorization": f"Bearer {settings.openrouter_api_key.get_secret_value()}",
                "HTTP-Referer": "https://github.com/wa-support/wa-support",
                "X-Title": "wa-support",
            },
            limits=httpx.Limits(max_connections=500, max_keepalive_connections=100),
        )

    async def close(self) -> None:
        await self._http.aclose()

    async def reply(self, request: LLMRequest) -> LLMResult:
        messages = build_messages(self._system_prompt, request)
        errors: list[str] = []
        for attempt, model in enumerate(self._models, start=1):
            started = time.perf_counter()
            try:
                text, usage = await self._complete(model, messages)
            except (httpx.HTTPError, InvalidCompletion, ValueError) as exc:
                errors.append(f"{model}: {exc!r}"[:300])
                log.warning("llm_model_failed", model=model, error=repr(exc)[:300])
                continue
            log.debug("llm_replied", model=model, seconds=time.perf_counter() - started)
            return LLMResult(
                request_id=request.request_id,
                text=text,
                ok=True,
                model=model,
                prompt_tokens=_int(usage.get("prompt_tokens")),
                completion_tokens=_int(usage.get("completion_tokens")),
                cost=_float(usage.get("cost")),
                attempts=attempt,
            )
        return LLMResult(
            request_id=request.request_id,
            text=POLITE_FAILURE,
            ok=False,
            attempts=len(self._models),
            error="; ".join(errors),
        )

    async def _complete(
        self, model: str, messages: list[dict[str, str]]
    ) -> tuple[str, dict[str, Any]]:
        response = await self._http.post(
            "/api/v1/chat/completions",
            json={
                "model": model,
                "messages": messages,
                "max_tokens": self._settings.llm_max_tokens,
                "temperature": self._settings.llm_temperature,
            },
        )
        response.raise_for_status()
        return parse_completion(response.json())


class OfflineResponder:
    """Answers from the FAQ file with no LLM: the default when no API key is set."""

    MODEL = "offline-faq"

    def __init__(self, faq: Faq) -> None:
        self._faq = faq
        self._index = FaqIndex(faq)

    async def close(self) -> None:
        return None

    async def reply(self, request: LLMRequest) -> LLMResult:
        entry = self._index.best(request.text)
        return LLMResult(
            request_id=request.request_id,
            text=entry.answer if entry is not None else self._faq.fallback,
            ok=True,
            model=self.MODEL,
            prompt_tokens=0,
            completion_tokens=0,
        )


def _int(value: object) -> int | None:
    return int(value) if isinstance(value, int | float) else None


def _float(value: object) -> float | None:
    return float(value) if isinstance(value, int | float) else None


def make_client(settings: Settings) -> ChatClient:
    """The one place that picks the reply generator from configuration."""
    faq = Faq.load(settings.faq_path)
    if settings.uses_offline_responder:
        return OfflineResponder(faq)
    return OpenRouterClient(settings, faq)
