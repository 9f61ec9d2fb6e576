"""Conversations: shards hosting per-customer virtual actors, their router, turns and flows."""

from actors.conversation.router import ShardRouter
from actors.conversation.shard import ConversationShard

__all__ = ["ConversationShard", "ShardRouter"]
