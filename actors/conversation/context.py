"""What a virtual conversation uses from the shard that hosts it.

The shard owns the connections and the batching of side channels; a conversation gets
them as this one typed object, so it never reaches back into the shard.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

import asyncpg
from redis.asyncio import Redis

from actors.conversation.batched_store import BatchedStore
from actors.conversation.turn import TurnPlanner
from actors.wire import DeliveryRequest, DeliveryResult
from config import Settings
from store.snapshots import SnapshotStore

SendReply = Callable[[DeliveryRequest], Awaitable[DeliveryResult]]

# Read ticks and media downloads are best effort: past this many waiting, new ones are dropped.
SIDE_CHANNEL_LIMIT = 10_000


@dataclass(slots=True)
class SideChannels:
    """Fire-and-forget work the shard sends to delivery in batches (read ticks, media)."""

    read_receipts: list[tuple[str, str]] = field(default_factory=list)
    media_fetches: list[tuple[int, str]] = field(default_factory=list)

    @property
    def has_room(self) -> bool:
        return len(self.read_receipts) < SIDE_CHANNEL_LIMIT

    def take_read_receipts(self) -> list[tuple[str, str]]:
        batch, self.read_receipts = self.read_receipts, []
        return batch

    def take_media_fetches(self) -> list[tuple[int, str]]:
        batch, self.media_fetches = self.media_fetches, []
        return batch


@dataclass(frozen=True, slots=True)
class ConversationContext:
    settings: Settings
    pool: asyncpg.Pool
    store: BatchedStore  # the per-message statements, shared across conversations
    redis: Redis  # for the live events operators' dashboards follow
    snapshots: SnapshotStore
    planner: TurnPlanner
    send_reply: SendReply  # the shard's batched call to the delivery actors
    side_channels: SideChannels
    # How conversations were activated, by source ("redis", "postgres"): the shard's stats.
    activations: dict[str, int]
    # How many more messages the shard may hold (its bound less what it holds now).
    room: Callable[[], int] = lambda: 1_000_000
