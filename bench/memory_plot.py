"""Resident memory of the service over a load test, as a PNG beside BENCHMARKS.md's table.

    .venv/bin/python bench/memory_plot.py REPORT.json [REPORT.json ...] -o bench/memory.png

Each report is a `wa-support loadtest` JSON report; its `memory.series` (seconds from the
first sample, MB: the sum of RSS of `serve` and every Ray process) becomes one line,
labelled with the report's load. Needs matplotlib (the `[bench]` extra).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any


def _label(report: dict[str, Any]) -> str:
    o = report.get("options") or {}
    load = f"{o['rate']:g} msg/s open loop" if o.get("rate") else f"think {o.get('think_mean')} s"
    run = f"{report.get('run', '')}, {report.get('commit', '')}"
    return f"{o.get('customers', '?')} customers, {load} ({run})"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("reports", nargs="+", help="REPORT.json, or REPORT.json=label")
    parser.add_argument("-o", "--out", type=Path, default=Path("bench/memory.png"))
    parser.add_argument("--title", default="Service memory (RSS of serve + Ray processes)")
    args = parser.parse_args()

    import matplotlib

    matplotlib.use("Agg")  # no screen here
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(9, 4.5), dpi=110)
    for given in args.reports:
        path, _, label = str(given).partition("=")
        report = json.loads(Path(path).read_text())
        series = (report.get("memory") or {}).get("series") or []
        if not series:
            print(f"{path}: no memory series, skipped")
            continue
        xs = [t / 60 for t, _ in series]
        ys = [mb for _, mb in series]
        ax.plot(xs, ys, label=label or _label(report))
    ax.set_xlabel("minutes since the load started")
    ax.set_ylabel("MB resident")
    ax.set_ylim(bottom=0)
    ax.grid(alpha=0.3)
    ax.set_title(args.title)
    ax.legend(loc="lower right", fontsize=8)
    fig.tight_layout()
    fig.savefig(args.out)
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
