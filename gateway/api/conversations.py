"""Reading conversations: the filtered, sorted, cursor-paged list and the thread."""

from __future__ import annotations

import base64
import binascii
from datetime import datetime
from typing import Any, Literal

import orjson
from pydantic import AwareDatetime, BaseModel, Field

from gateway.api.routing import ApiError, Call, Endpoint
from store import conversation_views as views
from store.conversation_views import ConversationFilter, ConversationRow, MessageRow

State = Literal["bot", "human", "closed"]
LABEL_PATTERN = r"^[\w\- ]{1,40}$"


class ConversationOut(BaseModel):
    id: int
    business_number: str
    customer_phone: str
    customer_name: str | None
    state: State
    needs_human: bool
    handoff_reason: str | None
    assigned_user_id: int | None
    labels: list[str]
    last_customer_message_at: datetime | None
    created_at: datetime
    updated_at: datetime
    last_message_text: str | None
    last_message_direction: Literal["inbound", "outbound"] | None

    @classmethod
    def of(cls, row: ConversationRow) -> ConversationOut:
        return cls.model_validate(row, from_attributes=True)


class ConversationPage(BaseModel):
    conversations: list[ConversationOut]
    next_cursor: str | None = Field(description="Pass as `cursor` for the next page")


class StatusOut(BaseModel):
    status: str
    at: datetime
    error_code: int | None


class MessageOut(BaseModel):
    id: int
    direction: Literal["inbound", "outbound"]
    type: str
    text: str | None
    status: str
    created_at: datetime
    sent_by_user_id: int | None
    reply_to_id: int | None
    model: str | None
    error_code: int | None
    error_title: str | None
    statuses: list[StatusOut]
    attempts: int = Field(0, description="Tries of an inbound message so far")
    last_error: str | None = Field(
        None, description="The last try's error; a `dead` message keeps the one that buried it"
    )

    @classmethod
    def of(cls, row: MessageRow) -> MessageOut:
        return cls.model_validate(row, from_attributes=True)


class MessagePage(BaseModel):
    messages: list[MessageOut] = Field(description="Oldest first")
    next_before: int | None = Field(description="Pass as `before` for older messages")


class ConversationDetail(BaseModel):
    conversation: ConversationOut
    messages: list[MessageOut]
    next_before: int | None


class ListQuery(BaseModel):
    state: State | None = None
    assigned: str | None = Field(
        default=None,
        pattern=r"^(me|none|[1-9][0-9]{0,17})$",
        description="An operator id, `me` or `none`",
    )
    label: str | None = Field(default=None, pattern=LABEL_PATTERN)
    q: str | None = Field(default=None, min_length=1, max_length=200, description="Text search")
    updated_since: AwareDatetime | None = None
    needs_human: bool | None = None
    sort: Literal["updated_at", "created_at", "id"] = "updated_at"
    order: Literal["asc", "desc"] = "desc"
    limit: int = Field(default=50, ge=1, le=200)
    cursor: str | None = Field(default=None, max_length=200)


class MessagesQuery(BaseModel):
    before: int | None = Field(default=None, ge=1, le=2**63 - 1)
    limit: int = Field(default=50, ge=1, le=200)


def encode_cursor(value: Any, row_id: int) -> str:
    plain = value.isoformat() if isinstance(value, datetime) else value
    return base64.urlsafe_b64encode(orjson.dumps([plain, row_id])).decode().rstrip("=")


def decode_cursor(cursor: str, sort: str) -> tuple[Any, int]:
    try:
        value, row_id = orjson.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
        if sort == "id":
            return int(value), int(row_id)
        return datetime.fromisoformat(value), int(row_id)
    except (ValueError, TypeError, binascii.Error, orjson.JSONDecodeError) as exc:
        raise ApiError(422, "invalid cursor") from exc


async def list_conversations(call: Call) -> ConversationPage:
    q: ListQuery = call.query
    f = ConversationFilter(
        state=q.state,
        assigned_user_id=(
            call.user.user_id if q.assigned == "me" else
            int(q.assigned) if q.assigned and q.assigned != "none" else None
        ),
        unassigned=q.assigned == "none",
        label=q.label,
        text=q.q,
        updated_since=q.updated_since,
        needs_human=q.needs_human,
    )  # fmt: skip
    after = decode_cursor(q.cursor, q.sort) if q.cursor else None
    pool = await call.services.pools.get()
    async with pool.acquire() as conn:
        # One extra row says whether a next page exists.
        rows = await views.list_conversations(
            conn, f, sort=q.sort, descending=q.order == "desc", after=after, limit=q.limit + 1
        )
    page, more = rows[: q.limit], len(rows) > q.limit
    next_cursor = None
    if more:
        last = page[-1]
        next_cursor = encode_cursor(getattr(last, q.sort), last.id)
    return ConversationPage(
        conversations=[ConversationOut.of(r) for r in page], next_cursor=next_cursor
    )


async def _messages(
    call: Call, conversation_id: int, before: int | None, limit: int
) -> MessagePage:
    pool = await call.services.pools.get()
    async with pool.acquire() as conn:
        rows = await views.messages_page(conn, conversation_id, before_id=before, limit=limit + 1)
    # Oldest first; the extra row, if any, is the oldest and says there is more.
    more = len(rows) > limit
    rows = rows[1:] if more else rows
    return MessagePage(
        messages=[MessageOut.of(r) for r in rows],
        next_before=rows[0].id if more and rows else None,
    )


async def load_conversation(call: Call, conversation_id: int) -> ConversationRow:
    pool = await call.services.pools.get()
    async with pool.acquire() as conn:
        row = await views.get_conversation(conn, conversation_id)
    if row is None:
        raise ApiError(404, "no such conversation")
    return row


async def get_conversation(call: Call) -> ConversationDetail:
    q: MessagesQuery = call.query
    row = await load_conversation(call, call.ids["conversation_id"])
    page = await _messages(call, row.id, q.before, q.limit)
    return ConversationDetail(
        conversation=ConversationOut.of(row), messages=page.messages, next_before=page.next_before
    )


async def list_messages(call: Call) -> MessagePage:
    q: MessagesQuery = call.query
    row = await load_conversation(call, call.ids["conversation_id"])
    return await _messages(call, row.id, q.before, q.limit)


ENDPOINTS = [
    Endpoint("GET", "/api/conversations", list_conversations,
             "Conversations, filtered, sorted and cursor-paged", "conversations",
             query=ListQuery, response=ConversationPage, errors=(422,)),
    Endpoint("GET", "/api/conversations/{conversation_id}", get_conversation,
             "A conversation with its latest messages and their status history",
             "conversations", query=MessagesQuery, response=ConversationDetail, errors=(404,)),
    Endpoint("GET", "/api/conversations/{conversation_id}/messages", list_messages,
             "A page of a conversation's messages, oldest first", "conversations",
             query=MessagesQuery, response=MessagePage, errors=(404,)),
]  # fmt: skip
