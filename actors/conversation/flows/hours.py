"""Business hours in the business's own time zone."""

from __future__ import annotations

from datetime import datetime, time
from zoneinfo import ZoneInfo

from actors.conversation.flows.schema import DAYS, BusinessHours


def _span(text: str) -> tuple[time, time]:
    start, end = text.split("-")
    h1, m1 = (int(x) for x in start.split(":"))
    h2, m2 = (int(x) for x in end.split(":"))
    return time(h1, m1), (time(23, 59, 59, 999999) if h2 == 24 else time(h2, m2))


def is_open(hours: BusinessHours, now: datetime) -> bool:
    """Open now? A day with no spans is closed; `now` must be timezone-aware."""
    local = now.astimezone(ZoneInfo(hours.timezone))
    day = DAYS[local.weekday()]
    clock = local.time()
    for text in hours.weekly.get(day, []):  # type: ignore[call-overload]
        start, end = _span(text)
        if start <= clock < end:
            return True
    return False
