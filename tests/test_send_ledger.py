"""The send ledger (DESIGN.md §3): claims, leases, unknown outcomes and split replies.

Each test breaks the part behind one hole: Meta accepting and answering late, a lease
lapsing mid-send, the third part of a split reply failing, the owner vanishing after
part 1, 429/5xx with Retry-After, a refused connection.
"""

from __future__ import annotations

import asyncio
import re
import socket
import time
import uuid
from collections.abc import AsyncIterator, Iterator

import asyncpg
import httpx
import pytest
import pytest_asyncio
import ray
from redis.asyncio import Redis

from actors.client import ActorClient, ShardHandle
from actors.conversation.placement import shard_for
from actors.delivery.ledger_send import LedgerSender
from actors.delivery.pacing import SendPacer
from actors.delivery.providers import CloudApiProvider, OutboundMessage
from actors.delivery.providers.errors import OutcomeUnknown
from actors.wire import Content, DeliveryRequest, split_text
from config import Settings
from fakes.graph_api import GraphApiFake
from fakes.server import FakeServer
from gateway.app import WEBHOOK_PATH
from store import send_ledger, webhook_lag
from store.records import InboxItem
from store.send_ledger import PartState
from tests.conftest import APP_SECRET, GRAPH_TOKEN
from tests.support import (
    BUSINESS_NUMBER,
    WebhookClient,
    envelope,
    eventually,
    new_phone,
    stored_reply,
    text_message,
)

# Three parts: split_text cuts it on sentence ends, under 4096 characters each.
LONG_REPLY = " ".join(f"Sentence number {n} of a long answer." for n in range(300))


@pytest.fixture
def meta_statuses(graph: GraphApiFake, gateway: str) -> Iterator[GraphApiFake]:
    """The Graph fake posts a signed `sent` status webhook per send, as Meta does."""
    graph.status_webhook_url = gateway + WEBHOOK_PATH
    graph.webhooks.app_secret = APP_SECRET
    graph.auto_statuses = ("sent",)
    yield graph
    graph.auto_statuses = ()
    graph.status_webhook_url = None


@pytest_asyncio.fixture
async def provider(graph: GraphApiFake) -> AsyncIterator[CloudApiProvider]:
    client = CloudApiProvider(
        base_url=graph.base_url,  # type: ignore[attr-defined]
        api_version="v21.0",
        access_token=GRAPH_TOKEN,
        timeout=10.0,
    )
    yield client
    await client.close()


async def _stored_reply(db: asyncpg.Pool, phone: str, text: str) -> tuple[InboxItem, int]:
    return await stored_reply(db, phone, "tell me everything", text)


async def _deliver_to_shard(actors: ActorClient, item: InboxItem) -> ShardHandle:
    shard = actors.shards[shard_for(item.customer_phone, len(actors.shards))]
    await shard.deliver.remote([item])
    return shard


def _request(outbound_id: int, phone: str, text: str) -> DeliveryRequest:
    return DeliveryRequest(outbound_id, BUSINESS_NUMBER, phone, Content.plain(text))


async def _no_template() -> None:
    return None


def _sender(db: asyncpg.Pool, provider: CloudApiProvider, unknown_wait: float) -> LedgerSender:
    return LedgerSender(
        db,
        provider,
        None,
        _no_template,
        owner="test-sender",
        call_seconds=10.0,
        unknown_wait_seconds=unknown_wait,
    )


async def _states(db: asyncpg.Pool, outbound_id: int) -> list[PartState]:
    async with db.acquire() as conn:
        return [p.state for p in await send_ledger.parts_of(conn, outbound_id)]


async def _payloads(text: str) -> list[dict[str, object]]:
    return [Content.plain(t).to_payload() for t in split_text(text)]


# -- the ledger's transitions ---------------------------------------------------------


async def test_a_part_has_one_owner_and_its_lapsed_lease_is_unknown_never_pending(
    db: asyncpg.Pool,
) -> None:
    _, outbound_id = await _stored_reply(db, new_phone(), "one part")
    async with db.acquire() as conn:
        [part] = await send_ledger.create_parts(conn, outbound_id, await _payloads("one part"))

    async def claim_as(owner: str) -> bool:
        async with db.acquire() as conn:
            return await send_ledger.claim(conn, part.id, owner, 0.3)

    # Two senders at once (two connections): exactly one gets the claim.
    claims = await asyncio.gather(claim_as("owner"), claim_as("rival"))
    assert sorted(claims) == [False, True]
    rival = "rival" if claims[0] else "owner"
    async with db.acquire() as conn:
        assert not await send_ledger.finish_sent(conn, part.id, rival, "wamid.RIVAL")
        assert not await send_ledger.finish_sent(conn, part.id, "rival", "wamid.RIVAL")
        await asyncio.sleep(0.5)
        assert await send_ledger.expire_leases(conn, part.id) == [outbound_id]
        assert (await send_ledger.get(conn, part.id)).state == PartState.UNKNOWN  # type: ignore[union-attr]
        assert not await send_ledger.claim(conn, part.id, rival, 5)
        assert not await send_ledger.reopen(conn, part.id, wait_seconds=30)
        assert await send_ledger.reopen(conn, part.id, wait_seconds=0)
        assert await send_ledger.claim(conn, part.id, rival, 5)


async def test_a_reply_is_claimed_only_when_every_earlier_reply_is_resolved(
    db: asyncpg.Pool,
) -> None:
    phone = new_phone()
    _, first = await _stored_reply(db, phone, "first")
    _, second = await _stored_reply(db, phone, "second")
    async with db.acquire() as conn:
        [one] = await send_ledger.create_parts(conn, first, await _payloads("first"))
        [two] = await send_ledger.create_parts(conn, second, await _payloads("second"))
        assert not await send_ledger.claim(conn, two.id, "b", 5)  # the first is pending
        assert await send_ledger.claim(conn, one.id, "a", 5)
        assert not await send_ledger.claim(conn, two.id, "b", 5)  # ... then claimed
        assert await send_ledger.finish_unknown(conn, one.id, "a")
        assert await send_ledger.claim(conn, two.id, "b", 5)  # unknown counts as resolved


async def test_a_reply_behind_an_abandoned_pending_one_sends_both_in_order(
    graph: GraphApiFake, provider: CloudApiProvider, db: asyncpg.Pool
) -> None:
    # An earlier reply whose own sender gave up with its part pending (an operator's
    # reply whose call timed out, a holding reply): the next reply must not wait forever.
    phone = new_phone()
    _, first = await _stored_reply(db, phone, "first")
    _, second = await _stored_reply(db, phone, "second")
    async with db.acquire() as conn:
        await send_ledger.create_parts(conn, first, await _payloads("first"))
    result = await _sender(db, provider, unknown_wait=2.0).deliver(
        _request(second, phone, "second")
    )
    assert result.ok
    assert [m.text for m in graph.messages_to(phone)] == ["first", "second"]
    assert await _states(db, first) == [PartState.SENT]


# -- (a) Meta accepts, then answers after the client timeout ---------------------------


async def test_ten_replies_meta_accepts_but_answers_late_reach_each_customer_once(
    webhooks: WebhookClient, meta_statuses: GraphApiFake, settings: Settings, db: asyncpg.Pool
) -> None:
    graph = meta_statuses
    graph.accept_late_next(10, settings.delivery_timeout_seconds + 3)
    phones = [new_phone() for _ in range(10)]
    for phone in phones:
        assert (await webhooks.post(envelope([text_message(phone, "hi")]))).status_code == 200

    async def all_settled() -> bool:
        statuses = await db.fetch(
            """SELECT m.status FROM messages m JOIN conversations c ON c.id = m.conversation_id
               WHERE c.customer_phone = ANY($1::text[]) AND m.direction = 'outbound'""",
            phones,
        )
        return len(statuses) == 10 and all(r["status"] == "sent" for r in statuses)

    await eventually(all_settled, within=40)
    # Past the client timeout, the late answers and the unknown-outcome wait: still one each.
    await asyncio.sleep(settings.unknown_send_wait_seconds + 4)
    for phone in phones:
        assert [m.text for m in graph.messages_to(phone)] == ["Echo: hi"]


# -- (b) a lease lapsing while its send is still in flight -----------------------------


async def test_a_lease_lapsing_mid_send_waits_for_the_webhook_and_sends_nothing_more(
    webhooks: WebhookClient, graph: GraphApiFake, provider: CloudApiProvider, db: asyncpg.Pool
) -> None:
    phone = new_phone()
    _, outbound_id = await _stored_reply(db, phone, "still in flight")
    async with db.acquire() as conn:
        [part] = await send_ledger.create_parts(conn, outbound_id, await _payloads("x"))
        assert await send_ledger.claim(conn, part.id, "slow-owner", 1.0)
    # The first owner's send: Meta records it at once and answers only after 4 s.
    graph.accept_late_next(1, 4.0)
    slow = asyncio.create_task(
        provider.send(
            OutboundMessage(
                BUSINESS_NUMBER,
                phone,
                Content.plain("still in flight"),
                send_ledger.callback_data(outbound_id, 1),
            )
        )
    )
    [accepted] = await graph.wait_for(1, timeout=5)
    second = asyncio.create_task(
        _sender(db, provider, unknown_wait=8.0).deliver(
            _request(outbound_id, phone, "still in flight")
        )
    )

    async def lapsed() -> bool:
        return await _states(db, outbound_id) == [PartState.UNKNOWN]

    await eventually(lapsed, within=5)
    status = {
        "id": accepted.wamid,
        "status": "sent",
        "timestamp": str(int(time.time())),
        "recipient_id": phone,
        "biz_opaque_callback_data": send_ledger.callback_data(outbound_id, 1),
    }
    assert (await webhooks.post(envelope(statuses=[status]))).status_code == 200
    result = await asyncio.wait_for(second, 10)
    assert result.ok and result.provider_message_id == accepted.wamid
    assert await slow == accepted.wamid
    async with db.acquire() as conn:
        assert not await send_ledger.finish_sent(conn, part.id, "slow-owner", accepted.wamid)
    assert len(graph.messages_to(phone)) == 1
    row = await db.fetchrow("SELECT status FROM messages WHERE id = $1", outbound_id)
    assert row["status"] == "sent"


# -- (c) the third part of a split reply failing ----------------------------------------


async def test_the_third_part_failing_leaves_parts_one_and_two_sent_once(
    graph: GraphApiFake, actors: ActorClient, db: asyncpg.Pool
) -> None:
    assert len(split_text(LONG_REPLY)) == 3
    phone = new_phone()
    item, outbound_id = await _stored_reply(db, phone, LONG_REPLY)
    graph.pass_next(2)
    graph.fail_next(1, status=400, code=131026, title="Message undeliverable")
    shard = await _deliver_to_shard(actors, item)

    async def failed() -> bool:
        return await _states(db, outbound_id) == [PartState.SENT, PartState.SENT, PartState.FAILED]

    await eventually(failed)
    await shard.drain.remote()
    row = await db.fetchrow(
        "SELECT status, error_code, error_title FROM messages WHERE id = $1", outbound_id
    )
    assert (row["status"], row["error_code"]) == ("failed", 131026)
    # A second try of the same reply sends nothing more.
    again = await actors.send_reply(_request(outbound_id, phone, LONG_REPLY), wait=20)
    assert not again.ok and not again.retryable and again.error_code == 131026
    assert [m.text for m in graph.messages_to(phone)] == split_text(LONG_REPLY)[:2]
    assert graph.attempts == 3


async def test_the_third_part_hitting_an_outage_is_retried_alone(
    graph: GraphApiFake, actors: ActorClient, db: asyncpg.Pool
) -> None:
    phone = new_phone()
    item, outbound_id = await _stored_reply(db, phone, LONG_REPLY)
    graph.pass_next(2)
    # More 500s than the provider's own attempts: the conversation tries again later.
    graph.fail_next(5, status=500, code=1, title="An unknown error occurred")
    shard = await _deliver_to_shard(actors, item)

    async def sent() -> bool:
        return len(graph.messages_to(phone)) == 3

    await eventually(sent, within=40)
    await shard.drain.remote()
    assert [m.text for m in graph.messages_to(phone)] == split_text(LONG_REPLY)
    assert await _states(db, outbound_id) == [PartState.SENT] * 3
    row = await db.fetchrow("SELECT status FROM messages WHERE id = $1", outbound_id)
    assert row["status"] == "sent"


# -- (d) the owner vanishing after part 1 ------------------------------------------------


async def test_a_reply_whose_owner_vanished_after_part_one_is_completed_without_repeats(
    graph: GraphApiFake,
    provider: CloudApiProvider,
    actors: ActorClient,
    db: asyncpg.Pool,
    settings: Settings,
) -> None:
    phone = new_phone()
    item, outbound_id = await _stored_reply(db, phone, LONG_REPLY)
    texts = split_text(LONG_REPLY)
    async with db.acquire() as conn:
        one, two, _ = await send_ledger.create_parts(conn, outbound_id, await _payloads(LONG_REPLY))
        # The owner that died: it sent part 1, claimed part 2, and was never heard of again.
        assert await send_ledger.claim(conn, one.id, "dead", 30)
        wamid = await provider.send(
            OutboundMessage(
                BUSINESS_NUMBER,
                phone,
                Content.plain(texts[0]),
                send_ledger.callback_data(outbound_id, 1),
            )
        )
        assert await send_ledger.finish_sent(conn, one.id, "dead", wamid)
        assert await send_ledger.claim(conn, two.id, "dead", 1.0)
    shard = await _deliver_to_shard(actors, item)

    async def complete() -> bool:
        return len(graph.messages_to(phone)) >= 3

    await eventually(complete, within=settings.unknown_send_wait_seconds + 20)
    await shard.drain.remote()
    await asyncio.sleep(0.5)
    assert [m.text for m in graph.messages_to(phone)] == texts
    row = await db.fetchrow(
        "SELECT status, provider_message_id FROM messages WHERE id = $1", outbound_id
    )
    assert (row["status"], row["provider_message_id"]) == ("sent", wamid)


async def test_each_part_of_a_split_reply_takes_its_own_pacing_token(
    graph: GraphApiFake,
    provider: CloudApiProvider,
    db: asyncpg.Pool,
    redis: Redis,
    redis_prefix: str,
) -> None:
    phone = new_phone()
    _, outbound_id = await _stored_reply(db, phone, LONG_REPLY)
    # One send to a recipient at once, then one every 0.5 s (Meta's pair rate, scaled down).
    pacer = SendPacer(
        redis,
        prefix=f"{redis_prefix}{uuid.uuid4().hex[:6]}:",
        per_second=1000,
        pair_interval=0.5,
        pair_burst=1,
    )
    sender = LedgerSender(
        db,
        provider,
        pacer,
        _no_template,
        owner="paced",
        call_seconds=10.0,
        unknown_wait_seconds=2.0,
    )
    started = time.monotonic()
    result = await sender.deliver(_request(outbound_id, phone, LONG_REPLY))
    assert result.ok
    sent = graph.messages_to(phone)
    assert [m.text for m in sent] == split_text(LONG_REPLY)
    assert sent[-1].received_monotonic - started >= 0.9  # three tokens, not one


async def test_the_fake_takes_late_accepts_and_passes_through_its_control_endpoint(
    graph: GraphApiFake,
) -> None:
    async with httpx.AsyncClient(base_url=graph.base_url) as http:  # type: ignore[attr-defined]
        answer = await http.post(
            "/_fake/faults",
            json=[
                {"action": "pass_next", "count": 2},
                {"action": "accept_late_next", "count": 1, "seconds": 0.2},
            ],
        )
    assert answer.status_code == 200 and answer.json()["pending_faults"] == 3


# -- (e) 429 and 5xx with Retry-After; (f) a refused connection --------------------------


async def test_429_and_503_with_retry_after_are_retried_after_it_and_sent_once(
    webhooks: WebhookClient, graph: GraphApiFake
) -> None:
    graph.fail_next(1, status=429, code=130429, title="Rate limit hit", retry_after=1)
    graph.fail_next(1, status=503, code=2, title="Service unavailable", retry_after=1)
    phone = new_phone()
    started = time.monotonic()
    assert (await webhooks.post(envelope([text_message(phone, "busy?")]))).status_code == 200

    async def answered() -> bool:
        return bool(graph.messages_to(phone))

    await eventually(answered)
    [sent] = graph.messages_to(phone)
    assert sent.received_monotonic - started >= 2.0  # both Retry-Afters were waited out
    await asyncio.sleep(0.5)
    assert len(graph.messages_to(phone)) == 1 and graph.attempts == 3


async def test_a_refused_connection_is_retried_at_once() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    fake = GraphApiFake(access_token=GRAPH_TOKEN, auto_statuses=())
    server = FakeServer(fake.app, port=port)
    # Enough tries that the jittered backoff (which may be near zero) outlasts 0.2 s.
    client = CloudApiProvider(
        base_url=f"http://127.0.0.1:{port}",
        api_version="v21.0",
        access_token=GRAPH_TOKEN,
        max_attempts=12,
    )

    async def start_late() -> None:
        await asyncio.sleep(0.2)
        await server.start()

    try:
        started = time.monotonic()
        late = asyncio.create_task(start_late())
        wamid = await client.send(
            OutboundMessage(BUSINESS_NUMBER, new_phone(), Content.plain("hello"), "p1")
        )
        await late
        assert [m.wamid for m in fake.sent] == [wamid]
        assert time.monotonic() - started < 5.0
    finally:
        await client.close()
        await server.stop()


async def test_a_timeout_or_an_unreadable_200_is_an_unknown_outcome_never_retried(
    graph: GraphApiFake,
) -> None:
    client = CloudApiProvider(
        base_url=graph.base_url,  # type: ignore[attr-defined]
        api_version="v21.0",
        access_token=GRAPH_TOKEN,
        timeout=0.5,
    )
    message = OutboundMessage(BUSINESS_NUMBER, new_phone(), Content.plain("hello"), "p1")
    try:
        graph.accept_late_next(1, 1.5)
        with pytest.raises(OutcomeUnknown):
            await client.send(message)
        graph.fail_next_malformed(1)
        with pytest.raises(OutcomeUnknown):
            await client.send(message)
    finally:
        await client.close()
    assert graph.attempts == 2 and len(graph.sent) == 1


# -- the delivery actor killed mid-send --------------------------------------------------


async def test_a_killed_delivery_actors_claim_is_taken_back_before_its_lease_ends_and_sent_once(
    graph: GraphApiFake, actors: ActorClient, db: asyncpg.Pool
) -> None:
    phone = new_phone()
    item, outbound_id = await _stored_reply(db, phone, "sent by a worker about to die")
    graph.hang_next(1)  # Meta never answers, and records nothing: the send did not happen
    await _deliver_to_shard(actors, item)

    async def claimed() -> asyncpg.Record | None:
        return await db.fetchrow(
            "SELECT owner, lease_until FROM send_parts WHERE message_id = $1 AND state = 'claimed'",
            outbound_id,
        )

    await eventually(claimed, within=15)
    claim = await claimed()
    # Owned by a named delivery actor ("namespace/<set version>:delivery-N@host:pid:...").
    assert claim is not None and re.search(r"/[^/@]*delivery-\d+@", claim["owner"])
    for actor in actors.delivery:
        ray.kill(actor, no_restart=False)

    async def taken_back() -> bool:
        return await claimed() is None

    await eventually(taken_back, within=30)
    # The restarted actor knew the claim was its dead predecessor's: it did not wait out
    # the lease (a provider deadline and more) before treating the send as unknown.
    assert await db.fetchval("SELECT now() < $1", claim["lease_until"])

    async def sent() -> bool:
        return await _states(db, outbound_id) == [PartState.SENT]

    await eventually(sent, within=30)
    await asyncio.sleep(1.0)
    assert [m.text for m in graph.messages_to(phone)] == ["sent by a worker about to die"]


# -- Postgres going away around the provider call ----------------------------------------


async def test_a_claim_whose_status_sync_fails_is_rolled_back_not_left_held(
    graph: GraphApiFake, provider: CloudApiProvider, db: asyncpg.Pool,
    monkeypatch: pytest.MonkeyPatch,
) -> None:  # fmt: skip
    phone = new_phone()
    _, outbound_id = await _stored_reply(db, phone, "claimed as Postgres left")
    real_sync = send_ledger.sync_messages
    broken: list[int] = []

    async def sync_once_broken(conn: asyncpg.Connection, ids: list[int]) -> None:
        if not broken:
            broken.append(ids[0])
            raise ConnectionResetError("the connection to Postgres was lost")
        await real_sync(conn, ids)

    monkeypatch.setattr(send_ledger, "sync_messages", sync_once_broken)
    sender = _sender(db, provider, unknown_wait=8.0)
    with pytest.raises(ConnectionResetError):
        await sender.deliver(_request(outbound_id, phone, "claimed as Postgres left"))
    # Not held by a sender that never sent it: the next try sends it at once.
    assert await _states(db, outbound_id) == [PartState.PENDING]
    result = await sender.deliver(_request(outbound_id, phone, "claimed as Postgres left"))
    assert result.ok and broken == [outbound_id]
    assert [m.text for m in graph.messages_to(phone)] == ["claimed as Postgres left"]


async def test_a_send_meta_took_while_postgres_was_away_is_recorded_once_it_is_back(
    graph: GraphApiFake, provider: CloudApiProvider, db: asyncpg.Pool,
    monkeypatch: pytest.MonkeyPatch,
) -> None:  # fmt: skip
    phone = new_phone()
    _, outbound_id = await _stored_reply(db, phone, "sent during the outage")
    # The sender records sends in batches (actors.delivery.batched_ledger).
    real_finish = send_ledger.finish_sent_many
    refused: list[int] = []

    async def finish_after_an_outage(conn: asyncpg.Connection, *args: object) -> object:
        if len(refused) < 3:
            refused.append(outbound_id)
            raise asyncpg.CannotConnectNowError("the database system is starting up")
        return await real_finish(conn, *args)  # type: ignore[arg-type]

    monkeypatch.setattr(send_ledger, "finish_sent_many", finish_after_an_outage)
    result = await _sender(db, provider, unknown_wait=8.0).deliver(
        _request(outbound_id, phone, "sent during the outage")
    )
    assert result.ok and len(refused) == 3
    [sent] = graph.messages_to(phone)
    assert result.provider_message_id == sent.wamid
    # Recorded as sent with Meta's id, never left to the unknown-outcome wait.
    assert await _states(db, outbound_id) == [PartState.SENT]


# -- an unknown outcome while status webhooks arrive late ------------------------------


async def _sent_unknown(
    db: asyncpg.Pool, graph: GraphApiFake, provider: CloudApiProvider, phone: str
) -> tuple[int, str]:
    """A reply Meta took whose answer was lost: its part is `unknown`, the fake has it."""
    _, outbound_id = await _stored_reply(db, phone, "taken, answer lost")
    async with db.acquire() as conn:
        [part] = await send_ledger.create_parts(conn, outbound_id, await _payloads("x"))
        assert await send_ledger.claim(conn, part.id, "gone-owner", 30.0)
    message = OutboundMessage(
        BUSINESS_NUMBER, phone, Content.plain("taken, answer lost"),
        send_ledger.callback_data(outbound_id, 1),
    )  # fmt: skip
    wamid = await provider.send(message)
    async with db.acquire() as conn:
        assert await send_ledger.finish_unknown(conn, part.id, "gone-owner")
    return outbound_id, wamid


@pytest_asyncio.fixture
async def no_lag_left(redis: Redis, redis_prefix: str) -> AsyncIterator[None]:
    """The session's other tests share this prefix: their unknown sends must wait as usual."""
    yield
    await redis.delete(redis_prefix + webhook_lag.KEY)


@pytest.mark.usefixtures("no_lag_left")
async def test_while_status_webhooks_lag_an_unknown_send_waits_for_its_webhook_not_resent(
    webhooks: WebhookClient,
    graph: GraphApiFake,
    provider: CloudApiProvider,
    db: asyncpg.Pool,
    redis: Redis,
    redis_prefix: str,
) -> None:
    base_wait = 1.0

    def sender(prefix: str) -> LedgerSender:
        async def wait() -> float:
            return await webhook_lag.unknown_send_wait(redis, prefix, base_wait, 600.0)

        return LedgerSender(
            db, provider, None, _no_template, owner="test-sender", call_seconds=10.0,
            unknown_wait_seconds=base_wait, unknown_wait=wait,
        )  # fmt: skip

    # Without lag the configured wait stands: the lost answer is sent again after it.
    control = new_phone()
    control_id, _ = await _sent_unknown(db, graph, provider, control)
    quiet = sender(f"wa-test-nolag-{uuid.uuid4().hex[:6]}:")
    assert (await quiet.deliver(_request(control_id, control, "taken, answer lost"))).ok
    assert len(graph.messages_to(control)) == 2  # the duplicate this test is about

    # The gateway stores a status Meta stamped 60 s ago: webhooks arrive a minute late.
    late = {
        "id": f"wamid.other-{uuid.uuid4().hex}", "status": "delivered",
        "timestamp": str(int(time.time()) - 60), "recipient_id": new_phone(),
    }  # fmt: skip
    assert (await webhooks.post(envelope(statuses=[late]))).status_code == 200

    async def lagging() -> bool:
        return await webhook_lag.current(redis, redis_prefix) >= 59

    await eventually(lagging)
    phone = new_phone()
    outbound_id, wamid = await _sent_unknown(db, graph, provider, phone)
    delivery = asyncio.create_task(
        sender(redis_prefix).deliver(_request(outbound_id, phone, "taken, answer lost"))
    )
    await asyncio.sleep(base_wait + 3)
    # Well past the configured wait: still waiting for the webhook, nothing sent again.
    assert not delivery.done()
    assert await _states(db, outbound_id) == [PartState.UNKNOWN]
    assert len(graph.messages_to(phone)) == 1
    # The held-up "sent" webhook arrives: the part is known sent, and it stays one message.
    status = {
        "id": wamid, "status": "sent", "timestamp": str(int(time.time()) - 5),
        "recipient_id": phone,
        "biz_opaque_callback_data": send_ledger.callback_data(outbound_id, 1),
    }  # fmt: skip
    assert (await webhooks.post(envelope(statuses=[status]))).status_code == 200
    result = await asyncio.wait_for(delivery, 10)
    assert result.ok and result.provider_message_id == wamid
    assert len(graph.messages_to(phone)) == 1
