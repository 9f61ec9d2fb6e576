#!/usr/bin/env bash
# The one command behind BENCHMARKS.md: signed-webhook ingest, gateway beside a bare aiohttp app
# and a pywa + FastAPI + uvicorn app (bench/pywa_app.py; --no-pywa leaves it out).
#
#   bench/run_ingest.sh                    # 3 runs x 10 s at 100 and 1000 connections (~5 min)
#   bench/run_ingest.sh --runs 1 --duration 5
#   BENCH_PG_DSN=postgresql://user@host:5432/postgres bench/run_ingest.sh
#
# Needs a Postgres server the current user may CREATE DATABASE on (default: trust auth,
# postgres@127.0.0.1:5432) and the project's virtualenv (.venv, or $PYTHON) with the [bench]
# extra installed (pip install -e '.[bench]': pywa, FastAPI, uvicorn, py-spy).
# Installs wrk with apt-get when it is missing; without apt it falls back to a Python load
# generator (bench/pyload.py), noted in the output. Results land in bench/results/.
set -euo pipefail
cd "$(dirname "$0")/.."

if ! command -v wrk >/dev/null 2>&1; then
    echo "wrk not found: installing it with apt-get" >&2
    if command -v apt-get >/dev/null 2>&1; then
        SUDO=""
        if [ "$(id -u)" != 0 ]; then
            if command -v sudo >/dev/null 2>&1; then SUDO="sudo"; fi
        fi
        { $SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq wrk; } \
            || echo "could not install wrk; falling back to bench/pyload.py" >&2
    else
        echo "apt-get not available; falling back to bench/pyload.py" >&2
    fi
fi

# 1000 connections need well over 1000 file descriptors in wrk and in the servers.
ulimit -n 65536 2>/dev/null || ulimit -n "$(ulimit -Hn)" 2>/dev/null || true

PY="${PYTHON:-}"
if [ -z "$PY" ]; then
    if [ -x .venv/bin/python ]; then PY=.venv/bin/python; else PY=python3; fi
fi
# py-spy (for the profile) lives beside the interpreter in the venv.
export PATH="$(dirname "$PY"):$PATH"
exec "$PY" bench/ingest.py "$@"
