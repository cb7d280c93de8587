"""Memory: the daemon's peak RSS while 50 clients each send a maximum-size message at once.

`stopitd serve` (and, with --with-floor, the durable floor for reference: aiosmtpd holding
each DATA whole) gets CLIENTS sessions at once, each sending one report just under
``smtp.max_message_size`` (the report fixture plus a large base64 attachment). RSS is read
from /proc: VmHWM (the kernel's own peak) of the listener process, of the worker, and the
sampled peak of their sum; then the worker's peak while it drains those reports.
Target: the daemon under 3 x max_message_size + 100 MB.

    python -m bench.memory [--clients 50] [--max-size 26214400]
"""

from __future__ import annotations

import argparse
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench import smtpclient
from bench.common import (
    OUT_DIR,
    BenchError,
    Row,
    child_pids,
    fmt,
    mb,
    proc_status_kb,
    progress,
    rows_json,
    run_entry_point,
    verdict,
)
from bench.messages import report_with_attachment
from bench.servers import Server, serve_available, start_floor, start_stopitd

MARGIN = 4096  # below the limit: room for what the client adds (final CRLF)


@dataclass
class RssWatch:
    """Samples VmRSS of a process and of its children every 20 ms, in a thread."""

    pid: int
    peak_total_kb: int = 0
    peak_children_kb: int = 0
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def __enter__(self) -> RssWatch:
        self._thread = threading.Thread(target=self._run, name="rss", daemon=True)
        self._thread.start()
        return self

    def _run(self) -> None:
        while not self._stop.is_set():
            main = proc_status_kb(self.pid, "VmRSS") or 0
            kids = sum(proc_status_kb(p, "VmRSS") or 0 for p in child_pids(self.pid))
            self.peak_total_kb = max(self.peak_total_kb, main + kids)
            self.peak_children_kb = max(self.peak_children_kb, kids)
            self._stop.wait(0.02)

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(10)


@dataclass
class MemoryRun:
    name: str
    accepted: int
    send_s: float
    listener_hwm_mb: float  # VmHWM of the server's main process after the burst
    peak_total_mb: float  # sampled listener + children during the burst
    worker_hwm_mb: float | None = None  # VmHWM of the worker after the drain
    drained: bool | None = None
    drain_s: float | None = None


def measure(server: Server, message: bytes, clients: int, args: argparse.Namespace) -> MemoryRun:
    progress(f"memory: {server.name}, {clients} x {len(message):,} bytes at once")
    with RssWatch(server.pid) as watch:
        result = smtpclient.send(
            server.port, message, sessions=clients, per_session=1, timeout=args.timeout
        )
    if result.refused:
        raise BenchError(f"{server.name} refused: {result.refused[:3]}\n{server.log_tail()}")
    run = MemoryRun(
        server.name,
        result.accepted,
        result.seconds,
        mb(proc_status_kb(server.pid, "VmHWM") or 0),
        mb(watch.peak_total_kb),
    )
    if server.db_path is not None:
        t0 = time.monotonic()
        deadline = t0 + args.drain_timeout
        while server.reports() < clients and time.monotonic() < deadline and server.alive():
            time.sleep(0.1)
        run.drained = server.reports() >= clients
        run.drain_s = time.monotonic() - t0
        kids = child_pids(server.pid)
        run.worker_hwm_mb = mb(max((proc_status_kb(p, "VmHWM") or 0 for p in kids), default=0))
    return run


def run(args: argparse.Namespace) -> tuple[list[Row], dict[str, Any]]:
    message = report_with_attachment(args.max_size - MARGIN)
    limit_mb = 3 * args.max_size / (1 << 20) + 100
    pending = not serve_available()
    runs: list[MemoryRun] = []
    OUT_DIR.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="memory-", dir=OUT_DIR) as tmp:
        base = Path(tmp)
        if args.with_floor or pending:
            floor = start_floor("durable", base / "durable")
            try:
                runs.append(measure(floor, message, args.clients, args))
            finally:
                floor.stop()
        if not pending:
            server = start_stopitd(base / "stopitd", max_message_size=args.max_size)
            try:
                runs.append(measure(server, message, args.clients, args))
            finally:
                server.stop()
    rows: list[Row] = []
    c = args.clients
    size_note = f"{c} x {fmt(len(message) / (1 << 20))} MB at once"
    for r in runs:
        is_st = r.name == "stopitd"
        rows.append(
            Row(
                "memory",
                f"peak RSS, listener process: {r.name}",
                f"{fmt(r.listener_hwm_mb)} MB",
                f"< {fmt(limit_mb, 0)} MB" if is_st else "",
                verdict(r.listener_hwm_mb < limit_mb) if is_st else "",
                size_note + ("" if is_st else " (reference: aiosmtpd holds DATA whole)"),
            )
        )
        if is_st:
            rows.append(
                Row(
                    "memory",
                    "peak RSS, listener + worker (sampled): stopitd",
                    f"{fmt(r.peak_total_mb)} MB",
                    f"< {fmt(limit_mb, 0)} MB",
                    verdict(r.peak_total_mb < limit_mb),
                    f"during the burst ({fmt(r.send_s, 1)} s)",
                )
            )
            drained = "drained" if r.drained else "NOT drained"
            rows.append(
                Row(
                    "memory",
                    "peak RSS, worker (after the drain): stopitd",
                    f"{fmt(r.worker_hwm_mb or 0)} MB",
                    note=f"{drained} in {fmt(r.drain_s or 0, 1)} s",
                )
            )
    if pending:
        rows.append(
            Row(
                "memory",
                "peak RSS, listener process: stopitd",
                "pending",
                f"< {fmt(limit_mb, 0)} MB",
                "pending",
                "stopitd serve not merged yet",
            )
        )
    data = {
        "args": vars(args),
        "message_bytes": len(message),
        "limit_mb": limit_mb,
        "stopitd_pending": pending,
        "runs": [vars(r) for r in runs],
        "rows": rows_json(rows),
    }
    return rows, data


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--clients", type=int, default=50)
    parser.add_argument("--max-size", type=int, default=26214400, help="smtp.max_message_size")
    parser.add_argument("--timeout", type=float, default=300, help="for the burst, seconds")
    parser.add_argument("--drain-timeout", type=float, default=300, help="seconds")
    parser.add_argument(
        "--with-floor",
        action="store_true",
        help="also measure the durable floor (about 2 min more; always when serve is pending)",
    )


def main() -> None:
    run_entry_point("memory", __doc__, "stopitd memory", add_arguments, run)


if __name__ == "__main__":
    main()
