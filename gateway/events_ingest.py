"""The ingest path, announcing what it stored: new customer messages and status webhooks.

Both are queued on the Announcer and published after the webhook is answered.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import UTC, datetime

from config.vocabulary import MessageStatus
from gateway.events import Announcer
from gateway.ingest import Ingest, PoolHolder
from gateway.whatsapp import ParsedWebhook
from store.records import InboxItem


def announcing(
    on_stored: Callable[[Sequence[InboxItem]], None], announcer: Announcer
) -> Callable[[Sequence[InboxItem]], None]:
    """Wraps the router's submit: called once per group commit with the new messages."""

    def submit(items: Sequence[InboxItem]) -> None:
        on_stored(items)
        for item in items:
            announcer.announce(
                "message.new",
                conversation_id=item.conversation_id,
                message_id=item.message_id,
                direction="inbound",
            )

    return submit


class AnnouncingIngest(Ingest):
    def __init__(
        self,
        pools: PoolHolder,
        on_stored: Callable[[Sequence[InboxItem]], None],
        announcer: Announcer,
        *,
        writers: int = 4,
    ) -> None:
        super().__init__(pools, announcing(on_stored, announcer), writers=writers)
        self._announcer = announcer

    async def submit(self, parsed: ParsedWebhook) -> list[InboxItem]:
        items = await super().submit(parsed)
        if parsed.statuses:
            now = datetime.now(UTC)
            oldest = min(s.timestamp for s in parsed.statuses)
            self._announcer.note_status_age((now - oldest).total_seconds())
        for status in parsed.statuses:
            # Status webhooks name our message by its wamid; the pages refetch the thread.
            # "sent" was counted by the delivery actor when Meta accepted the send.
            if status.status != MessageStatus.SENT:
                self._announcer.count_status(status.status)
            self._announcer.announce(
                "message.status", provider_message_id=status.provider_message_id,
                status=status.status,
            )  # fmt: skip
        return items
