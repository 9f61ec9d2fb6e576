"""Settings, webhook log, stats, live events, diagnostics, readiness and metrics."""

from __future__ import annotations

import asyncio
import contextlib

import asyncpg
import httpx
import orjson
import pytest_asyncio

from fakes.graph_api import GraphApiFake
from tests.api_fixtures import Operator
from tests.conftest import APP_SECRET, FALLBACK_MODEL, GRAPH_TOKEN, PRIMARY_MODEL
from tests.support import WebhookClient, envelope, eventually, new_phone, text_message


@pytest_asyncio.fixture
async def customer(api_url: str) -> WebhookClient:
    client = WebhookClient(api_url, APP_SECRET)
    yield client  # type: ignore[misc]
    await client.close()


# -- settings ---------------------------------------------------------------------------


async def test_settings_show_the_environment_defaults_until_an_admin_changes_them(
    api: httpx.AsyncClient, admin: Operator
) -> None:
    settings = (await api.get("/api/settings", headers=admin.headers)).json()
    assert settings["models"] == {"primary": PRIMARY_MODEL, "fallbacks": [FALLBACK_MODEL]}
    assert settings["faq"]["entries"]  # the shipped FAQ file
    assert settings["business_hours"] is None


async def test_a_models_change_takes_effect_without_a_restart(
    api: httpx.AsyncClient, admin: Operator, customer: WebhookClient, db: asyncpg.Pool
) -> None:
    before = (await api.get("/api/settings", headers=admin.headers)).json()["version"]
    swapped = {"primary": FALLBACK_MODEL, "fallbacks": [PRIMARY_MODEL]}
    response = await api.put("/api/settings/models", json=swapped, headers=admin.headers)
    assert response.status_code == 200, response.text
    assert response.json()["models"] == swapped
    assert response.json()["version"] > before
    assert "models" in response.json()["overridden"]
    try:
        phone = new_phone()

        async def answered_by_new_primary() -> bool:
            await customer.post(envelope([text_message(phone, "which model?")]))
            model = await db.fetchval(
                """SELECT o.model FROM messages o JOIN conversations c ON c.id = o.conversation_id
                   WHERE c.customer_phone = $1 AND o.direction = 'outbound'
                   ORDER BY o.id DESC LIMIT 1""",
                phone,
            )
            return model == FALLBACK_MODEL

        await eventually(answered_by_new_primary, within=20, interval=1.0)
    finally:
        reverted = await api.delete("/api/settings/models", headers=admin.headers)
    assert reverted.json()["models"]["primary"] == PRIMARY_MODEL


async def test_invalid_settings_are_refused_with_the_reason(
    api: httpx.AsyncClient, admin: Operator
) -> None:
    cases = {
        "models": {"primary": "a/b", "fallbacks": ["a/b"]},
        "business_hours": {"timezone": "Mars/Olympus"},
        "flows": {"flows": [{"name": "x", "trigger": {"keyword": ["hi"]}, "actions": []}]},
        "window_template": {"name": "Has Spaces", "language": "en_US"},
        "system_prompt": {"value": ""},
        "faq": {"entries": [{"question": "q"}]},
    }
    for key, value in cases.items():
        response = await api.put(f"/api/settings/{key}", json=value, headers=admin.headers)
        assert response.status_code == 422, (key, response.text)
        assert response.json()["detail"], key
    bad_regex = {
        "flows": [{"name": "r", "trigger": {"regex": "(unclosed"}, "actions": [{"reply": "x"}]}]
    }
    response = await api.put("/api/settings/flows", json=bad_regex, headers=admin.headers)
    assert response.status_code == 422


async def test_business_hours_are_stored_inside_the_flows_the_engine_reads(
    api: httpx.AsyncClient, admin: Operator, db: asyncpg.Pool
) -> None:
    hours = {"timezone": "Europe/Berlin", "weekly": {"mon": ["09:00-17:30"]}}
    flow = {"name": "hello", "trigger": {"keyword": ["hello"]}, "actions": [{"reply": "Hi!"}]}
    await api.put("/api/settings/flows", json={"flows": [flow]}, headers=admin.headers)
    try:
        saved = await api.put("/api/settings/business_hours", json=hours, headers=admin.headers)
        assert saved.status_code == 200, saved.text
        assert saved.json()["business_hours"]["weekly"] == {"mon": ["09:00-17:30"]}
        stored = await db.fetchval("SELECT value FROM app_settings WHERE key = 'flows'")
        assert stored["business_hours"]["timezone"] == "Europe/Berlin"
        assert [f["name"] for f in stored["flows"]] == ["hello"]  # kept beside the new hours
    finally:
        await api.delete("/api/settings/flows", headers=admin.headers)


async def test_an_operator_flow_answers_without_a_restart(
    api: httpx.AsyncClient, admin: Operator, customer: WebhookClient, graph: GraphApiFake
) -> None:
    flows = {
        "flows": [
            {
                "name": "zebra",
                "trigger": {"keyword": ["zebraprobe"]},
                "actions": [{"reply": "Stripes, of course."}],
            }
        ]
    }
    response = await api.put("/api/settings/flows", json=flows, headers=admin.headers)
    assert response.status_code == 200, response.text
    try:
        phone = new_phone()

        async def flow_answered() -> bool:
            await customer.post(envelope([text_message(phone, "zebraprobe")]))
            await asyncio.sleep(0.3)
            return "Stripes, of course." in [m.text for m in graph.messages_to(phone)]

        await eventually(flow_answered, within=20, interval=0.7)
    finally:
        await api.delete("/api/settings/flows", headers=admin.headers)


async def test_the_system_prompt_is_stored_as_the_string_the_llm_pool_reads(
    api: httpx.AsyncClient, admin: Operator, db: asyncpg.Pool
) -> None:
    await api.put("/api/settings/system_prompt", json={"value": "Be brief."}, headers=admin.headers)
    try:
        stored = await db.fetchval("SELECT value FROM app_settings WHERE key = 'system_prompt'")
        assert stored == "Be brief."
        got = (await api.get("/api/settings", headers=admin.headers)).json()
        assert got["system_prompt"] == "Be brief."
    finally:
        await api.delete("/api/settings/system_prompt", headers=admin.headers)


# -- webhook log and stats --------------------------------------------------------------


async def test_the_webhook_log_lists_outcomes_and_latency_and_no_secrets(
    api: httpx.AsyncClient, agent: Operator, customer: WebhookClient
) -> None:
    await customer.post(envelope([text_message(new_phone(), "logged")]))
    forged = await customer.post(
        envelope([text_message(new_phone(), "forged")]),
        headers={"X-Hub-Signature-256": "sha256=00"},
    )
    assert forged.status_code == 403

    async def both_logged() -> bool:
        events = (await api.get("/api/webhook-events", headers=agent.headers)).json()["events"]
        return {"stored", "bad_signature"} <= {e["outcome"] for e in events[:10]}

    await eventually(both_logged)
    page = await api.get(
        "/api/webhook-events", params={"outcome": "bad_signature"}, headers=agent.headers
    )
    events = page.json()["events"]
    assert events and all(e["outcome"] == "bad_signature" for e in events)
    assert all(e["latency_ms"] is not None and e["latency_ms"] >= 0 for e in events)
    assert APP_SECRET not in page.text and "forged" not in page.text


async def test_stats_count_messages_replies_and_states(
    api: httpx.AsyncClient, agent: Operator, customer: WebhookClient, graph: GraphApiFake
) -> None:
    phone = new_phone()
    await customer.post(envelope([text_message(phone, "count me")]))

    async def replied() -> bool:
        return bool(graph.messages_to(phone))

    await eventually(replied)
    await asyncio.sleep(0.3)
    stats = (await api.get("/api/stats", params={"minutes": 5}, headers=agent.headers)).json()
    assert sum(m["inbound"] for m in stats["per_minute"]) >= 1
    assert sum(m["outbound"] for m in stats["per_minute"]) >= 1
    assert stats["llm_replies"] >= 1
    assert stats["reply_latency_p50_ms"] is not None and stats["reply_latency_p50_ms"] > 0
    assert stats["reply_latency_p95_ms"] >= stats["reply_latency_p50_ms"]
    assert stats["conversations_by_state"]["bot"] >= 1
    assert 0 <= stats["llm_fallback_rate"] <= 1


# -- live events --------------------------------------------------------------------------


async def test_live_events_stream_new_messages_status_and_state_changes(
    api_url: str, agent: Operator, customer: WebhookClient, api: httpx.AsyncClient
) -> None:
    events: list[dict] = []
    ready = asyncio.Event()

    async def listen() -> None:
        async with (
            httpx.AsyncClient(base_url=api_url, timeout=None) as client,
            client.stream("GET", "/api/events", headers=agent.headers) as stream,
        ):
            assert stream.headers["content-type"].startswith("text/event-stream")
            async for line in stream.aiter_lines():
                if line.startswith("event: ready"):
                    ready.set()
                elif line.startswith("data: ") and ready.is_set():
                    events.append(orjson.loads(line[6:]))

    task = asyncio.create_task(listen())
    try:
        await asyncio.wait_for(ready.wait(), 10)
        phone = new_phone()
        await customer.post(envelope([text_message(phone, "live?")]))

        def kinds() -> set[str]:
            return {e["type"] for e in events}

        async def got(kind: str) -> bool:
            return kind in kinds()

        await eventually(lambda: got("message.new"))
        await eventually(lambda: got("message.status"))  # the bot's reply was sent
        conversation_id = next(e for e in events if e["type"] == "message.new")["conversation_id"]
        await api.post(
            f"/api/conversations/{conversation_id}/handoff", json={}, headers=agent.headers
        )
        await eventually(lambda: got("conversation.updated"))
        update = next(e for e in events if e["type"] == "conversation.updated")
        assert update == {
            "type": "conversation.updated",
            "conversation_id": conversation_id,
            "state": "human",
            "change": "handoff",
        }
        assert all("text" not in e for e in events)  # hints only, never message text
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


# -- diagnostics ------------------------------------------------------------------------


async def test_db_test_reports_postgres_and_redis_round_trips(
    api: httpx.AsyncClient, admin: Operator
) -> None:
    result = (await api.get("/api/db-test", headers=admin.headers)).json()
    assert result["ok"] is True
    assert [s["name"].split(":")[0] for s in result["steps"]] == ["postgres", "redis"]
    assert all(s["ms"] >= 0 for s in result["steps"])


async def test_test_llm_answers_through_the_pool_and_names_the_model(
    api: httpx.AsyncClient, admin: Operator
) -> None:
    result = (
        await api.post("/api/test-llm", json={"prompt": "ping"}, headers=admin.headers)
    ).json()
    assert result["ok"] is True
    assert result["model"] == PRIMARY_MODEL
    assert result["reply"] == "Echo: ping"
    assert result["ms"] > 0


async def test_test_whatsapp_sends_one_message_through_the_provider(
    api: httpx.AsyncClient, admin: Operator, graph: GraphApiFake
) -> None:
    to = new_phone()
    result = await api.post(
        "/api/test-whatsapp", json={"to": to, "text": "diagnostic"}, headers=admin.headers
    )
    assert result.status_code == 200, result.text
    assert result.json()["ok"] is True
    assert [m.text for m in graph.messages_to(to)] == ["diagnostic"]
    assert result.json()["provider_message_id"] == graph.messages_to(to)[0].wamid
    assert GRAPH_TOKEN not in result.text


async def test_instructions_explain_the_signed_webhook_without_the_secret(
    api: httpx.AsyncClient, admin: Operator, api_url: str
) -> None:
    result = await api.get("/api/test/instructions", headers=admin.headers)
    body = result.json()
    assert body["webhook_url"] == f"{api_url}/api/webhooks/whatsapp-business"
    assert "X-Hub-Signature-256" in body["example"]
    assert APP_SECRET not in result.text


# -- readiness and metrics ----------------------------------------------------------------


async def test_readiness_checks_every_part_and_names_a_failing_one(
    api: httpx.AsyncClient, settings: object, database_url: str
) -> None:
    ready = await api.get("/api/health")
    assert ready.status_code == 200, ready.text
    body = ready.json()
    assert set(body["checks"]) == {"postgres", "redis", "actors", "delivery_provider"}
    assert all(check["ok"] for check in body["checks"].values())
    assert body["llm_breakers"] is not None  # reported by the LLM actors

    from config import Settings
    from fakes.server import FakeServer
    from gateway.app import create_app

    class _NoDispatch:
        def submit(self, items: object) -> None:
            return None

    assert isinstance(settings, Settings)
    broken = create_app(
        settings, _NoDispatch(), database_url=database_url, redis_url="redis://127.0.0.1:1/0"
    )
    async with FakeServer(broken) as server, httpx.AsyncClient(base_url=server.url) as client:
        response = await client.get("/api/health")
    assert response.status_code == 503
    assert response.json()["failing"] == ["redis"]


async def test_metrics_cover_webhooks_replies_queues_llm_deliveries_and_statuses(
    api: httpx.AsyncClient, customer: WebhookClient, graph: GraphApiFake
) -> None:
    phone = new_phone()
    await customer.post(envelope([text_message(phone, "measure me")]))

    async def replied() -> bool:
        return bool(graph.messages_to(phone))

    await eventually(replied)
    wamid = graph.messages_to(phone)[0].wamid
    await customer.post(
        envelope(
            statuses=[{"id": wamid, "status": "read", "timestamp": "1", "recipient_id": phone}]
        )
    )
    text = ""

    async def complete() -> bool:
        nonlocal text
        text = (await api.get("/metrics")).text
        return 'wa_status_transitions_total{to="read"}' in text

    await eventually(complete)
    for needle in (
        'wa_webhook_requests_total{outcome="stored"',
        "wa_webhook_ack_seconds_bucket",
        "wa_reply_latency_seconds_bucket",
        "wa_router_queue_depth",
        'wa_shard_mailbox_depth{shard="0"}',
        'wa_active_virtual_actors{shard="1"}',
        "wa_llm_calls_total{",
        "wa_llm_latency_seconds",
        'wa_deliveries_total{code="",outcome="sent"}',
        'wa_status_transitions_total{to="sent"}',
    ):
        assert needle in text.replace('source="whatsapp_cloud",', ""), needle


async def test_every_response_carries_a_request_id(api: httpx.AsyncClient) -> None:
    response = await api.get("/api/health", headers={"X-Request-ID": "trace-123"})
    assert response.headers["X-Request-ID"] == "trace-123"
    generated = await api.get("/api/health", headers={"X-Request-ID": "not-sane<" + "x" * 80})
    assert len(generated.headers["X-Request-ID"]) == 32
