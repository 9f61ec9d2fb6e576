"""CPU time of the service: its process and every descendant, Ray's workers and daemons too.

Postgres, Redis and the load generator are not descendants of `serve`, so they are not
counted. A process that exits inside the window loses its last samples; Ray's workers live
for the whole run, so the error is small and errs low only by a process's final moments.
"""

from __future__ import annotations

import psutil


def process_kind(process: psutil.Process) -> str:
    """What the process is: `ray::ConversationShard`, `gcs_server`, `serve`, ..."""
    try:
        cmdline: list[str] = process.cmdline()
        if not cmdline:
            return str(process.name())
    except (psutil.NoSuchProcess, psutil.AccessDenied):
        return "?"
    first = str(cmdline[0])
    if first.startswith("ray::"):
        return first.split(".")[0]  # ray::DeliveryActor.send -> ray::DeliveryActor
    if "cli.main" in cmdline:
        return "gateway worker" if "--attach" in cmdline else "serve"
    program = first.rsplit("/", 1)[-1]
    if program.startswith("python") and len(cmdline) > 1:
        # Ray's Python daemons: name them by their script (agent.py, log_monitor.py, ...).
        script = next((a for a in cmdline[1:] if a.endswith(".py")), cmdline[1])
        return f"python {script.rsplit('/', 1)[-1]}"
    return str(program)


class TreeCpu:
    def __init__(self, pid: int) -> None:
        self._root = psutil.Process(pid)
        self._start: dict[int, float] = {}
        self._names: dict[int, str] = {}

    def _sample(self) -> dict[int, float]:
        times: dict[int, float] = {}
        try:
            processes = [self._root, *self._root.children(recursive=True)]
        except psutil.NoSuchProcess:
            return times
        for process in processes:
            try:
                cpu = process.cpu_times()
            except (psutil.NoSuchProcess, psutil.AccessDenied):
                continue
            # Children that were waited for fold into their parent's children_* times.
            times[process.pid] = cpu.user + cpu.system
            if process.pid not in self._names:
                self._names[process.pid] = process_kind(process)
        return times

    def start(self) -> None:
        self._start = self._sample()

    def seconds_since_start(self) -> float:
        """CPU seconds the tree used since start(); new processes count from zero."""
        now = self._sample()
        return sum(max(0.0, t - self._start.get(pid, 0.0)) for pid, t in now.items())

    def seconds_by_process(self) -> dict[str, float]:
        """The same CPU seconds, summed by what each process is, largest first."""
        now = self._sample()
        by: dict[str, float] = {}
        for pid, t in now.items():
            name = self._names.get(pid, "?")
            by[name] = by.get(name, 0.0) + max(0.0, t - self._start.get(pid, 0.0))
        return dict(sorted(((k, round(v, 2)) for k, v in by.items()), key=lambda kv: -kv[1]))

    def process_count(self) -> int:
        return len(self._sample())


class MachineCpu:
    """The rest of the machine over the same window: the load generator (this process,
    with the Graph and OpenRouter fakes in it), Postgres and Redis, and the whole machine.

    Not the service's figure, but what the service shares its cores with: on one machine
    the replies per second are bounded by all of it.
    """

    def __init__(self) -> None:
        self._own = psutil.Process()
        self._start: dict[str, float] = {}

    def _servers(self) -> dict[str, float]:
        totals = {"postgres": 0.0, "redis": 0.0}
        for process in psutil.process_iter(["name", "cpu_times"]):
            name = str(process.info.get("name") or "")
            times = process.info.get("cpu_times")
            if times is None:
                continue
            kind = "postgres" if name.startswith("postgres") else (
                "redis" if name.startswith("redis") else None
            )  # fmt: skip
            if kind is not None:
                totals[kind] += times.user + times.system
        return totals

    def _sample(self) -> dict[str, float]:
        own = self._own.cpu_times()
        machine = psutil.cpu_times()
        busy = machine.user + machine.system + getattr(machine, "softirq", 0.0) + getattr(
            machine, "irq", 0.0
        )
        return {
            "load generator and fakes": own.user + own.system,
            **self._servers(),
            "machine, all processes": busy,
        }

    def start(self) -> None:
        self._start = self._sample()

    def seconds_since_start(self) -> dict[str, float]:
        now = self._sample()
        return {k: round(max(0.0, v - self._start.get(k, 0.0)), 2) for k, v in now.items()}
