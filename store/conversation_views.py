"""What operators read: conversations filtered and paged, and threads with status history.

Pages are keyset-paged on (sort column, id): a cursor holds the last row's pair, so a
page stays correct while new messages keep moving conversations to the top.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

import asyncpg

from config.vocabulary import MessageStatus

SortKey = Literal["updated_at", "created_at", "id"]


@dataclass(frozen=True, slots=True)
class ConversationFilter:
    state: str | None = None
    assigned_user_id: int | None = None
    unassigned: bool = False
    label: str | None = None
    text: str | None = None
    updated_since: datetime | None = None
    needs_human: bool | None = None


@dataclass(frozen=True, slots=True)
class ConversationRow:
    id: int
    business_number: str
    customer_phone: str
    customer_name: str | None
    state: str
    needs_human: bool
    handoff_reason: str | None
    assigned_user_id: int | None
    labels: list[str]
    last_customer_message_at: datetime | None
    created_at: datetime
    updated_at: datetime
    last_message_text: str | None = None
    last_message_direction: str | None = None


@dataclass(frozen=True, slots=True)
class StatusEntry:
    status: str
    at: datetime
    error_code: int | None = None


@dataclass(frozen=True, slots=True)
class MessageRow:
    id: int
    direction: str
    type: str
    text: str | None
    status: str
    created_at: datetime
    sent_by_user_id: int | None
    reply_to_id: int | None
    model: str | None
    error_code: int | None
    error_title: str | None
    statuses: list[StatusEntry] = field(default_factory=list)
    # An inbound message's tries, and the error of the last failed one (a dead letter's).
    attempts: int = 0
    last_error: str | None = None


_CONVERSATION_COLUMNS = """c.id, c.business_number, c.customer_phone, c.customer_name, c.state,
    c.needs_human, c.handoff_reason, c.assigned_user_id, c.labels,
    c.last_customer_message_at, c.created_at, c.updated_at"""

# The newest message of each listed conversation, for the list's preview line.
_LAST_MESSAGE = """LEFT JOIN LATERAL (
    SELECT m.text AS last_message_text, m.direction AS last_message_direction
    FROM messages m WHERE m.conversation_id = c.id ORDER BY m.id DESC LIMIT 1) lm ON true"""


def _conversation(r: asyncpg.Record) -> ConversationRow:
    data = dict(r)
    data["labels"] = list(data["labels"] or [])
    return ConversationRow(**data)


def _like(text: str) -> str:
    escaped = text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"


def _where(f: ConversationFilter, args: list[Any]) -> list[str]:
    clauses: list[str] = []

    def arg(value: Any) -> str:
        args.append(value)
        return f"${len(args)}"

    if f.state is not None:
        clauses.append(f"c.state = {arg(f.state)}")
    if f.unassigned:
        clauses.append("c.assigned_user_id IS NULL")
    elif f.assigned_user_id is not None:
        clauses.append(f"c.assigned_user_id = {arg(f.assigned_user_id)}")
    if f.label is not None:
        clauses.append(f"c.labels @> ARRAY[{arg(f.label)}::text]")
    if f.needs_human is not None:
        clauses.append(f"c.needs_human = {arg(f.needs_human)}")
    if f.updated_since is not None:
        clauses.append(f"c.updated_at >= {arg(f.updated_since)}")
    if f.text:
        pattern = arg(_like(f.text))
        clauses.append(
            f"""(c.customer_phone ILIKE {pattern} OR c.customer_name ILIKE {pattern}
                 OR EXISTS (SELECT 1 FROM messages sm WHERE sm.conversation_id = c.id
                            AND sm.text ILIKE {pattern}))"""
        )
    return clauses


async def list_conversations(
    conn: asyncpg.Connection,
    f: ConversationFilter,
    *,
    sort: SortKey = "updated_at",
    descending: bool = True,
    after: tuple[Any, int] | None = None,
    limit: int = 50,
) -> list[ConversationRow]:
    """One page; pass the last row's (sort value, id) as `after` for the next one."""
    args: list[Any] = []
    clauses = _where(f, args)
    column = {"updated_at": "c.updated_at", "created_at": "c.created_at", "id": "c.id"}[sort]
    direction = "DESC" if descending else "ASC"
    if after is not None:
        args.extend(after)
        op = "<" if descending else ">"
        clauses.append(f"({column}, c.id) {op} (${len(args) - 1}, ${len(args)})")
    args.append(limit)
    where = ("WHERE " + " AND ".join(clauses)) if clauses else ""
    rows = await conn.fetch(
        f"""SELECT {_CONVERSATION_COLUMNS}, lm.last_message_text, lm.last_message_direction
            FROM conversations c {_LAST_MESSAGE}
            {where}
            ORDER BY {column} {direction}, c.id {direction}
            LIMIT ${len(args)}""",
        *args,
    )
    return [_conversation(r) for r in rows]


async def get_conversation(
    conn: asyncpg.Connection, conversation_id: int
) -> ConversationRow | None:
    r = await conn.fetchrow(
        f"""SELECT {_CONVERSATION_COLUMNS}, lm.last_message_text, lm.last_message_direction
            FROM conversations c {_LAST_MESSAGE} WHERE c.id = $1""",
        conversation_id,
    )
    return _conversation(r) if r is not None else None


async def messages_page(
    conn: asyncpg.Connection, conversation_id: int, *, before_id: int | None, limit: int
) -> list[MessageRow]:
    """The `limit` messages before `before_id` (newest when None), oldest first.

    Outbound rows carry the history the status trigger recorded; an inbound row's is
    when it was received and when the bot finished with it.
    """
    rows = await conn.fetch(
        """SELECT * FROM (
               SELECT m.id, m.direction, m.type, m.text, m.status, m.created_at,
                      m.sent_by_user_id, m.reply_to_id, m.model, m.error_code, m.error_title,
                      m.processed_at, m.attempts, m.last_error,
                      (SELECT coalesce(json_agg(json_build_object(
                                  'status', s.status, 'at', s.at, 'error_code', s.error_code)
                              ORDER BY s.id), '[]'::json)
                       FROM message_statuses s WHERE s.message_id = m.id) AS history
               FROM messages m
               WHERE m.conversation_id = $1 AND ($2::bigint IS NULL OR m.id < $2)
               ORDER BY m.id DESC LIMIT $3) page
           ORDER BY id""",
        conversation_id,
        before_id,
        limit,
    )
    return [_message(r) for r in rows]


def _message(r: asyncpg.Record) -> MessageRow:
    if r["direction"] == "inbound":
        statuses = [StatusEntry(MessageStatus.RECEIVED, r["created_at"])]
        if r["processed_at"] is not None:
            done = (
                MessageStatus.DEAD if r["status"] == MessageStatus.DEAD else MessageStatus.PROCESSED
            )
            statuses.append(StatusEntry(done, r["processed_at"]))
    else:
        statuses = [
            StatusEntry(s["status"], datetime.fromisoformat(s["at"]), s["error_code"])
            for s in json.loads(r["history"])
        ]
    return MessageRow(
        id=r["id"],
        direction=r["direction"],
        type=r["type"],
        text=r["text"],
        status=r["status"],
        created_at=r["created_at"],
        sent_by_user_id=r["sent_by_user_id"],
        reply_to_id=r["reply_to_id"],
        model=r["model"],
        error_code=r["error_code"],
        error_title=r["error_title"],
        statuses=statuses,
        attempts=r["attempts"],
        last_error=r["last_error"],
    )
