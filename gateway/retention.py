"""The retention sweep: a background task of each gateway that prunes old rows.

Every RETENTION_SWEEP_SECONDS it prunes, per kind, batches of RETENTION_BATCH_SIZE until
a batch comes back short or RETENTION_MAX_BATCHES ran (the rest waits for the next
round), and applies any held MSG91 report whose send got recorded meanwhile.
"""

from __future__ import annotations

import asyncio
from datetime import timedelta

import structlog

from config import Settings
from gateway.background import BackgroundTask
from gateway.ingest import PoolHolder
from store import outbound, retention

log = structlog.get_logger(__name__)
# A pause between batches: the sweep yields to the webhooks' commits.
BATCH_PAUSE_SECONDS = 0.05


def retention_periods(settings: Settings) -> dict[str, timedelta]:
    """How long each kind is kept; a kind set to 0 is kept for ever (absent here)."""
    periods = {
        "webhook_log": timedelta(days=settings.webhook_log_retention_days),
        "status_history": timedelta(days=settings.status_history_retention_days),
        "media": timedelta(days=settings.media_retention_days),
        "held_statuses": timedelta(seconds=settings.held_status_max_age_seconds),
    }
    return {kind: period for kind, period in periods.items() if period > timedelta(0)}


class RetentionSweeper:
    def __init__(self, pools: PoolHolder, settings: Settings) -> None:
        self._pools = pools
        self._periods = retention_periods(settings)
        self._interval = settings.retention_sweep_seconds
        self._batch = settings.retention_batch_size
        self._max_batches = settings.retention_max_batches
        self._task = BackgroundTask("retention-sweep")

    def start(self) -> None:
        if self._interval > 0:
            self._task.start(self._run)

    async def stop(self) -> None:
        await self._task.stop()

    async def _run(self) -> None:
        while True:
            try:
                await self.sweep()
            except Exception as exc:
                # Postgres away: the next round tries again; nothing here is urgent.
                log.warning("retention_sweep_failed", error=repr(exc))
            await asyncio.sleep(self._interval)

    async def sweep(self) -> dict[str, int]:
        """One round; rows pruned per kind."""
        pool = await self._pools.get()
        pruned: dict[str, int] = {}
        for kind, period in self._periods.items():
            pruned[kind] = 0
            for _ in range(self._max_batches):
                async with pool.acquire() as conn:
                    done = await retention.prune_batch(conn, kind, period, self._batch)
                if done is None:
                    break  # another gateway is sweeping
                pruned[kind] += done
                if done < self._batch:
                    break
                await asyncio.sleep(BATCH_PAUSE_SECONDS)
        async with pool.acquire() as conn:
            pruned["held_applied"] = await outbound.apply_held_recorded(conn, self._batch)
        if any(pruned.values()):
            log.info("retention_pruned", **pruned)
        return pruned
