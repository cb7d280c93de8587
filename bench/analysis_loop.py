"""The loop `bench.analysis --instructions` runs under callgrind (not a benchmark alone).

    python -m bench.analysis_loop REPEAT FILE...

Imports the command, runs it once over FILE... (the warm-up: first-call caches, lazy
imports), then over FILE... repeated REPEAT times in one call, and checks one result per
file. Two runs, with REPEAT k and 1, differ by (k - 1) passes over the files and nothing
else, so the difference of their instruction counts divided by (k - 1) x files is the
per-message figure with start-up, imports and the warm-up cancelled out.
"""

from __future__ import annotations

import sys

from bench.analysis import run_in_process


def main(argv: list[str]) -> int:
    if len(argv) < 2 or not argv[0].isdigit() or int(argv[0]) < 1:
        print("usage: python -m bench.analysis_loop REPEAT FILE...", file=sys.stderr)
        return 2
    repeat, files = int(argv[0]), argv[1:]
    run_in_process(files)
    printed = run_in_process(files * repeat)
    # Counted, not split: splitting the whole output into lines cost ~25 K instructions
    # per message of a 1 KB message, the harness's check and not the command's work.
    lines = printed.count("\n")
    if lines != len(files) * repeat:
        print(f"analyze printed {lines} results for {len(files) * repeat}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
