"""Run an ``aiohttp`` application on a loopback port for the duration of a block.

Used by tests and load tests to host :mod:`fakes` (and tiny webhook receivers)
without ``web.run_app``, which owns the event loop and installs signal handlers.
"""

from __future__ import annotations

from types import TracebackType

from aiohttp import web

HOST = "127.0.0.1"

# Fakes release their own hung requests on shutdown (``on_shutdown``), so any
# handler still running after this is a bug; do not let it stall teardown 60 s.
_SHUTDOWN_TIMEOUT = 2.0


class FakeServer:
    """Serve ``app`` on ``127.0.0.1:port`` (``port=0`` picks a free port).

    ``async with FakeServer(fake.app) as srv: ... srv.url ...``
    """

    def __init__(self, app: web.Application, port: int = 0) -> None:
        self.app = app
        self._requested_port = port
        self._port: int | None = None
        self._runner: web.AppRunner | None = None

    @property
    def port(self) -> int:
        if self._port is None:
            raise RuntimeError("FakeServer is not started")
        return self._port

    @property
    def url(self) -> str:
        return f"http://{HOST}:{self.port}"

    async def start(self) -> None:
        if self._runner is not None:
            raise RuntimeError("FakeServer already started")
        # handler_cancellation: a client that times out and hangs up should end
        # the matching server-side handler, as it would against a real service.
        runner = web.AppRunner(
            self.app,
            handle_signals=False,
            access_log=None,
            handler_cancellation=True,
            shutdown_timeout=_SHUTDOWN_TIMEOUT,
        )
        await runner.setup()
        site = web.TCPSite(runner, HOST, self._requested_port)
        try:
            await site.start()
        except BaseException:
            await runner.cleanup()
            raise
        self._runner = runner
        self._port = _bound_port(runner)

    async def stop(self) -> None:
        runner, self._runner = self._runner, None
        self._port = None
        if runner is not None:
            await runner.cleanup()

    async def __aenter__(self) -> FakeServer:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()


def _bound_port(runner: web.AppRunner) -> int:
    # With port=0 the kernel chooses, so the only truth is the listening socket.
    for address in runner.addresses:
        if isinstance(address, tuple) and len(address) >= 2:
            return int(address[1])
    raise RuntimeError("FakeServer: no TCP address bound")
