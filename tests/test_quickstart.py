"""README's quick start, run as a newcomer runs it, in a fresh directory: the commands are
read from README.md itself, so the test breaks when the README stops working.

The fresh directory holds this working tree's files (tracked and untracked, not ignored),
as a clone would. `python3.11 -m venv .venv` and `.venv/bin/wa-support serve` run
literally. The `pip install -e .` in between downloads and installs every dependency
(over a minute here), so by default it installs only the project itself
(`pip install --no-deps -e .`) and reuses the dependencies already installed for this
test run; WA_QUICKSTART_LITERAL=1 runs README's pip command exactly. The only other
change is the port: README's 8080 becomes a free one, since others test on this machine.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import signal
import socket
import subprocess
import sysconfig
import time
from pathlib import Path

import httpx
import psutil
import pytest

from tests.processes import interrupt, left_running
from tests.support import eventually

REPO = Path(__file__).resolve().parent.parent
README = (REPO / "README.md").read_text()
LITERAL = os.environ.get("WA_QUICKSTART_LITERAL") == "1"


def _blocks(section: str) -> list[str]:
    """The ```sh blocks of one README section (up to its next heading), in order."""
    blocks: list[str] = []
    inside, fence, current = False, False, []
    for line in README.splitlines():
        if line.startswith("```"):
            if fence and inside and current is not None:
                blocks.append("\n".join(current) + "\n")
            fence, current = not fence, []
            continue
        if fence:
            current.append(line)
        elif line.startswith("#"):  # a heading: outside a fence, "#" starts nothing else
            if inside:
                break
            inside = line.strip() == section
    return blocks


def _quick_start_commands() -> list[str]:
    # Step 1: "python3.11 -m venv .venv && .venv/bin/pip install -e . && .venv/bin/wa-support serve"
    block = _blocks("## Quick start")[0]
    [line] = [ln for ln in block.splitlines() if ln.strip() and not ln.startswith("#")][:1]
    return [part.strip() for part in line.split("&&")]


def _fresh_directory(target: Path) -> None:
    listed = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        cwd=REPO, check=True, capture_output=True,
    ).stdout.decode().split("\0")  # fmt: skip
    for name in filter(None, listed):
        source = REPO / name
        if source.is_file():
            (target / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, target / name)


def _reuse_installed_dependencies(venv: Path) -> None:
    # A path line in a .pth file puts the directory on sys.path without running the .pth
    # files inside it, so this test run's editable install of the project stays out.
    [site] = list((venv / "lib").glob("python3.*/site-packages"))
    (site / "zz_quickstart_dependencies.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _newcomer_env(port: int) -> dict[str, str]:
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("WHATSAPP_", "OPENROUTER_", "MSG91_", "VIRTUAL_ENV", "PYTHON"))
        and k not in ("DATABASE_URL", "REDIS_URL", "RAY_ADDRESS", "APP_ENV", "DATA_DIR")
    }
    env.update(PORT=str(port), LOG_LEVEL="WARNING")
    return env


def _run(command: str, cwd: Path, env: dict[str, str], timeout: float = 120) -> str:
    done = subprocess.run(
        ["bash", "-c", command], cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout
    )
    assert done.returncode == 0, f"{command!r} failed:\n{done.stdout}\n{done.stderr}"
    return done.stdout


@pytest.mark.quickstart
@pytest.mark.timeout(300)
async def test_readme_quick_start_in_a_fresh_directory_then_the_first_steps(
    tmp_path: Path,
) -> None:
    started = time.monotonic()
    fresh = tmp_path / "wa-support"
    fresh.mkdir()
    _fresh_directory(fresh)
    port = _free_port()
    env = _newcomer_env(port)
    make_venv, install, serve = _quick_start_commands()
    assert (make_venv, serve) == ("python3.11 -m venv .venv", ".venv/bin/wa-support serve")
    assert install == ".venv/bin/pip install -e ."

    _run(make_venv, fresh, env)
    if LITERAL:
        _run(install, fresh, env, timeout=900)
    else:
        _run(install.replace("install -e", "install -q --no-deps -e"), fresh, env)
        _reuse_installed_dependencies(fresh / ".venv")

    # A Popen handle, so the test reads the banner and sends Ctrl-C (SIGINT) itself.
    proc = subprocess.Popen(  # noqa: ASYNC220
        ["bash", "-c", f"exec {serve}"], cwd=fresh, env=env,
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip
    base = f"http://127.0.0.1:{port}"
    children: list[psutil.Process] = []
    try:
        banner = await _banner(proc)
        children = psutil.Process(proc.pid).children(recursive=True)
        # One line per part, embedded or external, with where it is.
        data_dir = fresh / ".wa-support"
        # (A socket path too long for Unix sockets moves to a short one under /tmp.)
        assert "postgres:  embedded, started by this process, unix socket in /" in banner
        assert "redis:     embedded, started by this process, unix socket /" in banner
        assert "delivery:  sandbox" in banner
        assert "responder: offline FAQ responder" in banner

        # README's signed test webhook, literally (the port aside); the timestamp is now.
        post, fetch = _webhook_commands(port)
        assert json.loads(_run(post, fresh, env)) == {"stored": 1, "duplicates": 0, "statuses": 0}

        async def answered() -> bool:
            return bool(json.loads(_run(fetch, fresh, env)))

        await eventually(answered, within=60)
        [reply] = json.loads(_run(fetch, fresh, env))
        assert reply["to"] == "15551234567" and "Monday to Friday" in reply["text"]

        # README's advice for a first look at the dashboard, beside the running serve.
        seeded = _run(".venv/bin/wa-support db seed", fresh, env)
        assert "seeded" in seeded

        async with httpx.AsyncClient(base_url=base, timeout=30) as http:
            account = {"email": "ada@example.test", "password": "a long enough password"}
            registered = await http.post(
                "/api/auth/register", json={**account, "display_name": "Ada"}
            )
            assert registered.status_code == 201, registered.text
            login = await http.post("/api/auth/login", json=account)
            assert login.status_code == 200, login.text
            assert login.json()["user"]["role"] == "admin"  # the first to register
            token = login.json()["access_token"]
            listed = await http.get(
                "/api/conversations", headers={"Authorization": f"Bearer {token}"}
            )
            assert listed.status_code == 200
            assert len(listed.json()["conversations"]) > 1  # the demo ones and Ada's
            assert (await http.get("/api/health")).status_code == 200

            # The embedded Redis dies: 503 naming it (never 500) until serve has restarted it.
            pid_file = data_dir / "redis" / "redis.pid"
            killed = int(pid_file.read_text())
            os.kill(killed, signal.SIGKILL)
            answers: list[int] = []

            async def back() -> bool:
                response = await http.post("/api/auth/login", json=account)
                answers.append(response.status_code)
                if response.status_code == 503:
                    assert response.json()["part"] == "redis"
                return response.status_code == 200

            await eventually(back, within=30, interval=0.3)
            assert set(answers) <= {200, 503}, answers
            assert int(pid_file.read_text()) != killed
    finally:
        await interrupt(proc)

    assert proc.returncode == 0
    left = await left_running(children, fresh)
    assert left == [], f"left running after Ctrl-C: {left}"
    print(f"quick start: {time.monotonic() - started:.0f} s, literal pip install: {LITERAL}")


async def _banner(proc: subprocess.Popen[str]) -> str:
    assert proc.stdout is not None
    deadline = time.monotonic() + 120
    banner = ""
    while "Press Ctrl-C to stop." not in banner:
        assert time.monotonic() < deadline, f"serve did not start:\n{banner}"
        line = await asyncio.to_thread(proc.stdout.readline)
        assert line, f"serve exited early:\n{banner}"
        banner += line
    return banner


def _webhook_commands(port: int) -> tuple[str, str]:
    """README's webhook block: the signed POST, and the sandbox's record of what was sent."""
    [block] = _blocks("### Send a signed test webhook")
    block = block.replace("127.0.0.1:8080", f"127.0.0.1:{port}")
    lines = [ln for ln in block.splitlines() if not ln.startswith("#")]
    fetch = next(ln for ln in lines if "/sandbox/_fake/messages" in ln)
    post = "\n".join(lines[: lines.index(fetch)])
    return post, fetch
