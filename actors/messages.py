"""What crosses the Ray boundary between the shards, the LLM pool and delivery.

Small frozen dataclasses: they pickle quickly and are sent in batches (DESIGN.md §2).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from store.records import Turn


@dataclass(frozen=True, slots=True)
class LLMRequest:
    request_id: int  # the inbound message id: unique, and it ties the answer to the message
    history: tuple[Turn, ...]
    text: str
    trace: str | None = None  # the request id to log under


@dataclass(frozen=True, slots=True)
class LLMResult:
    request_id: int
    text: str
    ok: bool
    model: str | None = None
    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    cost: float | None = None
    attempts: int = 1
    latency_ms: float | None = None
    error: str | None = None


@dataclass(frozen=True, slots=True)
class DeliveryRequest:
    request_id: int  # the outbound row id; it is also echoed as biz_opaque_callback_data
    business_number: str
    to: str
    text: str
    content: dict[str, Any] | None = None  # buttons, list or template; None for plain text
    trace: str | None = None  # the request id to log under
    reply_context: str | None = None  # the inbound message id this reply should quote


@dataclass(frozen=True, slots=True)
class DeliveryResult:
    request_id: int
    ok: bool
    provider_message_id: str | None = None
    error_code: int | None = None
    error_title: str | None = None
    # A limit or an outage, not the message: the reply is still pending and worth retrying.
    retryable: bool = False
