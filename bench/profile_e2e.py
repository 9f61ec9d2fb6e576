"""Where the CPU of a reply goes: py-spy every service process during a load test.

    .venv/bin/python bench/profile_e2e.py [--seconds 20] [--delay 15] [-- loadtest args]

Starts `wa-support loadtest` (its own service and fakes), waits `--delay` seconds for the
steady part, then samples every Ray actor and the gateway with py-spy for `--seconds`,
and prints per process the functions with the most samples: own time (the innermost
frame) and inclusive time (anywhere on the stack). Idle samples are left out.
"""

from __future__ import annotations

import argparse
import collections
import subprocess
import sys
import time
from pathlib import Path

import psutil

KINDS = ("ray::ConversationShard", "ray::DeliveryActor", "ray::LLMPool")


def _kind(p: psutil.Process) -> str | None:
    try:
        cmd = " ".join(p.cmdline())
    except psutil.Error:
        return None
    for k in KINDS:
        if cmd.startswith(k):
            return k
    if "wa-support serve" in cmd or cmd.endswith(" serve") or " serve " in cmd:
        return "serve"
    return None


def _targets(root: psutil.Process) -> list[tuple[str, int]]:
    found = []
    for p in [root, *root.children(recursive=True)]:
        kind = _kind(p)
        if kind:
            found.append((kind, p.pid))
    return found


def _fold(path: Path, top: int) -> str:
    own: collections.Counter[str] = collections.Counter()
    incl: collections.Counter[str] = collections.Counter()
    total = 0
    for line in path.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack:
            continue
        n = int(count)
        frames = stack.split(";")
        total += n
        own[frames[-1]] += n
        for f in set(frames):
            incl[f] += n
    out = [f"  samples {total}"]
    out.append("  own:")
    out += [f"    {n / total:6.1%}  {f[:150]}" for f, n in own.most_common(top)]
    out.append("  inclusive:")
    out += [f"    {n / total:6.1%}  {f[:150]}" for f, n in incl.most_common(top * 2)]
    return "\n".join(out)


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seconds", type=float, default=20)
    ap.add_argument("--delay", type=float, default=15)
    ap.add_argument("--top", type=int, default=25)
    ap.add_argument("--out", default="/tmp/profile_e2e")
    ap.add_argument("--native", action="store_true", help="py-spy --native (C frames too)")
    ap.add_argument("--only", default="", help="profile only process kinds containing this")
    ap.add_argument("loadtest", nargs="*")
    args = ap.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    exe = Path(sys.executable).with_name("wa-support")
    spy = Path(sys.executable).with_name("py-spy")
    load = subprocess.Popen(
        [str(exe), "loadtest", "--no-progress", "--report-dir", str(out), *args.loadtest],
        stdout=(out / "loadtest.log").open("w"),
        stderr=subprocess.STDOUT,
    )
    time.sleep(args.delay)
    targets = _targets(psutil.Process(load.pid))
    spies = []
    targets = [(k, p) for k, p in targets if args.only in k]
    for i, (kind, pid) in enumerate(targets):
        raw = out / f"{kind.replace(':', '_')}-{pid}-{i}.txt"
        cmd = [str(spy), "record", "-p", str(pid), "-d", str(int(args.seconds)), "-r", "50",
               "--format", "raw", "-o", str(raw)]  # fmt: skip
        # --native needs to pause the process to read its C stack; the default does not.
        cmd.append("--native" if args.native else "--nonblocking")
        spies.append((kind, raw, subprocess.Popen(cmd, stdout=subprocess.DEVNULL,
                                                   stderr=subprocess.DEVNULL)))  # fmt: skip
    for _, _, p in spies:
        p.wait()
    load.wait()
    for kind, raw, _ in spies:
        if raw.exists():
            print(f"== {kind} ({raw.name})")
            print(_fold(raw, args.top))
    print((out / "loadtest.log").read_text()[-1500:])
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
