"""What every sub-benchmark shares: result rows, the table, JSON output, tools, ports, RSS."""

from __future__ import annotations

import argparse
import json
import os
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from rich import box
from rich.console import Console
from rich.table import Table

ROOT = Path(__file__).resolve().parent.parent
# Where figures and scratch folders go; the test suite points each run at its own folder.
OUT_DIR = Path(os.environ.get("STOPITD_BENCH_OUT") or ROOT / "bench" / "out")
FIXTURES = ROOT / "fixtures"


def shown(path: Path) -> str:
    """PATH as the tables print it: relative to the checkout when it lies inside it."""
    return str(path.relative_to(ROOT)) if path.is_relative_to(ROOT) else str(path)


class BenchError(Exception):
    """A benchmark cannot run (missing tool, server did not start); the text says why."""


@dataclass(frozen=True, slots=True)
class Row:
    """One line of the printed table: a figure, or a ratio, with its target if it has one."""

    bench: str
    metric: str
    value: str
    target: str = ""
    verdict: str = ""  # "met", "NOT MET", "pending", or "" (context only)
    note: str = ""


def fmt(value: float, digits: int = 1) -> str:
    return f"{value:,.{digits}f}"


def verdict(ok: bool) -> str:
    return "met" if ok else "NOT MET"


def print_table(title: str, rows: Sequence[Row], console: Console | None = None) -> None:
    """A Markdown table (so a run pastes straight into docs/performance.md), never wrapped."""
    table = Table(title=title, title_justify="left", box=box.MARKDOWN)
    for col in ("bench", "metric", "value", "target", "verdict", "note"):
        table.add_column(col, no_wrap=True)
    for row in rows:
        table.add_row(row.bench, row.metric, row.value, row.target, row.verdict, row.note)
    wide = Console(width=400, color_system=None, highlight=False)
    with wide.capture() as captured:
        wide.print(table)
    text = "\n".join(line.rstrip() for line in captured.get().splitlines()).strip("\n")
    if console is None:
        print(text, flush=True)
    else:
        console.print(text, markup=False, highlight=False)


def write_json(name: str, data: dict[str, Any]) -> Path:
    """bench/out/NAME.json (git-ignored); returns the path."""
    OUT_DIR.mkdir(parents=True, exist_ok=True)
    path = OUT_DIR / f"{name}.json"
    doc = {
        "bench": name,
        "when": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "machine": machine(),
        **data,
    }
    path.write_text(json.dumps(doc, indent=1, default=str) + "\n")
    return path


def rows_json(rows: Iterable[Row]) -> list[dict[str, str]]:
    return [asdict(r) for r in rows]


def machine() -> dict[str, Any]:
    return {
        "cpus": os.cpu_count(),
        "python": sys.version.split()[0],
        "mem_total_mb": _meminfo_total_mb(),
    }


def _meminfo_total_mb() -> int | None:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return int(line.split()[1]) // 1024
    except OSError:
        return None
    return None


def progress(text: str) -> None:
    """One line on stderr so a long run shows where it is (the table goes to stdout)."""
    print(f"[bench {time.strftime('%H:%M:%S')}] {text}", file=sys.stderr, flush=True)


# --- external tools ---------------------------------------------------------------------


def require_tool(command: str, package: str) -> str:
    """The path of COMMAND, or a BenchError naming the Debian package that provides it."""
    found = shutil.which(command) or next(
        (str(p) for d in ("/usr/sbin", "/sbin") if (p := Path(d) / command).is_file()), None
    )
    if found is None:
        raise BenchError(
            f"{command} is missing: install the Debian package {package!r} "
            f"(apt-get install {package}, or `make system-deps`)"
        )
    return found


def require_perl_module(module: str, package: str) -> None:
    perl = require_tool("perl", "perl")
    probe = subprocess.run(
        [perl, f"-M{module}", "-e", "1"], capture_output=True, text=True, timeout=60
    )
    if probe.returncode != 0:
        raise BenchError(
            f"the Perl module {module} is missing: install the Debian package {package!r} "
            f"(apt-get install {package}, or `make system-deps`)"
        )


def stopitd_command() -> list[str]:
    """The `stopitd` console script of this interpreter's environment."""
    beside = Path(sys.executable).parent / "stopitd"
    if beside.is_file():
        return [str(beside)]
    found = shutil.which("stopitd")
    if found is None:
        raise BenchError("the stopitd command is missing: run `make setup` first")
    return [found]


# --- network ----------------------------------------------------------------------------


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_for_banner(port: int, timeout: float, alive: Any = None) -> None:
    """Until an SMTP server on 127.0.0.1:PORT sends its 220 banner (or BenchError)."""
    deadline = time.monotonic() + timeout
    last = ""
    while time.monotonic() < deadline:
        if alive is not None and not alive():
            raise BenchError(f"the server for port {port} exited before it answered")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=2) as s:
                banner = s.recv(512)
                if banner.startswith(b"220"):
                    s.sendall(b"QUIT\r\n")
                    return
                last = banner.decode(errors="replace").strip()
        except OSError as e:
            last = str(e)
        time.sleep(0.05)
    raise BenchError(f"no SMTP banner on 127.0.0.1:{port} within {timeout:.0f} s ({last})")


# --- memory -----------------------------------------------------------------------------


def proc_status_kb(pid: int, key: str) -> int | None:
    """A kB figure from /proc/PID/status (VmRSS, VmHWM), or None when the process is gone."""
    try:
        text = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return None
    for line in text.splitlines():
        if line.startswith(key + ":"):
            return int(line.split()[1])
    return None


def child_pids(pid: int) -> list[int]:
    """Direct and indirect children of PID (from /proc/PID/task/*/children)."""
    out: list[int] = []
    todo = [pid]
    while todo:
        p = todo.pop()
        try:
            tasks = os.listdir(f"/proc/{p}/task")
        except OSError:
            continue
        for tid in tasks:
            try:
                kids = Path(f"/proc/{p}/task/{tid}/children").read_text().split()
            except OSError:
                continue
            for k in kids:
                out.append(int(k))
                todo.append(int(k))
    return out


def mb(kb: float) -> float:
    return kb / 1024


def run_entry_point(
    name: str,
    description: str | None,
    title: str,
    add_arguments: Callable[[argparse.ArgumentParser], None],
    run: Callable[[argparse.Namespace], tuple[Sequence[Row], dict[str, Any]]],
) -> None:
    """`python -m bench.NAME`: parse the arguments, run, write the JSON, print the table."""
    parser = argparse.ArgumentParser(prog=f"python -m bench.{name}", description=description)
    add_arguments(parser)
    args = parser.parse_args()
    try:
        rows, data = run(args)
    except BenchError as e:
        raise SystemExit(f"bench.{name}: {e}") from None
    path = write_json(name, data)
    print_table(f"{title} (JSON: {shown(path)})", rows)
