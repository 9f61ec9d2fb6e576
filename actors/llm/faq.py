"""The FAQ knowledge file and a BM25 ranking over it, for the offline responder."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from rank_bm25 import BM25Okapi

from config import operator_settings

_WORD = re.compile(r"\w+", re.UNICODE)
_STOP = frozenset(
    "a an and are can do does i is it me my of on or the to we what when where which who "
    "you your how".split()
)


def tokenize(text: str) -> list[str]:
    return [w for w in _WORD.findall(text.lower()) if w not in _STOP]


@dataclass(frozen=True, slots=True)
class FaqEntry:
    question: str
    answer: str


@dataclass(frozen=True, slots=True)
class Faq:
    business_name: str
    business_description: str
    fallback: str
    entries: tuple[FaqEntry, ...]

    @classmethod
    def load(cls, path: Path) -> Faq:
        return cls.from_mapping(yaml.safe_load(path.read_text()) or {})

    @classmethod
    def from_mapping(cls, data: Mapping[str, Any]) -> Faq:
        """From the FAQ file's shape: business {name, description}, fallback, entries."""
        business = data.get("business") or {}
        return cls(
            business_name=str(business.get("name", "")),
            business_description=str(business.get("description", "")),
            fallback=str(data.get("fallback", "A member of our team will get back to you soon.")),
            entries=tuple(
                FaqEntry(str(e["question"]), str(e["answer"])) for e in data.get("entries", [])
            ),
        )

    @classmethod
    def from_shape(cls, shape: operator_settings.Faq) -> Faq:
        """From the operator's FAQ, as the settings API validated and stored it."""
        return cls(
            business_name=shape.business.name,
            business_description=shape.business.description,
            fallback=shape.fallback,
            entries=tuple(FaqEntry(e.question, e.answer) for e in shape.entries),
        )

    def as_prompt(self) -> str:
        lines = [f"Business: {self.business_name}. {self.business_description}".strip()]
        lines += [f"Q: {e.question}\nA: {e.answer}" for e in self.entries]
        return "\n\n".join(lines)


class FaqIndex:
    """Ranks FAQ entries against a question; answers only when the match is good enough."""

    def __init__(self, faq: Faq, *, min_score: float = 0.5) -> None:
        self._faq = faq
        self._min_score = min_score
        corpus = [tokenize(e.question + " " + e.answer) for e in faq.entries]
        self._bm25 = BM25Okapi(corpus) if corpus else None

    def best(self, question: str) -> FaqEntry | None:
        words = tokenize(question)
        if self._bm25 is None or not words:
            return None
        scores = self._bm25.get_scores(words)
        index = max(range(len(scores)), key=lambda i: scores[i])
        return self._faq.entries[index] if scores[index] >= self._min_score else None
