"""A virtual conversation actor (an Orleans-style grain), hosted inside a shard.

One per customer phone: its own mailbox and state, activated on its first message
and passivated when idle. Its messages are handled strictly one at a time in inbox
order; different phones run concurrently. Ray's async actors keep no call order,
so this mailbox is where per-phone ordering comes from (DESIGN.md §2).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable

import structlog

from actors.conversation.mailbox import Mailbox
from store.records import ConversationSnapshot, InboxItem

log = structlog.get_logger(__name__)

RETRY_ATTEMPTS = 5
RETRY_BASE_DELAY = 0.5

Handler = Callable[["VirtualConversation", InboxItem], Awaitable[None]]


class VirtualConversation:
    def __init__(self, business_number: str, customer_phone: str, handler: Handler) -> None:
        self.business_number = business_number
        self.customer_phone = customer_phone
        self.snapshot: ConversationSnapshot | None = None  # None until activated
        self.activated_from: str | None = None  # "redis" or "postgres"
        self.last_active = time.monotonic()
        self._handler = handler
        self._mailbox = Mailbox()
        self._worker: asyncio.Task[None] | None = None

    @property
    def busy(self) -> bool:
        return self._worker is not None and not self._worker.done()

    @property
    def queued(self) -> int:
        return len(self._mailbox)

    def post(self, item: InboxItem) -> None:
        self._mailbox.put(item)
        self.last_active = time.monotonic()
        if not self.busy:
            self._worker = asyncio.create_task(self._drain())

    async def _drain(self) -> None:
        # One message at a time: the next starts only when the previous reply was handed over.
        while len(self._mailbox):
            item = self._mailbox.pop()
            await self._handle_with_retries(item)
            self.last_active = time.monotonic()

    async def _handle_with_retries(self, item: InboxItem) -> None:
        # Retrying in place keeps later messages behind this one, so a reply never
        # overtakes an earlier one while, say, Postgres blips.
        for attempt in range(RETRY_ATTEMPTS):
            try:
                await self._handler(self, item)
                return
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception(
                    "message_handling_failed", message_id=item.message_id, attempt=attempt + 1
                )
                await asyncio.sleep(RETRY_BASE_DELAY * 2**attempt)
        # Still unprocessed in Postgres: the inbox sweeper replays it later.
        log.error("message_handling_gave_up", message_id=item.message_id)

    async def idle(self) -> None:
        """Wait until the mailbox is empty and nothing is in flight."""
        while self.busy and self._worker is not None:
            await asyncio.shield(self._worker)

    def cancel(self) -> None:
        if self._worker is not None:
            self._worker.cancel()
