"""A second `serve` on an address another one serves is refused; `--workers` still shares it."""

from __future__ import annotations

import asyncio
import socket
import subprocess
import time
from pathlib import Path

import httpx
import pytest

from cli.port_guard import PortTaken, refuse_if_served
from tests.processes import interrupt
from tests.test_cli import CLI, _clean_env, _free_port


async def test_a_second_serve_on_the_same_port_is_refused_and_the_first_keeps_serving(
    tmp_path: Path,
) -> None:
    port = _free_port()
    env = _clean_env(tmp_path, port)
    first = subprocess.Popen(  # noqa: ASYNC220
        [str(CLI), "serve"], cwd=tmp_path, env=env,
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip
    try:
        assert first.stdout is not None
        deadline, banner = time.monotonic() + 120, ""
        while f"listening on http://127.0.0.1:{port}" not in banner:
            assert time.monotonic() < deadline, f"serve did not start:\n{banner}"
            line = await asyncio.to_thread(first.stdout.readline)
            assert line, f"serve exited early:\n{banner}"
            banner += line

        second = await asyncio.to_thread(
            subprocess.run, [str(CLI), "serve"], cwd=tmp_path, env=env,
            capture_output=True, text=True, timeout=60,
        )  # fmt: skip
        assert second.returncode == 2, second.stderr
        assert f"127.0.0.1:{port} is already served by another process" in second.stderr
        assert "serve --workers N" in second.stderr
        assert "--ray-address" in second.stderr
        assert "Traceback" not in second.stderr
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as http:
            assert (await http.get("/health")).status_code == 200
    finally:
        await interrupt(first)
    assert first.returncode == 0


def test_the_guard_refuses_a_reuse_port_listener_that_workers_could_still_join() -> None:
    def listener() -> socket.socket:
        s = socket.socket()
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        s.bind(("127.0.0.1", port))
        s.listen()
        return s

    port = _free_port()
    refuse_if_served("127.0.0.1", port)  # nothing there yet
    with listener():
        with pytest.raises(PortTaken, match="already served"):
            refuse_if_served("127.0.0.1", port)
        with listener():  # what a `--workers` worker does: the kernel lets it in
            pass
    refuse_if_served("127.0.0.1", port)  # free again once the owner is gone
