"""The send ledger: every part of every outbound message, and who may send it (DESIGN.md §3).

A part's state only moves forward, and every move is one conditional UPDATE, so several
delivery actors and gateways agree without talking to each other:

    pending ──claim(owner, lease)──▶ claimed ──▶ sent / failed / unknown
    unknown ──status webhook with our callback data──▶ sent
    unknown ──no webhook within the wait──▶ pending   (the one case where a part goes again)

One exception, taken only by the owner: `release` returns a claimed part to pending when
the provider proved it did not take the message (connection refused, 429/5xx with an
error body, after the provider's own retries). An expired lease never means "send again":
it becomes `unknown`.

The outbound `messages` row keeps an aggregate status for the dashboard and the API
(`sync_messages`): sending once a part is claimed, sent when every part is, failed when
one failed; its provider_message_id is the first part's wamid.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

import asyncpg
import orjson


class PartState(StrEnum):
    PENDING = "pending"
    CLAIMED = "claimed"
    SENT = "sent"
    FAILED = "failed"
    UNKNOWN = "unknown"


# The callback data of a part, echoed by Meta in biz_opaque_callback_data:
# "<messages.id>.<part>". A plain number is a messages.id alone, the form sent before
# the ledger, still accepted for rows in flight at the upgrade.
def callback_data(message_id: int, part: int) -> str:
    return f"{message_id}.{part}"


def part_of(callback: str | None) -> tuple[int, int] | None:
    """The (message id, part) a callback names, if it is a part's."""
    message, dot, part = (callback or "").partition(".")
    if dot and is_bigint_text(message) and is_bigint_text(part):
        return int(message), int(part)
    return None


def is_bigint_text(text: str) -> bool:
    """ASCII digits that fit a bigint. str.isdigit also takes "²" and "٣", which int()
    refuses or reads, and a long run of digits overflows the column: either would fail
    the webhook's group commit (issue 11 §3.8)."""
    return text.isascii() and text.isdigit() and len(text) <= 18


@dataclass(frozen=True, slots=True)
class Part:
    id: int
    message_id: int
    part: int
    content: dict[str, Any]
    state: PartState
    owner: str | None
    provider_message_id: str | None
    error_code: int | None
    error_title: str | None
    # Seconds, by the database's clock: until the lease ends (claimed), since the outcome
    # became unknown (unknown).
    lease_left: float | None
    unknown_for: float | None


_COLUMNS = """id, message_id, part, content, state, owner, provider_message_id, error_code,
    error_title, extract(epoch FROM lease_until - now()) AS lease_left,
    extract(epoch FROM now() - unknown_since) AS unknown_for"""


# The same columns read through an alias, for joins and UPDATE ... FROM.
def columns_of(alias: str) -> str:
    a = alias
    return f"""{a}.id, {a}.message_id, {a}.part, {a}.content, {a}.state, {a}.owner,
    {a}.provider_message_id, {a}.error_code, {a}.error_title,
    extract(epoch FROM {a}.lease_until - now()) AS lease_left,
    extract(epoch FROM now() - {a}.unknown_since) AS unknown_for"""


def part_from(r: asyncpg.Record) -> Part:
    """A part from a row holding the ledger's columns (as `columns_of` names them)."""
    content = r["content"]
    if isinstance(content, str):
        content = orjson.loads(content)
    return Part(
        id=r["id"],
        message_id=r["message_id"],
        part=r["part"],
        content=content,
        state=PartState(r["state"]),
        owner=r["owner"],
        provider_message_id=r["provider_message_id"],
        error_code=r["error_code"],
        error_title=r["error_title"],
        lease_left=float(r["lease_left"]) if r["lease_left"] is not None else None,
        unknown_for=float(r["unknown_for"]) if r["unknown_for"] is not None else None,
    )


async def parts_of(conn: asyncpg.Connection, message_id: int) -> list[Part]:
    rows = await conn.fetch(
        f"SELECT {_COLUMNS} FROM send_parts WHERE message_id = $1 ORDER BY part", message_id
    )
    return [part_from(r) for r in rows]


async def get(conn: asyncpg.Connection, part_id: int) -> Part | None:
    r = await conn.fetchrow(f"SELECT {_COLUMNS} FROM send_parts WHERE id = $1", part_id)
    return part_from(r) if r is not None else None


async def create_parts(
    conn: asyncpg.Connection,
    message_id: int,
    contents: Sequence[dict[str, Any]],
    *,
    state: PartState = PartState.PENDING,
) -> list[Part]:
    """The message's parts, created once: a second caller gets the parts the first made.

    `state` is for rows sent before the ledger existed: `unknown` (sending, outcome lost;
    the wait counts from the row's last change) or `sent` (its wamid already known).
    """
    await conn.execute(
        """INSERT INTO send_parts (message_id, conversation_id, part, content, state,
                                   unknown_since, provider_message_id)
           SELECT m.id, m.conversation_id, c.ord, c.content::jsonb, $3,
                  CASE WHEN $3 = 'unknown' THEN m.updated_at END,
                  CASE WHEN $3 = 'sent' AND c.ord = 1 THEN m.provider_message_id END
           FROM messages m, unnest($2::text[]) WITH ORDINALITY AS c(content, ord)
           WHERE m.id = $1
           ON CONFLICT (message_id, part) DO NOTHING""",
        message_id,
        [orjson.dumps(c).decode() for c in contents],
        state.value,
    )
    return await parts_of(conn, message_id)


async def parts_of_many(
    conn: asyncpg.Connection, message_ids: Sequence[int]
) -> dict[int, list[Part]]:
    """`parts_of` for many messages in one statement; a message with none is absent."""
    rows = await conn.fetch(
        f"""SELECT {_COLUMNS} FROM send_parts WHERE message_id = ANY($1::bigint[])
            ORDER BY message_id, part""",
        list(message_ids),
    )
    found: dict[int, list[Part]] = {}
    for r in rows:
        found.setdefault(r["message_id"], []).append(part_from(r))
    return found


async def create_parts_many(
    conn: asyncpg.Connection,
    messages: Sequence[tuple[int, Sequence[dict[str, Any]]]],
    *,
    states: Sequence[PartState] | None = None,
) -> dict[int, list[Part]]:
    """`create_parts` for many messages: one INSERT returning what it made, and a read
    only of the messages where a part already existed (another creator came first).

    `states[i]` is the state of the parts of `messages[i]` (pending when not given).
    """
    if not messages:
        return {}
    ids: list[int] = []
    ords: list[int] = []
    contents: list[str] = []
    part_states: list[str] = []
    wanted: dict[int, int] = {}
    for i, (message_id, payloads) in enumerate(messages):
        if message_id in wanted:
            continue  # asked twice: the first asker's parts are everyone's
        wanted[message_id] = len(payloads)
        state = states[i] if states is not None else PartState.PENDING
        for n, payload in enumerate(payloads, start=1):
            ids.append(message_id)
            ords.append(n)
            contents.append(orjson.dumps(payload).decode())
            part_states.append(state.value)
    rows = await conn.fetch(
        f"""INSERT INTO send_parts AS p (message_id, conversation_id, part, content, state,
                                         unknown_since, provider_message_id)
            SELECT m.id, m.conversation_id, c.ord, c.content::jsonb, c.state,
                   CASE WHEN c.state = 'unknown' THEN m.updated_at END,
                   CASE WHEN c.state = 'sent' AND c.ord = 1 THEN m.provider_message_id END
            FROM unnest($1::bigint[], $2::int[], $3::text[], $4::text[])
                     AS c(message_id, ord, content, state)
            JOIN messages m ON m.id = c.message_id
            ORDER BY c.message_id, c.ord
            ON CONFLICT (message_id, part) DO NOTHING
            RETURNING {columns_of("p")}""",
        ids,
        ords,
        contents,
        part_states,
    )
    made: dict[int, list[Part]] = {}
    for r in rows:
        made.setdefault(r["message_id"], []).append(part_from(r))
    # A part that was already there came back from nobody: read those messages whole,
    # as `create_parts` would (a missing messages row reads as no parts).
    partial = [m for m, n in wanted.items() if len(made.get(m, ())) != n]
    if partial:
        made.update({m: [] for m in partial})
        made.update(await parts_of_many(conn, partial))
    for found in made.values():
        found.sort(key=lambda p: p.part)
    return made


async def first_open_before(conn: asyncpg.Connection, part_id: int) -> Part | None:
    """The earliest part of the same conversation, before this one, not yet resolved."""
    r = await conn.fetchrow(
        f"""SELECT {_COLUMNS} FROM send_parts e
            WHERE e.conversation_id = (SELECT conversation_id FROM send_parts WHERE id = $1)
              AND e.state IN ('pending', 'claimed')
              AND (e.message_id, e.part) < (SELECT message_id, part FROM send_parts WHERE id = $1)
            ORDER BY e.message_id, e.part LIMIT 1""",
        part_id,
    )
    return part_from(r) if r is not None else None


async def claim(conn: asyncpg.Connection, part_id: int, owner: str, lease_seconds: float) -> bool:
    """Take a pending part for one send, if no earlier part of its conversation is open.

    The gate keeps a conversation's replies in order across actors and restarts: a part
    goes only when every earlier part is sent, failed or unknown.
    """
    claimed = await conn.fetchval(
        """UPDATE send_parts p SET state = 'claimed', owner = $2,
                  lease_until = now() + make_interval(secs => $3), attempts = attempts + 1,
                  updated_at = now()
           WHERE p.id = $1 AND p.state = 'pending'
             AND NOT EXISTS (
                 SELECT 1 FROM send_parts e
                 WHERE e.conversation_id = p.conversation_id
                   AND e.state IN ('pending', 'claimed')
                   AND (e.message_id, e.part) < (p.message_id, p.part))
           RETURNING p.id""",
        part_id,
        owner,
        lease_seconds,
    )
    return claimed is not None


async def claim_many(
    conn: asyncpg.Connection, claims: Sequence[tuple[int, str]], lease_seconds: float
) -> set[tuple[int, str]]:
    """`claim` for many (part id, owner) pairs in one statement; return those claimed.

    The order gate reads the statement's snapshot: of two parts of one conversation
    asked for together, the later sees the earlier still pending and is refused, so one
    statement never claims past an open part. A part asked for by two owners goes to one.
    """
    if not claims:
        return set()
    rows = await conn.fetch(
        """UPDATE send_parts p SET state = 'claimed', owner = c.owner,
                  lease_until = now() + make_interval(secs => $3), attempts = attempts + 1,
                  updated_at = now()
           FROM unnest($1::bigint[], $2::text[]) AS c(id, owner)
           WHERE p.id = c.id AND p.state = 'pending'
             AND NOT EXISTS (
                 SELECT 1 FROM send_parts e
                 WHERE e.conversation_id = p.conversation_id
                   AND e.state IN ('pending', 'claimed')
                   AND (e.message_id, e.part) < (p.message_id, p.part))
           RETURNING p.id, p.owner, p.message_id""",
        [c[0] for c in claims],
        [c[1] for c in claims],
        lease_seconds,
    )
    return {(r["id"], r["owner"]) for r in rows}


async def finish_sent_many(
    conn: asyncpg.Connection, sends: Sequence[tuple[int, str, str]]
) -> set[tuple[int, str]]:
    """`finish_sent` for many (part id, owner, wamid) in one statement; return the
    (part id, wamid) pairs recorded."""
    if not sends:
        return set()
    rows = await conn.fetch(
        """UPDATE send_parts p SET state = 'sent', provider_message_id = c.wamid, owner = NULL,
                  lease_until = NULL, updated_at = now()
           FROM unnest($1::bigint[], $2::text[], $3::text[]) AS c(id, owner, wamid)
           WHERE p.id = c.id AND p.provider_message_id IS NULL
             AND ((p.state = 'claimed' AND p.owner = c.owner)
                  OR p.state IN ('unknown', 'pending'))
             AND NOT EXISTS (SELECT 1 FROM send_parts o WHERE o.provider_message_id = c.wamid)
           RETURNING p.id, p.provider_message_id""",
        [s[0] for s in sends],
        [s[1] for s in sends],
        [s[2] for s in sends],
    )
    return {(r["id"], r["provider_message_id"]) for r in rows}


async def finish_sent(conn: asyncpg.Connection, part_id: int, owner: str, wamid: str) -> bool:
    """The provider took the part. Also accepted once the lease has lapsed into `unknown`
    (or back to `pending`): a late answer proves the send as well as a webhook does."""
    done = await conn.fetchval(
        """UPDATE send_parts SET state = 'sent', provider_message_id = $3, owner = NULL,
                  lease_until = NULL, updated_at = now()
           WHERE id = $1 AND provider_message_id IS NULL
             AND ((state = 'claimed' AND owner = $2) OR state IN ('unknown', 'pending'))
             AND NOT EXISTS (SELECT 1 FROM send_parts o WHERE o.provider_message_id = $3)
           RETURNING id""",
        part_id,
        owner,
        wamid,
    )
    return done is not None


async def finish_failed(
    conn: asyncpg.Connection, part_id: int, owner: str, code: int | None, title: str
) -> bool:
    done = await conn.fetchval(
        """UPDATE send_parts SET state = 'failed', error_code = $3, error_title = $4,
                  owner = NULL, lease_until = NULL, updated_at = now()
           WHERE id = $1 AND state = 'claimed' AND owner = $2 RETURNING id""",
        part_id,
        owner,
        code,
        title[:500],
    )
    return done is not None


async def finish_unknown(conn: asyncpg.Connection, part_id: int, owner: str) -> bool:
    """The request may have reached Meta (a timeout, a reset, an unreadable answer)."""
    done = await conn.fetchval(
        """UPDATE send_parts SET state = 'unknown', unknown_since = now(), owner = NULL,
                  lease_until = NULL, updated_at = now()
           WHERE id = $1 AND state = 'claimed' AND owner = $2 RETURNING id""",
        part_id,
        owner,
    )
    return done is not None


async def release(conn: asyncpg.Connection, part_id: int, owner: str) -> bool:
    """The provider proved it did not take the part: it may go again, later."""
    done = await conn.fetchval(
        """UPDATE send_parts SET state = 'pending', owner = NULL, lease_until = NULL,
                  updated_at = now()
           WHERE id = $1 AND state = 'claimed' AND owner = $2 RETURNING id""",
        part_id,
        owner,
    )
    return done is not None


async def expire_leases(conn: asyncpg.Connection, part_id: int | None = None) -> list[int]:
    """Claims whose lease ended become unknown outcomes; return their message ids."""
    rows = await conn.fetch(
        """UPDATE send_parts SET state = 'unknown', unknown_since = now(), owner = NULL,
                  lease_until = NULL, updated_at = now()
           WHERE state = 'claimed' AND lease_until < now() AND ($1::bigint IS NULL OR id = $1)
           RETURNING message_id""",
        part_id,
    )
    return sorted({r["message_id"] for r in rows})


async def orphan_claims(conn: asyncpg.Connection, lineage: str, owner: str) -> list[int]:
    """Claims of an earlier instance of the same actor (owner starts with `lineage`, is
    not `owner`) become unknown outcomes now; return their message ids."""
    rows = await conn.fetch(
        """UPDATE send_parts SET state = 'unknown', unknown_since = now(), owner = NULL,
                  lease_until = NULL, updated_at = now()
           WHERE state = 'claimed' AND starts_with(owner, $1) AND owner <> $2
           RETURNING message_id""",
        lineage,
        owner,
    )
    return sorted({r["message_id"] for r in rows})


async def reopen(conn: asyncpg.Connection, part_id: int, wait_seconds: float) -> bool:
    """An unknown outcome with no status webhook within the wait: the part goes again."""
    done = await conn.fetchval(
        """UPDATE send_parts SET state = 'pending', unknown_since = NULL, updated_at = now()
           WHERE id = $1 AND state = 'unknown'
             AND unknown_since <= now() - make_interval(secs => $2)
           RETURNING id""",
        part_id,
        wait_seconds,
    )
    return done is not None


async def replace_with_template(
    conn: asyncpg.Connection, part_id: int, owner: str, content: dict[str, Any]
) -> bool:
    """Meta says the 24-hour window closed: this claimed part becomes the template, and
    the parts after it, never sent, are dropped."""
    async with conn.transaction():
        message_id = await conn.fetchval(
            """UPDATE send_parts SET content = $3::jsonb, updated_at = now()
               WHERE id = $1 AND state = 'claimed' AND owner = $2 RETURNING message_id""",
            part_id,
            owner,
            content,
        )
        if message_id is None:
            return False
        await conn.execute(
            """DELETE FROM send_parts
               WHERE message_id = $1 AND state = 'pending'
                 AND part > (SELECT part FROM send_parts WHERE id = $2)""",
            message_id,
            part_id,
        )
    return True


async def resolve_by_callback(
    conn: asyncpg.Connection, claims: Sequence[tuple[int, int, str]]
) -> list[int]:
    """Status webhooks naming a part, (message id, part, wamid): that part was sent.

    Return the message ids whose parts changed.
    """
    if not claims:
        return []
    rows = await conn.fetch(
        """UPDATE send_parts p SET state = 'sent', provider_message_id = c.wamid, owner = NULL,
                  lease_until = NULL, updated_at = now()
           FROM unnest($1::bigint[], $2::int[], $3::text[]) AS c(message_id, part, wamid)
           WHERE p.message_id = c.message_id AND p.part = c.part
             AND p.provider_message_id IS NULL
             AND p.state IN ('claimed', 'unknown', 'pending')
             AND NOT EXISTS (SELECT 1 FROM send_parts o WHERE o.provider_message_id = c.wamid)
           RETURNING p.message_id""",
        [c[0] for c in claims],
        [c[1] for c in claims],
        [c[2] for c in claims],
    )
    return sorted({r["message_id"] for r in rows})


async def resolve_legacy(conn: asyncpg.Connection, message_ids: Sequence[int]) -> None:
    """A pre-ledger callback (the message id) proves the whole message went out: the old
    sender sent every part in one go under that id."""
    await conn.execute(
        """UPDATE send_parts SET state = 'sent', owner = NULL, lease_until = NULL,
                  updated_at = now()
           WHERE message_id = ANY($1::bigint[]) AND state IN ('claimed', 'unknown', 'pending')""",
        list(message_ids),
    )


async def sync_messages(conn: asyncpg.Connection, message_ids: Sequence[int]) -> None:
    """Carry the parts' states to their messages rows; a status there never moves back."""
    await conn.execute(
        """WITH agg AS (
               SELECT message_id,
                      CASE WHEN bool_or(state = 'failed') THEN 'failed'
                           WHEN bool_and(state = 'sent') THEN 'sent'
                           ELSE 'sending' END AS status,
                      bool_or(state <> 'pending') AS started,
                      (array_agg(provider_message_id ORDER BY part))[1] AS first_wamid,
                      (array_agg(error_code ORDER BY part)
                           FILTER (WHERE state = 'failed'))[1] AS code,
                      (array_agg(error_title ORDER BY part)
                           FILTER (WHERE state = 'failed'))[1] AS title
               FROM send_parts WHERE message_id = ANY($1::bigint[]) GROUP BY message_id)
           UPDATE messages m SET status = a.status,
                  provider_message_id = COALESCE(m.provider_message_id, a.first_wamid),
                  error_code = CASE WHEN a.status = 'failed' THEN a.code::integer
                                    ELSE m.error_code END,
                  error_title = CASE WHEN a.status = 'failed' THEN a.title
                                     ELSE m.error_title END,
                  updated_at = now()
           FROM agg a
           WHERE m.id = a.message_id AND a.started AND m.status IN ('pending', 'sending')
             AND (m.status <> a.status
                  OR (m.provider_message_id IS NULL AND a.first_wamid IS NOT NULL))""",
        list(message_ids),
    )
