"""A process that holds the embedded servers under a DATA_DIR, as `serve` does, for the
lease tests: `python -m tests.lease_holder DATA_DIR ROLE`. It prints one JSON line with
what it got and every supervision action, and lets go on SIGTERM."""

from __future__ import annotations

import json
import signal
import sys
import threading
from pathlib import Path

from config.logs import configure_logging
from store.embedded_lease import SERVE, EmbeddedLease, LeaseSupervisor


def main() -> None:
    configure_logging("WARNING")  # on stderr: stdout carries the lines the test reads
    data_dir, role = Path(sys.argv[1]), sys.argv[2]
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    lease = EmbeddedLease(data_dir, postgres=True, redis=True, role=role).open()
    print(json.dumps({"owner": lease.owner, "database_url": lease.database_url,
                      "redis_url": lease.redis_url}), flush=True)  # fmt: skip
    supervisor = LeaseSupervisor(lease, lambda line: print(line, flush=True), interval=0.3)
    if role == SERVE:
        supervisor.start()
    stop.wait()
    if role == SERVE:
        supervisor.stop()
    lease.close()
    print("closed", flush=True)


if __name__ == "__main__":
    main()
