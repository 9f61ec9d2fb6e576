"""Operational figures for the dashboard, computed from the message tables."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import asyncpg

from config.vocabulary import ConversationState


@dataclass(frozen=True, slots=True)
class MinuteCount:
    minute: datetime
    inbound: int
    outbound: int


@dataclass(frozen=True, slots=True)
class Stats:
    per_minute: list[MinuteCount]
    reply_latency_p50_ms: float | None
    reply_latency_p95_ms: float | None
    llm_replies: int
    llm_fallbacks: int
    delivery_failures: dict[str, int]
    conversations_by_state: dict[str, int]
    needs_human: int


async def compute(conn: asyncpg.Connection, *, minutes: int, primary_model: str) -> Stats:
    since = f"now() - make_interval(mins => {int(minutes)})"
    per_minute = await conn.fetch(
        f"""SELECT date_trunc('minute', created_at) AS minute,
                   count(*) FILTER (WHERE direction = 'inbound') AS inbound,
                   count(*) FILTER (WHERE direction = 'outbound') AS outbound
            FROM messages WHERE created_at >= {since}
            GROUP BY 1 ORDER BY 1"""
    )
    # Reply latency: from storing the customer's message to the provider accepting the reply.
    latency = await conn.fetchrow(
        f"""SELECT percentile_cont(0.5) WITHIN GROUP (ORDER BY ms) AS p50,
                   percentile_cont(0.95) WITHIN GROUP (ORDER BY ms) AS p95
            FROM (SELECT extract(epoch FROM s.at - i.created_at) * 1000 AS ms
                  FROM messages o
                  JOIN messages i ON i.id = o.reply_to_id
                  JOIN message_statuses s ON s.message_id = o.id AND s.status = 'sent'
                  WHERE o.direction = 'outbound' AND o.created_at >= {since}) t"""
    )
    # A fallback: the reply needed more than one model attempt, or came from a non-primary model.
    llm = await conn.fetchrow(
        f"""SELECT count(*) AS replies,
                   count(*) FILTER (WHERE COALESCE(llm_attempts, 1) > 1 OR model <> $1)
                       AS fallbacks
            FROM messages
            WHERE direction = 'outbound' AND model IS NOT NULL AND model <> 'offline-faq'
              AND created_at >= {since}""",
        primary_model,
    )
    failures = await conn.fetch(
        f"""SELECT COALESCE(error_code::text, 'unknown') AS code, count(*) AS n
            FROM messages WHERE direction = 'outbound' AND status = 'failed'
              AND created_at >= {since}
            GROUP BY 1 ORDER BY 2 DESC"""
    )
    states = await conn.fetch("SELECT state, count(*) AS n FROM conversations GROUP BY state")
    needs_human = await conn.fetchval(
        "SELECT count(*) FROM conversations WHERE needs_human AND state <> 'closed'"
    )
    by_state: dict[str, int] = {state: 0 for state in ConversationState}
    by_state.update({r["state"]: r["n"] for r in states})
    return Stats(
        per_minute=[MinuteCount(r["minute"], r["inbound"], r["outbound"]) for r in per_minute],
        reply_latency_p50_ms=_float(latency["p50"]),
        reply_latency_p95_ms=_float(latency["p95"]),
        llm_replies=int(llm["replies"]),
        llm_fallbacks=int(llm["fallbacks"]),
        delivery_failures={r["code"]: int(r["n"]) for r in failures},
        conversations_by_state=by_state,
        needs_human=int(needs_human),
    )


def _float(value: object) -> float | None:
    return float(value) if isinstance(value, int | float) else None
