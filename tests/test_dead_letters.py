"""A message that fails every try is a dead letter: never retried blindly, one holding
reply, and later messages go ahead only then (DESIGN.md §3)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest

from actors.conversation.shard import ConversationShard
from actors.conversation.turn import HANDOFF_REPLY
from config import Settings
from fakes.graph_api import GraphApiFake
from store import inbox, outbound
from store.dead_letters import HOLDING_REPLY
from store.records import InboxItem
from tests.api_fixtures import Operator
from tests.inbox_rows import store_texts
from tests.local_shard import local_shard, wait_processed
from tests.support import eventually, new_phone

pytestmark = pytest.mark.usefixtures("actors")


def _texts(graph: GraphApiFake, phone: str) -> list[str]:
    return [m.text for m in graph.messages_to(phone)]


async def _row(db: asyncpg.Pool, item: InboxItem) -> asyncpg.Record:
    return await db.fetchrow(
        "SELECT status, attempts, last_error, processed_at FROM messages WHERE id = $1",
        item.message_id,
    )


async def test_a_message_failing_every_try_goes_dead_and_only_then_the_next_is_answered(
    settings: Settings, db: asyncpg.Pool, graph: GraphApiFake
) -> None:
    phone = new_phone()
    async with local_shard(settings, phone) as shard:
        await shard.ping()
        first, second = await store_texts(db, phone, "breaks the bot", "a fine question")
        planner = shard._ctx.planner
        real_plan = planner.plan
        tries: list[int] = []

        async def plan(item: InboxItem, *args: Any) -> Any:
            if item.message_id == first.message_id:
                tries.append(item.message_id)
                raise RuntimeError("planner broke")
            assert len(tries) == 5, "the later message went ahead of the earlier one"
            return await real_plan(item, *args)

        planner.plan = plan  # type: ignore[method-assign]
        await shard.deliver([first, second])
        await wait_processed(db, first, second)
        await eventually(lambda: _count(graph, phone, 2))
    row = await _row(db, first)
    assert (row["status"], row["attempts"]) == ("dead", 5)
    assert "planner broke" in row["last_error"] and row["processed_at"] is not None
    assert _texts(graph, phone) == [HOLDING_REPLY, "Echo: a fine question"]


POISON_FLOWS = """
flows:
  - name: feedback
    trigger: {keyword: feedback}
    actions:
      - ask: {field: note, prompt: "Tell us more?"}
      - reply_buttons:
          text: "You said: {note}. Anything else?"
          buttons:
            - {id: fb_yes, title: "Yes"}
            - {id: fb_no, title: "No"}
"""


async def test_a_flows_poison_message_is_dead_after_its_tries_and_never_swept_again(
    settings: Settings, db: asyncpg.Pool, graph: GraphApiFake, tmp_path: Path
) -> None:
    flows = tmp_path / "flows.yaml"
    flows.write_text(POISON_FLOWS)
    phone = new_phone()
    async with local_shard(settings, phone, flows_path=flows, message_max_attempts=3) as shard:
        [ask] = await store_texts(db, phone, "feedback")
        await shard.deliver([ask])
        await wait_processed(db, ask)
        [poison] = await store_texts(db, phone, "x" * 4000)  # filled into the button text
        await shard.deliver([poison])
        await wait_processed(db, poison)
        await eventually(lambda: _count(graph, phone, 2))
        row = await _row(db, poison)
        assert (row["status"], row["attempts"]) == ("dead", 3)
        assert "InvalidContent" in row["last_error"]

        # The sweeper does not see it, and routing it again changes nothing.
        async with db.acquire() as conn:
            swept = await inbox.unprocessed(conn, after_id=poison.message_id - 1, limit=10)
        assert poison.message_id not in [i.message_id for i in swept]
        await shard.deliver([poison])
        await shard.drain()
        assert (await _row(db, poison))["attempts"] == 3
    assert _texts(graph, phone) == ["Tell us more?", HOLDING_REPLY]


async def test_with_the_flag_action_a_dead_letter_hands_the_conversation_to_a_person(
    settings: Settings, db: asyncpg.Pool, graph: GraphApiFake
) -> None:
    phone = new_phone()
    async with local_shard(
        settings, phone, dead_letter_action="flag", message_max_attempts=2
    ) as shard:
        [item] = await store_texts(db, phone, "boom")
        await _handle_with_a_broken_planner(shard, db, item, "broken")
    assert (await _row(db, item))["status"] == "dead"
    conv = await db.fetchrow(
        "SELECT state, handoff_reason FROM conversations WHERE id = $1", item.conversation_id
    )
    assert (conv["state"], conv["handoff_reason"]) == ("human", "dead_letter")
    assert _texts(graph, phone) == []


async def test_a_crash_between_the_handoff_and_the_reply_leaves_one_reply_and_one_handoff(
    settings: Settings, db: asyncpg.Pool, graph: GraphApiFake, monkeypatch: pytest.MonkeyPatch
) -> None:
    phone = new_phone()
    real_reserve = outbound.reserve_reply
    failures: list[int] = []

    async def reserve_failing_once(conn: asyncpg.Connection, reply: Any) -> Any:
        if not failures:
            failures.append(reply.reply_to_id)
            raise ConnectionError("the shard died right after planning")
        return await real_reserve(conn, reply)

    monkeypatch.setattr(outbound, "reserve_reply", reserve_failing_once)
    async with local_shard(settings, phone) as shard:
        [item] = await store_texts(db, phone, "let me talk to a human")
        await shard.deliver([item])
        await wait_processed(db, item)
        await shard.drain()
    assert failures == [item.message_id]
    assert _texts(graph, phone) == [HANDOFF_REPLY]
    conv = await db.fetchrow(
        "SELECT state, handoff_reason FROM conversations WHERE id = $1", item.conversation_id
    )
    assert (conv["state"], conv["handoff_reason"]) == ("human", "customer_asked")
    assert (await _row(db, item))["status"] == "processed"


async def _handle_with_a_broken_planner(
    shard: ConversationShard, db: asyncpg.Pool, item: InboxItem, error: str
) -> None:
    async def plan(*args: Any) -> Any:
        raise RuntimeError(error)

    await shard.ping()
    shard._ctx.planner.plan = plan  # type: ignore[method-assign]
    await shard.deliver([item])
    await wait_processed(db, item)


async def _count(graph: GraphApiFake, phone: str, n: int) -> bool:
    return len(graph.messages_to(phone)) >= n


async def test_an_operator_sees_a_dead_message_and_retries_it_from_the_api(
    settings: Settings,
    db: asyncpg.Pool,
    graph: GraphApiFake,
    api: httpx.AsyncClient,
    agent: Operator,
) -> None:
    phone = new_phone()
    async with local_shard(settings, phone, message_max_attempts=2) as shard:
        [item] = await store_texts(db, phone, "please retry me")
        await _handle_with_a_broken_planner(shard, db, item, "a bug, fixed since")
        await eventually(lambda: _count(graph, phone, 1))
    path = f"/api/conversations/{item.conversation_id}"
    thread = (await api.get(path, headers=agent.headers)).json()
    [dead] = [m for m in thread["messages"] if m["id"] == item.message_id]
    assert dead["status"] == "dead" and dead["attempts"] == 2
    assert "a bug, fixed since" in dead["last_error"]
    assert [s["status"] for s in dead["statuses"]] == ["received", "dead"]
    assert "wa_dead_letters_total" in (await api.get("/metrics")).text

    response = await api.post(f"{path}/messages/{item.message_id}/retry", headers=agent.headers)
    assert response.status_code == 200, response.text
    assert response.json()["status"] == "received" and response.json()["attempts"] == 0
    await wait_processed(db, item)
    await eventually(lambda: _count(graph, phone, 2))
    assert _texts(graph, phone) == [HOLDING_REPLY, "Echo: please retry me"]
    assert (await _row(db, item))["status"] == "processed"

    again = await api.post(f"{path}/messages/{item.message_id}/retry", headers=agent.headers)
    assert again.status_code == 409
    missing = await api.post(f"{path}/messages/{2**62}/retry", headers=agent.headers)
    assert missing.status_code == 404
