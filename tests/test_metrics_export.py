"""The LLM actors' metrics reach the gateway's scrape, labelled by actor."""

from __future__ import annotations

from actors.client import ActorClient, render_actor_metrics
from fakes.graph_api import GraphApiFake
from tests.support import WebhookClient, envelope, eventually, new_phone, text_message


async def test_llm_actor_metrics_are_rendered_with_an_actor_label(
    webhooks: WebhookClient, graph: GraphApiFake, actors: ActorClient
) -> None:
    phone = new_phone()
    await webhooks.post(envelope([text_message(phone, "count this call")]))

    async def answered() -> bool:
        return bool(graph.messages_to(phone))

    await eventually(answered)
    text = (await render_actor_metrics({"llm-0": actors.llm[0]})).decode()
    calls = [line for line in text.splitlines() if line.startswith("wa_llm_calls_total{")]
    assert any('actor="llm-0"' in line and 'outcome="ok"' in line for line in calls)
    assert "# TYPE wa_llm_latency_seconds histogram" in text


async def test_an_actor_that_does_not_answer_is_skipped_not_fatal() -> None:
    class Silent:
        class metric_families:
            @staticmethod
            def remote() -> object:
                import asyncio

                return asyncio.sleep(10)

    assert await render_actor_metrics({"stuck": Silent()}, wait=0.1) == b""
