"""After a run: did every acknowledged message get exactly one reply, in order?

Checked against the database (which inbound row each acknowledged wamid became, and the
outbound row that answers it) and the record of sends, where each send carries its
outbound row id and part ("<id>.<part>", store.send_ledger) as biz_opaque_callback_data,
as Meta echoes it.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field

import asyncpg

from loadtest.customers import Acked
from loadtest.replies import SeenReply


@dataclass
class Verdict:
    checked: int = 0
    unstored: int = 0  # answered 200 but not in the database: the worst kind of loss
    lost: int = 0  # stored, but no reply reached the customer
    duplicated: int = 0  # a reply (or a part of one) sent more than once
    reordered: int = 0  # a reply that came after the reply to a later message
    examples: dict[str, list[str]] = field(default_factory=lambda: defaultdict(list))
    # Where each lost message stood when the run ended ("inbound dead, no reply", ...):
    # tells a late reply from a dead letter from a message nobody picked up.
    lost_states: Counter[str] = field(default_factory=Counter)

    @property
    def ok(self) -> bool:
        return not (self.unstored or self.lost or self.duplicated or self.reordered)

    def note(self, kind: str, example: str) -> None:
        if len(self.examples[kind]) < 5:
            self.examples[kind].append(example)


async def verify(database_url: str, acked: Sequence[Acked], seen: Sequence[SeenReply]) -> Verdict:
    verdict = Verdict(checked=len(acked))
    conn = await asyncpg.connect(database_url)
    try:
        rows = await conn.fetch(
            """SELECT i.provider_message_id AS wamid, o.id AS outbound_id,
                      i.status AS inbound_status, i.processed_at IS NOT NULL AS processed,
                      i.attempts, o.status AS outbound_status,
                      (SELECT string_agg(p.state, ',' ORDER BY p.part) FROM send_parts p
                        WHERE p.message_id = o.id) AS parts
               FROM messages i
               LEFT JOIN messages o ON o.reply_to_id = i.id AND o.direction = 'outbound'
               WHERE i.direction = 'inbound' AND i.provider_message_id = ANY($1::text[])""",
            [a.wamid for a in acked],
        )
    finally:
        await conn.close()
    outbound_of = {r["wamid"]: r["outbound_id"] for r in rows}
    state_of = {r["wamid"]: _state(r) for r in rows}
    # A duplicate is a part sent twice; loss and order are per reply (the outbound id).
    sends = Counter((r.callback, r.text) for r in seen)
    sent_callbacks = {_reply_of(r.callback) for r in seen}
    seq_of_callback: dict[str, int] = {}
    for message in acked:
        if message.wamid not in outbound_of:
            verdict.unstored += 1
            verdict.note("unstored", message.wamid)
            continue
        outbound_id = outbound_of[message.wamid]
        if outbound_id is None or str(outbound_id) not in sent_callbacks:
            verdict.lost += 1
            verdict.note("lost", message.wamid)
            verdict.lost_states[state_of[message.wamid]] += 1
            continue
        seq_of_callback[str(outbound_id)] = message.seq
    for (callback, text), count in sends.items():
        if _reply_of(callback) in seq_of_callback and count > 1:
            verdict.duplicated += count - 1
            verdict.note("duplicated", f"outbound {callback}: {count} times {str(text)[:40]!r}")
    highest: dict[str, int] = {}
    first_copies: set[tuple[str | None, str | None]] = set()
    for reply in seen:
        seq = seq_of_callback.get(_reply_of(reply.callback))
        if seq is None or (reply.callback, reply.text) in first_copies:
            continue  # not ours, or a second copy, already counted as duplicated
        first_copies.add((reply.callback, reply.text))
        if seq < highest.get(reply.to, 0):
            verdict.reordered += 1
            verdict.note("reordered", f"{reply.to}: #{seq} after #{highest[reply.to]}")
        highest[reply.to] = max(seq, highest.get(reply.to, 0))
    return verdict


def _state(row: asyncpg.Record) -> str:
    inbound = f"inbound {row['inbound_status']}, {'processed' if row['processed'] else 'open'}"
    inbound += f", {row['attempts']} tries"
    if row["outbound_id"] is None:
        return inbound + ", no reply row"
    return inbound + f"; reply {row['outbound_status']}, parts {row['parts'] or 'none'}"


def _reply_of(callback: str | None) -> str:
    """The outbound row id a send's callback data names (its part, if any, dropped)."""
    return (callback or "").partition(".")[0]
