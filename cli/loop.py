"""The event loop every long-running process of ours uses.

uvloop (libuv) runs aiohttp's socket and callback work markedly faster than the default
asyncio loop; on these 2-core machines the gateway is CPU-bound under load.
"""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from typing import Any, TypeVar

import uvloop

T = TypeVar("T")


def run(main: Coroutine[Any, Any, T]) -> T:
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        return runner.run(main)
