"""The load tester: its verdict catches lost, duplicated and reordered replies, and a short
self-contained run of `wa-support loadtest` against its own service reports zero of each."""

from __future__ import annotations

from pathlib import Path

from fakes.graph_api import GraphApiFake
from loadtest.customers import Acked
from loadtest.options import LoadOptions
from loadtest.replies import SeenReply
from loadtest.run import run
from loadtest.verify import verify
from tests.databases import fresh_database
from tests.support import WebhookClient, envelope, eventually, new_phone, new_wamid, text_message


async def _two_answered_messages(
    webhooks: WebhookClient, graph: GraphApiFake
) -> tuple[list[Acked], list[SeenReply]]:
    phone = new_phone()
    acked = []
    for seq in (1, 2):
        wamid = new_wamid()
        response = await webhooks.post(
            envelope([text_message(phone, f"question #{seq}", wamid=wamid)])
        )
        assert response.status_code == 200
        acked.append(Acked(phone, seq, wamid))

        async def answered(n: int = seq) -> bool:
            return len(graph.messages_to(phone)) >= n

        await eventually(answered, within=30)
    seen = [
        SeenReply(m.to, m.text, m.biz_opaque_callback_data, float(i))
        for i, m in enumerate(graph.messages_to(phone))
    ]
    return acked, seen


async def test_the_verdict_counts_each_kind_of_broken_reply(
    webhooks: WebhookClient, graph: GraphApiFake, database_url: str
) -> None:
    acked, seen = await _two_answered_messages(webhooks, graph)
    assert (await verify(database_url, acked, seen)).ok

    duplicated = await verify(database_url, acked, [*seen, seen[0]])
    assert (duplicated.duplicated, duplicated.lost, duplicated.reordered) == (1, 0, 0)

    lost = await verify(database_url, acked, seen[1:])
    assert (lost.lost, lost.duplicated) == (1, 0)

    reordered = await verify(database_url, acked, list(reversed(seen)))
    assert reordered.reordered == 1 and not reordered.ok

    never_stored = Acked(acked[0].phone, 3, new_wamid())
    unstored = await verify(database_url, [*acked, never_stored], seen)
    assert unstored.unstored == 1 and not unstored.ok


async def test_a_short_self_contained_run_answers_everyone_exactly_once(
    database_url: str, redis_url: str, tmp_path: Path
) -> None:
    # Its own database on the same server, so the run's service migrates a clean one.
    async with fresh_database(database_url, "wa_loadtest") as dsn:
        report = await run(
            LoadOptions(customers=20, duration=6, ramp_up=2, think_mean=0.2, settle=45),
            database_url=dsn,
            redis_url=redis_url,
            report_dir=tmp_path,
            progress=False,
        )
    correctness = report["correctness"]
    assert correctness["ok"], correctness
    assert correctness["checked"] >= 20  # every customer wrote at least once
    assert report["messages"]["replies_seen"] >= correctness["checked"]
    assert report["messages"]["duplicates_posted"] >= 0
    assert report["cpu"]["ms_per_reply"] is not None and report["cpu"]["ms_per_reply"] > 0
    assert report["reply_latency"]["p99_ms"] is not None
    assert sorted(p.suffix for p in tmp_path.iterdir()) == [".json", ".md"]  # noqa: ASYNC240
