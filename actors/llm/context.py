"""What the model is told: the profile (prompt, FAQ, models) and the trimmed conversation.

The profile starts from the environment and the FAQ file; operator-edited settings
(`store.app_settings`: system_prompt, models, faq) replace those parts at run time.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import yaml

from actors.llm.faq import Faq
from actors.wire import LLMRequest
from config import Settings
from store.records import Turn

Message = dict[str, str]


def estimate_tokens(text: str) -> int:
    """About four characters a token for English; good enough for budgets and limits."""
    return len(text) // 4 + 1


@dataclass(frozen=True, slots=True)
class LLMProfile:
    system_prompt: str
    faq: Faq
    models: tuple[str, ...]
    no_system_models: frozenset[str]
    token_budget: int

    @property
    def instructions(self) -> str:
        return f"{self.system_prompt}\n\n{self.faq.as_prompt()}".strip()

    @classmethod
    def from_settings(cls, settings: Settings, overrides: Mapping[str, Any]) -> LLMProfile:
        faq = _faq(overrides.get("faq")) or Faq.load(settings.faq_path)
        models = _models(overrides.get("models")) or tuple(settings.models)
        prompt = overrides.get("system_prompt")
        return cls(
            system_prompt=prompt if isinstance(prompt, str) and prompt else settings.system_prompt,
            faq=faq,
            models=models,
            no_system_models=frozenset(settings.llm_no_system_models),
            token_budget=settings.llm_context_token_budget,
        )


def _faq(value: Any) -> Faq | None:
    if isinstance(value, str):
        value = yaml.safe_load(value)
    return Faq.from_mapping(value) if isinstance(value, Mapping) and value.get("entries") else None


def _models(value: Any) -> tuple[str, ...] | None:
    if isinstance(value, Mapping):
        primary = value.get("primary")
        fallbacks = value.get("fallbacks") or []
        chain = [primary, *fallbacks] if primary else list(fallbacks)
    elif isinstance(value, Sequence) and not isinstance(value, str):
        chain = list(value)
    else:
        return None
    cleaned = tuple(str(m).strip() for m in chain if str(m).strip())
    return cleaned or None


def trim_history(history: Sequence[Turn], budget: int) -> list[Turn]:
    """The newest turns whose estimated tokens fit the budget, oldest first."""
    kept: list[Turn] = []
    used = 0
    for turn in reversed(history):
        cost = estimate_tokens(turn.text)
        if used + cost > budget:
            break
        kept.append(turn)
        used += cost
    kept.reverse()
    return kept


def build_messages(profile: LLMProfile, request: LLMRequest, model: str) -> list[Message]:
    turns = trim_history(request.history, profile.token_budget)
    messages: list[Message] = [{"role": t.role, "content": t.text} for t in turns]
    messages.append({"role": "user", "content": request.text})
    if model not in profile.no_system_models:
        return [{"role": "system", "content": profile.instructions}, *messages]
    # Some models reject a system role: the instructions open the first user turn instead.
    first_user = next(i for i, m in enumerate(messages) if m["role"] == "user")
    folded = f"{profile.instructions}\n\n{messages[first_user]['content']}"
    messages[first_user] = {"role": "user", "content": folded}
    return messages
