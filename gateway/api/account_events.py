"""What Meta tells operators besides messages, and what it sent that we could not read.

Account events: template status and quality, account and number quality, customers who
stopped marketing messages (gateway.whatsapp.fields). Unparsed parts: the webhook pieces
that failed validation, raw with their error, so a person can see what was not handled.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, Field

from gateway.api.routing import Call, Endpoint
from store import webhook_fields

OperatorField = Literal[
    "message_template_status_update", "message_template_quality_update",
    "template_category_update", "account_update", "account_alerts",
    "phone_number_quality_update", "user_preferences",
]  # fmt: skip


class AccountEventsQuery(BaseModel):
    field: OperatorField | None = None
    limit: int = Field(default=50, ge=1, le=200)


class AccountEventOut(BaseModel):
    id: int
    received_at: datetime
    field: str
    account_id: str | None
    subject: str | None = Field(description="The template, number or customer it is about")
    event: str | None = Field(description="APPROVED, YELLOW, FLAGGED, marketing_messages/stop…")
    detail: dict[str, Any] = Field(description="The change's value as Meta sent it")


class AccountEventsPage(BaseModel):
    events: list[AccountEventOut] = Field(description="Newest first")


class UnparsedQuery(BaseModel):
    limit: int = Field(default=50, ge=1, le=200)


class UnparsedOut(BaseModel):
    id: int
    received_at: datetime
    source: str
    field: str
    error: str
    raw: str = Field(description="The part as received, JSON text")


class UnparsedPage(BaseModel):
    items: list[UnparsedOut] = Field(description="Newest first")


async def account_events(call: Call) -> AccountEventsPage:
    q: AccountEventsQuery = call.query
    pool = await call.services.pools.get()
    async with pool.acquire() as conn:
        rows = await webhook_fields.recent_account_events(conn, field=q.field, limit=q.limit)
    return AccountEventsPage(
        events=[AccountEventOut.model_validate(r, from_attributes=True) for r in rows]
    )


async def unparsed(call: Call) -> UnparsedPage:
    q: UnparsedQuery = call.query
    pool = await call.services.pools.get()
    async with pool.acquire() as conn:
        rows = await webhook_fields.recent_unparsed(conn, limit=q.limit)
    return UnparsedPage(items=[UnparsedOut.model_validate(r, from_attributes=True) for r in rows])


ENDPOINTS = [
    Endpoint("GET", "/api/account-events", account_events,
             "Template status and quality, account and number quality, marketing opt-outs",
             "observability", query=AccountEventsQuery, response=AccountEventsPage),
    Endpoint("GET", "/api/webhook-unparsed", unparsed,
             "Webhook parts that failed validation, raw with their error (admin)",
             "observability", access="admin", query=UnparsedQuery, response=UnparsedPage),
]  # fmt: skip
