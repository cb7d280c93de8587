"""The drain alone: a spool filled with a backlog, emptied by the real worker into SQLite.

No SMTP here: the spool is filled first (``Spool.put``, as the listener does), then the
worker drains it with nothing else running, so the figure is the worker's own cost per
report (claim, read, analysis, save, commit, finish). ``bench.intake`` measures the drain
while a burst arrives; this one is for profiling and for comparing worker changes.

    python -m bench.drain --messages 2000                 # the real worker process
    python -m bench.drain --messages 1000 --profile       # in-process, pyinstrument
    python -m bench.drain --in-process [--one-by-one]     # in-process, batch path or not

Shapes (``--shape``): ``bench`` repeats the intake bench's 8 KB report (every copy joins
one case: the flood of one original); ``mixed`` cycles through the report-shaped fixtures
(reports/, forwarded/, received/, auth/), each copy given fresh Message-IDs so that half
of the backlog opens new cases and half are duplicates of an earlier copy.
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import re
import resource
import shutil
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench.common import FIXTURES
from bench.messages import report_of_size
from stopitd.analysis.model import Envelope
from stopitd.config import Settings, parse
from stopitd.spool import Spool

_MSGID = re.compile(rb"(?im)^(message-id:\s*<)")


def backlog(shape: str, count: int) -> list[bytes]:
    if shape == "bench":
        return [report_of_size(8192)] * count
    sources = sorted(
        p
        for sub in ("reports", "forwarded", "received", "auth")
        for p in (FIXTURES / sub).glob("*.eml")
    )
    out = []
    for n in range(count):
        raw = sources[n % len(sources)].read_bytes()
        variant = n // 2  # two copies of each variant: one new case, one duplicate
        out.append(_MSGID.sub(rb"\1v%d." % variant, raw))
    return out


def settings(spool: Path, url: str) -> Settings:
    return parse(
        {
            "spool": {"path": str(spool)},
            "database": {"url": url},
            "dns": {"enabled": False},
            "log": {"level": "warning"},
        },
        None,
    )


def fill(spool: Spool, messages: list[bytes]) -> None:
    for n, raw in enumerate(messages):
        spool.put(
            raw,
            Envelope(
                mail_from=f"reporter{n % 50}@example.edu",
                rcpt_tos=("stopit@example.edu",),
                peer="127.0.0.1",
                helo="localhost",
                received_at=datetime.now(UTC),
            ),
        )


def drain_in_process(cfg: Settings, profile: Path | None, *, batched: bool = True) -> float:
    from stopitd import logs, outbound
    from stopitd.store import batch, cases, db
    from stopitd.worker import Worker

    logs.setup(cfg.log, process="worker")
    spool = Spool(cfg.spool.path)
    engine = db.make_engine(cfg.database.url, writer=True)
    worker = Worker(
        spool,
        db.make_sessionmaker(engine),
        cfg,
        save_report=cases.save_report,
        check_schema=lambda: db.check_current(engine),
        after_save=outbound.on_report_saved,
        save_reports=batch.save_reports if batched else None,
        after_saves=outbound.on_reports_saved if batched else None,
    )
    signals = _StopWhenEmpty(spool)
    profiler: Any = None
    cpu = time.process_time()
    if profile is not None:
        from pyinstrument import Profiler

        profiler = Profiler(interval=0.0005)
        profiler.start()
    started = time.perf_counter()
    worker.run(signals)
    elapsed = time.perf_counter() - started
    print(f"worker CPU time: {time.process_time() - cpu:.2f} s")
    if profiler is not None:
        profiler.stop()
        profile.write_text(profiler.output_text(unicode=True, show_all=False))
        profile.with_suffix(".html").write_text(profiler.output_html())
    engine.dispose()
    return elapsed


class _StopWhenEmpty:
    def __init__(self, spool: Spool) -> None:
        self.spool = spool

    def stopping(self) -> bool:
        return not os.listdir(self.spool.new) and not os.listdir(self.spool.cur)

    def clear_wake(self) -> None:
        pass

    def wait(self, timeout: float, *, wakeable: bool) -> None:
        time.sleep(min(timeout, 0.05))


def drain_in_worker_process(cfg: Settings) -> float:
    from stopitd import worker

    ctx = multiprocessing.get_context("spawn")
    reader, writer = ctx.Pipe(duplex=False)
    spool = Spool(cfg.spool.path)
    started = time.perf_counter()
    proc = ctx.Process(target=worker.main, args=(cfg, reader, os.getpid()))
    proc.start()
    reader.close()
    while os.listdir(spool.new) or os.listdir(spool.cur):
        time.sleep(0.02)
    elapsed = time.perf_counter() - started
    writer.close()
    proc.join(60)
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    print(f"worker CPU time: {usage.ru_utime + usage.ru_stime:.2f} s (user + system)")
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--messages", type=int, default=2000)
    parser.add_argument("--shape", choices=("bench", "mixed"), default="mixed")
    parser.add_argument(
        "--profile", type=Path, nargs="?", const=Path("bench/out/drain-profile.txt")
    )
    parser.add_argument("--in-process", action="store_true", help="no worker process")
    parser.add_argument(
        "--one-by-one",
        action="store_true",
        help="in-process: save_report per entry of a batch (the path before store/batch.py)",
    )
    parser.add_argument("--keep", action="store_true", help="keep the folder (spool, db)")
    args = parser.parse_args()

    from stopitd.store import db
    from stopitd.store.schema import Report

    root = Path(tempfile.mkdtemp(prefix="stopitd-drain-"))
    try:
        url = f"sqlite:///{root / 'stopitd.db'}"
        db.upgrade(url)
        cfg = settings(root / "spool", url)
        spool = Spool(cfg.spool.path)
        spool.create()
        fill(spool, backlog(args.shape, args.messages))
        if args.profile is not None or args.in_process or args.one_by_one:
            if args.profile is not None:
                args.profile.parent.mkdir(parents=True, exist_ok=True)
            elapsed = drain_in_process(cfg, args.profile, batched=not args.one_by_one)
        else:
            elapsed = drain_in_worker_process(cfg)
        engine = db.make_engine(url)
        with engine.connect() as conn:
            from sqlalchemy import func, select

            reports = conn.scalar(select(func.count()).select_from(Report))
            case_count = conn.scalar(select(func.count(func.distinct(Report.case_id))))
        engine.dispose()
        failed = len(os.listdir(spool.failed))
        print(
            f"drain: {args.messages} {args.shape} reports in {elapsed:.2f} s = "
            f"{args.messages / elapsed:.1f} reports/s ({1000 * elapsed / args.messages:.1f} "
            f"ms each); {reports} report rows, {case_count} cases, {failed} failed"
            + ("" if args.profile is None else f"; profile in {args.profile}")
        )
        if reports != args.messages:
            raise SystemExit(f"expected {args.messages} report rows, found {reports}")
    finally:
        if args.keep:
            print(f"kept {root}")
        else:
            shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
