"""End to end, A against B, in one run: `wa-support loadtest` of two checkouts, alternated.

    python bench/e2e_ab.py --a /work/wt-base --b . --rounds 3 -- --customers 200 --think 1

Each round runs the load test of checkout A, then of B (each with its own venv's
`wa-support`, so each service runs its own code), and the table gives the median and the
spread of replies/s, CPU per reply and reply p99 for each. The machine is noisy, so only
figures taken in the same run are compared (see BENCHMARKS.md).
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

FIGURES = (
    ("replies/s", lambda r: r["throughput"]["out_per_second"]),
    ("CPU ms/reply", lambda r: r["cpu"]["ms_per_reply"]),
    ("reply p50 ms", lambda r: r["reply_latency"]["p50_ms"]),
    ("reply p99 ms", lambda r: r["reply_latency"]["p99_ms"]),
    ("peak MB", lambda r: (r.get("memory") or {}).get("peak_mb")),
)


def _one(checkout: Path, load_args: list[str]) -> dict[str, Any]:
    cli = checkout / ".venv" / "bin" / "wa-support"
    with tempfile.TemporaryDirectory() as out:
        done = subprocess.run(
            [str(cli), "loadtest", "--report-dir", out, *load_args],
            cwd=checkout, capture_output=True, text=True, check=False,
        )  # fmt: skip
        reports = list(Path(out).glob("*.json"))
        if not reports:
            raise RuntimeError(f"{checkout}: no report\n{done.stdout[-2000:]}{done.stderr[-2000:]}")
        report: dict[str, Any] = json.loads(reports[0].read_text())
        return report


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--a", type=Path, required=True, help="the baseline checkout")
    parser.add_argument("--b", type=Path, required=True, help="the checkout under test")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("load_args", nargs=argparse.REMAINDER, help="after --: loadtest flags")
    args = parser.parse_args()
    load_args = [a for a in args.load_args if a != "--"]
    runs: dict[str, list[dict[str, Any]]] = {"A": [], "B": []}
    for n in range(args.rounds):
        for name, checkout in (("A", args.a), ("B", args.b)):
            report = _one(checkout.resolve(), load_args)
            runs[name].append(report)
            c = report["correctness"] or {}
            print(
                f"round {n + 1} {name}: {report['throughput']['out_per_second']} replies/s, "
                f"{report['cpu']['ms_per_reply']} ms CPU/reply, ok={c.get('ok')}",
                flush=True,
            )
    print()
    print(f"| figure | A ({args.a}) median [min..max] | B ({args.b}) median [min..max] |")
    print("|---|---:|---:|")
    for label, get in FIGURES:
        cells = []
        for name in ("A", "B"):
            values = [v for r in runs[name] if (v := get(r)) is not None]
            cells.append(
                f"{statistics.median(values):g} [{min(values):g}..{max(values):g}]"
                if values else "-"
            )  # fmt: skip
        print(f"| {label} | {cells[0]} | {cells[1]} |")
    bad = [r for rs in runs.values() for r in rs if not (r["correctness"] or {}).get("ok")]
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
