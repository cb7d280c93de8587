"""`python -m bench` (= `make bench`): every sub-benchmark in turn, then one table.

    python -m bench                     the full run (a few minutes on 2 cores)
    python -m bench --quick             tiny sizes: proves every part runs end to end
    python -m bench --only intake,growth

Each part also runs alone (`python -m bench.intake`, `.analysis`, `.growth`, `.memory`)
with its own options. Results: bench/out/<part>.json and bench/out/bench.json.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable
from types import ModuleType
from typing import Any

from bench import analysis, growth, intake, memory
from bench.common import BenchError, Row, print_table, progress, rows_json, shown, write_json

PARTS: dict[str, ModuleType] = {
    "intake": intake,
    "analysis": analysis,
    "growth": growth,
    "memory": memory,
}

QUICK: dict[str, list[str]] = {
    "intake": ["--messages", "100", "--single", "20", "--latency", "50", "--sessions", "10"],
    "analysis": ["--messages", "60"],
    "growth": ["--scale", "0.01"],
    "memory": ["--clients", "3", "--max-size", "1048576"],
}


def part_args(name: str, quick: bool) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog=f"bench.{name}")
    module = PARTS[name]
    add: Callable[[argparse.ArgumentParser], None] = module.add_arguments
    add(parser)
    return parser.parse_args(QUICK[name] if quick else [])


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="tiny sizes (a smoke run)")
    parser.add_argument("--only", help="comma-separated parts: " + ", ".join(PARTS))
    args = parser.parse_args()
    names = list(PARTS) if not args.only else [n.strip() for n in args.only.split(",")]
    unknown = [n for n in names if n not in PARTS]
    if unknown:
        parser.error(f"unknown part(s): {', '.join(unknown)}")
    rows: list[Row] = []
    parts: dict[str, Any] = {}
    errors: list[str] = []
    t0 = time.monotonic()
    for name in names:
        progress(f"=== {name}")
        try:
            part_rows, data = PARTS[name].run(part_args(name, args.quick))
        except BenchError as e:
            errors.append(f"{name}: {e}")
            rows.append(Row(name, "ERROR", "-", note=str(e).splitlines()[0][:120]))
            continue
        write_json(name, data)
        parts[name] = data
        rows.extend(part_rows)
    seconds = time.monotonic() - t0
    path = write_json(
        "bench",
        {
            "quick": args.quick,
            "parts": names,
            "seconds": seconds,
            "errors": errors,
            "rows": rows_json(rows),
        },
    )
    title = (
        f"stopitd benchmarks{' (quick)' if args.quick else ''}: {seconds:.0f} s "
        f"(JSON: {shown(path)})"
    )
    print_table(title, rows)
    if errors:
        for error in errors:
            print(f"bench: {error}", file=sys.stderr)
        raise SystemExit(1)


if __name__ == "__main__":
    main()
