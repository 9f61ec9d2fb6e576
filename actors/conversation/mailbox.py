"""A virtual actor's mailbox: inbox order, each message at most once while it waits."""

from __future__ import annotations

import heapq

from store.records import InboxItem


class Mailbox:
    """Ordered by inbox id, so a replayed or late-routed message takes its rightful place."""

    def __init__(self) -> None:
        self._heap: list[tuple[int, InboxItem]] = []
        self._ids: set[int] = set()
        self._closed = False
        # The message popped and not yet finished: it still holds memory and a slot.
        self.in_hand = 0

    def put(self, item: InboxItem) -> bool:
        if self._closed or item.message_id in self._ids:
            return False
        self._ids.add(item.message_id)
        heapq.heappush(self._heap, (item.message_id, item))
        return True

    def pop(self) -> InboxItem:
        _, item = heapq.heappop(self._heap)
        self._ids.discard(item.message_id)
        self.in_hand = 1
        return item

    def finish(self) -> None:
        """The popped message is done with (handled, or given up on)."""
        self.in_hand = 0

    @property
    def held(self) -> int:
        """Messages waiting plus the one in hand: what the shard's bound counts."""
        return len(self._heap) + self.in_hand

    def close(self) -> int:
        """Forget what waits and take nothing more (shutdown); return how many were waiting.

        The rows stay unprocessed in the inbox, so the next start replays them in order.
        """
        dropped = len(self._heap)
        self._closed = True
        self._heap.clear()
        self._ids.clear()
        return dropped

    def __len__(self) -> int:
        return len(self._heap)
