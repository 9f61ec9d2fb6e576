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

    def put(self, item: InboxItem) -> bool:
        if self._closed or item.message_id in self._ids:
            return False
        self._ids.add(item.message_id)
        heapq.heappush(self._heap, (item.message_id, item))
        return True

    def pop(self) -> InboxItem:
        _, item = heapq.heappop(self._heap)
        self._ids.discard(item.message_id)
        return item

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
