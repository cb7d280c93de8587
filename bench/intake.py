"""Intake and drain: SMTP -> fsynced spool -> 250, then 250 -> case, against the floors.

In one run, four servers, each on a fresh folder and all running at once, get the same load:
the bare aiosmtpd floor, the durable (fsync) floor, the durable floor with group commit
(stopitd's DirSync, to isolate what it is worth), and the real `stopitd serve` (worker
running, migrated SQLite store, DNS off). The load is postfix's smtp-source sending an
8 KB report shaped like the fixtures (a forward with the original attached): a burst over
50 sessions to each server in turn; then a run over 1 session, in rounds interleaved
across the servers (--single-rounds, the order turned each round: one session is bound by
fsync latency, which drifts over minutes, and interleaving spreads the drift over all
alike); then bench.smtpclient times DATA-end -> 250 over 50 sessions: paced at
--latency-rate (an open loop: the p99 target) and saturated (a closed loop, where latency
is mostly queueing: sessions / throughput). Each server first gets 50 untimed warm-up
messages. For stopitd a sampler records the backlog (spool new/ + cur/) and the reports
stored while the burst arrives and drains: the drain is the time from the burst's first
message until every accepted message is a row in `reports`.

    python -m bench.intake [--messages 2000] [--single 500] [--single-rounds 5] [--sessions 50]
                           [--size 8192]
                           [--latency 1000] [--latency-rate 100]
                           [--servers bare,durable,durable-group,stopitd] [--worker-idle]
"""

from __future__ import annotations

import argparse
import math
import os
import subprocess
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
    require_tool,
    rows_json,
    run_entry_point,
    verdict,
)
from bench.messages import lf_copy, report_of_size
from bench.servers import Server, serve_available, start_floor, start_stopitd

INTAKE_RATIO_TARGET = 0.9  # stopitd / durable floor, worker busy
P99_TARGET_MS = 50.0
CASES_PER_S_TARGET = 150.0
SAMPLE_INTERVAL = 0.1
WARM_UP = 50  # messages sent to each server first, not timed (first runs are slower)
SERVERS = ("bare", "durable", "durable-group", "stopitd")


@dataclass
class Sample:
    t: float  # seconds since the burst started
    backlog: int  # spool new/ + cur/
    reports: int  # rows in reports
    worker_rss_mb: float  # the daemon's children (the worker process)


@dataclass
class Sampler:
    """Samples the backlog and the stored reports every 100 ms, in a thread, until the
    burst is stored or no report was stored for ``timeout`` seconds."""

    server: Server
    expected: int  # reports in the store once the burst is stored
    timeout: float
    base: int = 0  # reports already stored when the burst starts (the warm-up)
    samples: list[Sample] = field(default_factory=list)
    drained_at: float | None = None
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None
    _t0: float = 0.0

    def start(self) -> None:
        self._t0 = time.monotonic()
        self._thread = threading.Thread(target=self._run, name="sampler", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        last, last_t = -1, 0.0  # the drain's progress: it times out only when it stalls
        while not self._stop.is_set():
            t = time.monotonic() - self._t0
            reports = self.server.reports()
            if reports > last:
                last, last_t = reports, t
            kids = child_pids(self.server.pid)
            rss = sum(proc_status_kb(p, "VmRSS") or 0 for p in kids)
            sample = Sample(t, self.server.backlog(), reports - self.base, mb(rss))
            self.samples.append(sample)
            if reports >= self.expected:
                self.drained_at = t
                return
            if t - last_t > self.timeout or not self.server.alive():
                return
            self._stop.wait(SAMPLE_INTERVAL)

    def wait(self) -> None:
        if self._thread is not None:
            self._thread.join()  # it ends by itself: drained, stalled or server gone

    def stop(self) -> None:
        self._stop.set()
        self.wait()


def smtp_source(
    port: int, sessions: int, messages: int, message_file: Path, timeout: float
) -> float:
    """Run smtp-source; the wall time in seconds. Any refused message is an error."""
    exe = require_tool("smtp-source", "postfix")
    argv = [exe, "-s", str(sessions), "-m", str(messages), "-F", str(message_file)]
    argv += ["-f", "bench@localhost", "-t", "stopit@localhost", "-M", "bench.localhost"]
    argv.append(f"127.0.0.1:{port}")
    t0 = time.perf_counter()
    try:
        done = subprocess.run(argv, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        raise BenchError(f"smtp-source did not finish within {timeout:.0f} s") from None
    seconds = time.perf_counter() - t0
    if done.returncode != 0:
        raise BenchError(f"smtp-source failed ({done.returncode}): {done.stderr.strip()[:500]}")
    return seconds


@dataclass
class ServerRun:
    name: str
    burst_s: float = math.nan
    single_s: float = math.nan
    single_rounds_s: list[float] = field(default_factory=list)  # each round's seconds
    p50_ms: float = math.nan  # paced at --latency-rate
    p99_ms: float = math.nan
    sat_p50_ms: float = math.nan  # closed loop (saturated)
    sat_p99_ms: float = math.nan
    latency_msgs: int = 0
    refused: list[str] = field(default_factory=list)
    stored: int = 0  # messages found durable / stored at the end
    drain_s: float | None = None
    sustained: float | None = None
    peak_backlog: int = 0
    samples: list[Sample] = field(default_factory=list)
    failed: int = 0


def burst_phase(server: Server, args: argparse.Namespace, run: ServerRun, msg_file: Path) -> None:
    """Warm-up, then the burst over --sessions; for stopitd, the drain is sampled."""
    is_stopitd = server.db_path is not None
    warm = min(WARM_UP, args.messages)
    progress(f"{server.name}: warm-up, {warm} messages")
    smtp_source(server.port, min(10, args.sessions), warm, msg_file, args.timeout)
    if is_stopitd:
        _wait_stored(server, warm, args.drain_timeout)
    sampler = None
    if is_stopitd:
        sampler = Sampler(server, warm + args.messages, args.drain_timeout, base=warm)
        sampler.start()
    progress(f"{server.name}: {args.messages} messages over {args.sessions} sessions")
    run.burst_s = smtp_source(server.port, args.sessions, args.messages, msg_file, args.timeout)
    if sampler is not None:
        sampler.wait()
        sampler.stop()
        run.samples = sampler.samples
        run.drain_s = sampler.drained_at
        run.peak_backlog = max((s.backlog for s in sampler.samples), default=0)
        run.sustained = _sustained_rate(sampler.samples, args.messages)
        if run.drain_s is None:
            raise BenchError(
                f"stopitd stored {server.reports() - warm} of {args.messages} reports; "
                f"none more for {args.drain_timeout:.0f} s\n{server.log_tail()}"
            )


def single_rounds(
    servers: dict[str, Server], args: argparse.Namespace, runs: dict[str, ServerRun], msg_file: Path
) -> None:
    """--single messages over 1 session to each server, in --single-rounds interleaved
    rounds (the order turned by one each round) rather than one server after another.

    One session is bound by fsync latency, which drifts with whatever else the disk is
    writing back; interleaving spreads that drift over every server alike, so that the
    ratios compare like with like (in one earlier, sequential run, two floors that should
    tie came out 0.72x apart)."""
    names = list(servers)
    rounds = max(1, min(args.single_rounds, args.single))
    sizes = [args.single // rounds + (1 if i < args.single % rounds else 0) for i in range(rounds)]
    for name in names:
        runs[name].single_s = 0.0
    for i, size in enumerate(sizes):
        order = names[i % len(names) :] + names[: i % len(names)]
        progress(
            f"1 session, round {i + 1}/{rounds}: {size} messages to each of {', '.join(order)}"
        )
        for name in order:
            seconds = smtp_source(servers[name].port, 1, size, msg_file, args.timeout)
            runs[name].single_s += seconds
            runs[name].single_rounds_s.append(seconds)


def latency_phase(server: Server, args: argparse.Namespace, run: ServerRun, message: bytes) -> None:
    """DATA-end -> 250 over --sessions: paced (open loop), then saturated (closed loop);
    then every message the server accepted must be stored."""
    is_stopitd = server.db_path is not None
    per_session = max(1, args.latency // args.sessions)
    n_latency = per_session * args.sessions
    progress(f"{server.name}: latency, {n_latency} messages at {args.latency_rate:g}/s")
    paced = smtpclient.send(
        server.port,
        message,
        sessions=args.sessions,
        per_session=per_session,
        rate=args.latency_rate,
        timeout=args.timeout,
    )
    progress(f"{server.name}: latency, {n_latency} messages, saturated")
    saturated = smtpclient.send(
        server.port, message, sessions=args.sessions, per_session=per_session, timeout=args.timeout
    )
    run.latency_msgs = paced.accepted
    run.refused = paced.refused + saturated.refused
    run.p50_ms = paced.percentile(50) * 1000
    run.p99_ms = paced.percentile(99) * 1000
    run.sat_p50_ms = saturated.percentile(50) * 1000
    run.sat_p99_ms = saturated.percentile(99) * 1000
    total = min(WARM_UP, args.messages) + args.messages + args.single + 2 * n_latency
    if is_stopitd:
        _wait_stored(server, total, args.drain_timeout)
        run.stored = server.reports()
        run.failed = server.failed()
    elif server.spool is not None:
        run.stored = server.spooled()
    else:
        run.stored = total
    if run.refused:
        raise BenchError(f"{server.name} refused messages: {run.refused[:3]}")
    if run.stored != total:
        raise BenchError(
            f"{server.name}: {total} messages accepted but {run.stored} stored "
            f"({run.failed} in spool/failed)\n{server.log_tail()}"
        )


def _wait_stored(server: Server, count: int, timeout: float) -> None:
    """Until COUNT reports are stored, or none more for TIMEOUT s (the caller checks the count).

    A slow drain on a loaded machine is not a loss: the wait goes on while reports keep
    arriving in the store.
    """
    stored = server.reports()
    deadline = time.monotonic() + timeout
    while stored < count and time.monotonic() < deadline and server.alive():
        time.sleep(SAMPLE_INTERVAL)
        now = server.reports()
        if now > stored:
            stored, deadline = now, time.monotonic() + timeout


def _sustained_rate(samples: list[Sample], expected: int) -> float | None:
    """Reports per second between 10 % and 90 % of the burst being stored."""
    lo = next((s for s in samples if s.reports >= 0.1 * expected), None)
    hi = next((s for s in samples if s.reports >= 0.9 * expected), None)
    if lo is None or hi is None or hi.t <= lo.t:
        return None
    return (hi.reports - lo.reports) / (hi.t - lo.t)


def backlog_curve(samples: list[Sample], points: int = 12) -> str:
    """The backlog at evenly spaced times, as 't=1.2s:340' items (full curve in the JSON)."""
    if not samples:
        return ""
    end = samples[-1].t
    out = []
    for i in range(points + 1):
        t = end * i / points
        s = min(samples, key=lambda x: abs(x.t - t))
        out.append(f"{s.t:.1f}s:{s.backlog}")
    return " ".join(dict.fromkeys(out))


def run(args: argparse.Namespace) -> tuple[list[Row], dict[str, Any]]:
    require_tool("smtp-source", "postfix")
    message = report_of_size(args.size)
    OUT_DIR.mkdir(parents=True, exist_ok=True)
    runs: dict[str, ServerRun] = {}
    pending = not serve_available()
    with tempfile.TemporaryDirectory(prefix="intake-", dir=OUT_DIR) as tmp:
        base = Path(tmp)
        msg_file = lf_copy(message, base / "report.lf.eml")
        servers: dict[str, Server] = {}
        try:
            for name in args.servers:
                if name == "stopitd" and pending:
                    progress("stopitd serve is not in this build: its row is pending")
                    continue
                workdir = base / name
                server = start_stopitd(workdir) if name == "stopitd" else start_floor(name, workdir)
                if name == "stopitd" and args.worker_idle:
                    _worker_idle(server)
                servers[name] = server
                runs[name] = ServerRun(name)
            for name, server in servers.items():
                burst_phase(server, args, runs[name], msg_file)
            single_rounds(servers, args, runs, msg_file)
            for name, server in servers.items():
                latency_phase(server, args, runs[name], message)
        finally:
            for name, server in servers.items():
                code = server.stop()
                if name == "stopitd" and code not in (0, None):
                    progress(f"stopitd exited with {code}:\n{server.log_tail()}")
    rows = _rows(runs, args, pending)
    data = {
        "args": vars(args),
        "message_bytes": len(message),
        "runs": {k: _run_json(v) for k, v in runs.items()},
        "stopitd_pending": pending,
        "rows": rows_json(rows),
    }
    return rows, data


def _worker_idle(server: Server) -> None:
    """Experiment: the daemon's children (the worker) at SCHED_IDLE, as a scheduler would."""
    for pid in child_pids(server.pid):
        os.sched_setscheduler(pid, os.SCHED_IDLE, os.sched_param(0))
        progress(f"stopitd: worker {pid} set to SCHED_IDLE")


def _rate(n: int, seconds: float) -> float:
    return n / seconds if seconds > 0 else math.nan


def _rows(runs: dict[str, ServerRun], args: argparse.Namespace, pending: bool) -> list[Row]:
    rows: list[Row] = []
    s = args.sessions
    pend = Row("intake", "", "pending", verdict="pending", note="stopitd serve not merged yet")
    names = [n for n in SERVERS if n in runs or (n == "stopitd" and pending)]
    for label, attr, n in (
        (f"msgs/s, {s} sessions", "burst_s", args.messages),
        ("msgs/s, 1 session", "single_s", args.single),
    ):
        rates = {k: _rate(n, getattr(r, attr)) for k, r in runs.items()}
        for name in names:
            metric = f"{label}: {name}"
            if name in rates:
                note = "worker busy (drain)" if name == "stopitd" and attr == "burst_s" else ""
                rows.append(Row("intake", metric, fmt(rates[name]), note=note))
            elif pending:
                rows.append(_with(pend, metric))
        if "durable" in rates and "bare" in rates:
            rows.append(
                Row("intake", f"{label}: durable / bare", fmt(rates["durable"] / rates["bare"], 2))
            )
        if "durable-group" in rates and "durable" in rates:
            gain = rates["durable-group"] / rates["durable"]
            rows.append(
                Row(
                    "intake",
                    f"{label}: durable-group / durable",
                    fmt(gain, 2),
                    note="dir fsyncs shared",
                )
            )
        if "stopitd" in rates and "durable" in rates:
            ratio = rates["stopitd"] / rates["durable"]
            rows.append(
                Row(
                    "intake",
                    f"{label}: stopitd / durable",
                    fmt(ratio, 2),
                    f">= {INTAKE_RATIO_TARGET}",
                    verdict(ratio >= INTAKE_RATIO_TARGET),
                    "worker at SCHED_IDLE (--worker-idle)" if args.worker_idle else "",
                )
            )
        elif pending:
            rows.append(_with(pend, f"{label}: stopitd / durable"))
    rate = f"{args.latency_rate:g} msgs/s"
    for name in names:
        metric = f"DATA-end->250 p50/p99 ms, {s} sessions at {rate}: {name}"
        if name in runs:
            r = runs[name]
            is_st = name == "stopitd"
            rows.append(
                Row(
                    "intake",
                    metric,
                    f"{fmt(r.p50_ms)} / {fmt(r.p99_ms)}",
                    f"p99 < {P99_TARGET_MS:.0f}" if is_st else "",
                    verdict(r.p99_ms < P99_TARGET_MS) if is_st else "",
                    f"{r.latency_msgs} msgs, open loop",
                )
            )
        elif pending:
            rows.append(_with(pend, metric))
    for name in names:
        metric = f"DATA-end->250 p50/p99 ms, {s} sessions saturated: {name}"
        if name in runs:
            r = runs[name]
            rows.append(
                Row(
                    "intake",
                    metric,
                    f"{fmt(r.sat_p50_ms)} / {fmt(r.sat_p99_ms)}",
                    note="closed loop: mostly queueing (sessions / throughput)",
                )
            )
        elif pending:
            rows.append(_with(pend, metric))
    st = runs.get("stopitd")
    if st is not None and st.drain_s is not None:
        rows.append(
            Row(
                "drain",
                f"burst of {args.messages}: all stored as reports after",
                f"{fmt(st.drain_s, 2)} s",
                note=f"intake took {fmt(st.burst_s, 2)} s",
            )
        )
        cps = _rate(args.messages, st.drain_s)
        rows.append(
            Row(
                "drain",
                "cases/s end to end (SQLite, DNS off)",
                fmt(cps),
                f">= {CASES_PER_S_TARGET:.0f}",
                verdict(cps >= CASES_PER_S_TARGET),
                "first 250 -> last report row",
            )
        )
        if st.sustained is not None:
            rows.append(
                Row(
                    "drain",
                    "cases/s sustained (10%->90% stored)",
                    fmt(st.sustained),
                    f">= {CASES_PER_S_TARGET:.0f}",
                    verdict(st.sustained >= CASES_PER_S_TARGET),
                )
            )
        rows.append(Row("drain", "peak backlog (spool new/+cur/)", str(st.peak_backlog)))
        rows.append(Row("drain", "backlog curve (t:entries)", backlog_curve(st.samples)))
        rss = [x.worker_rss_mb for x in st.samples if x.worker_rss_mb > 0]
        if rss:
            rows.append(
                Row(
                    "drain",
                    "worker RSS during drain, first/max/last MB",
                    f"{fmt(rss[0])} / {fmt(max(rss))} / {fmt(rss[-1])}",
                    "no growth with backlog",
                    note="sum of the daemon's child processes",
                )
            )
    elif pending:
        for metric in ("cases/s end to end (SQLite, DNS off)", "backlog curve"):
            rows.append(Row("drain", metric, "pending", verdict="pending", note=pend.note))
    return rows


def _with(row: Row, metric: str) -> Row:
    return Row(row.bench, metric, row.value, row.target, row.verdict, row.note)


def _run_json(r: ServerRun) -> dict[str, Any]:
    return {
        "burst_seconds": r.burst_s,
        "single_seconds": r.single_s,
        "single_rounds_seconds": r.single_rounds_s,
        "p50_ms": r.p50_ms,
        "p99_ms": r.p99_ms,
        "saturated_p50_ms": r.sat_p50_ms,
        "saturated_p99_ms": r.sat_p99_ms,
        "latency_messages": r.latency_msgs,
        "stored": r.stored,
        "drain_seconds": r.drain_s,
        "sustained_cases_per_s": r.sustained,
        "peak_backlog": r.peak_backlog,
        "failed": r.failed,
        "samples": [
            {
                "t": round(s.t, 3),
                "backlog": s.backlog,
                "reports": s.reports,
                "worker_rss_mb": round(s.worker_rss_mb, 1),
            }
            for s in r.samples
        ],
    }


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--messages", type=int, default=2000, help="burst size (default 2000)")
    parser.add_argument("--single", type=int, default=500, help="messages over 1 session")
    parser.add_argument(
        "--single-rounds",
        type=int,
        default=5,
        help="the 1-session messages go in this many rounds, interleaved across servers",
    )
    parser.add_argument("--sessions", type=int, default=50)
    parser.add_argument("--size", type=int, default=8192, help="message size in bytes")
    parser.add_argument("--latency", type=int, default=1000, help="messages timed for the p99")
    parser.add_argument(
        "--latency-rate", type=float, default=100, help="msgs/s over all sessions for the p99"
    )
    parser.add_argument(
        "--servers",
        type=lambda v: [x for x in v.split(",") if x],
        default=list(SERVERS),
        help=f"comma-separated subset of {','.join(SERVERS)} (default: all)",
    )
    parser.add_argument(
        "--worker-idle",
        action="store_true",
        help="experiment: put stopitd's worker at SCHED_IDLE once it has started",
    )
    parser.add_argument("--timeout", type=float, default=300, help="per load, seconds")
    parser.add_argument(
        "--drain-timeout", type=float, default=300, help="seconds without a report stored"
    )


def main() -> None:
    run_entry_point("intake", __doc__, "stopitd intake and drain", add_arguments, run)


if __name__ == "__main__":
    main()
