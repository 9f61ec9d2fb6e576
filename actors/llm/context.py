"""What the model is told: the profile (prompt, FAQ, models) and the trimmed conversation.

The profile starts from the environment and the FAQ file; operator-edited settings
(system_prompt, models, faq, read through store.settings_watch) replace those parts at
run time.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from actors.llm.faq import Faq
from actors.wire import LLMRequest
from config import Settings
from store.records import Turn
from store.settings_watch import LiveSettings

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
    def from_settings(cls, settings: Settings, live: LiveSettings | None = None) -> LLMProfile:
        """The environment's profile, with the operator's live settings over it."""
        live = live or LiveSettings()
        faq = live.faq
        models = live.models
        return cls(
            system_prompt=live.system_prompt or settings.system_prompt,
            # An operator FAQ with no entries would leave the model nothing: keep the file's.
            faq=Faq.from_shape(faq)
            if faq is not None and faq.entries
            else Faq.load(settings.faq_path),
            models=(models.primary, *models.fallbacks) if models else tuple(settings.models),
            no_system_models=frozenset(settings.llm_no_system_models),
            token_budget=settings.llm_context_token_budget,
        )


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
