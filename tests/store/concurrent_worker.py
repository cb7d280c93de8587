"""One "node" for the concurrency test: saves reports on a shared store as the worker does.

Run as `python -m tests.store.concurrent_worker URL SEED [batch]`; prints `ready`, waits
for a line on stdin (so all nodes start together), saves every report of `dataset()` in
its own order (one transaction each, retried after a deadlock or serialization failure
as the worker retries a spool entry), then prints one JSON object. With `batch`, the
real `Worker.save_batch` files them in batches of 6 with `store.batch.save_reports` (and
falls back to one by one when it loses a race), as the daemon's worker does.
"""

from __future__ import annotations

import json
import random
import sys
import tempfile
from pathlib import Path
from typing import Any

from sqlalchemy import select
from sqlalchemy.exc import OperationalError
from structlog.testing import capture_logs

from stopitd.config import parse
from stopitd.spool import Entry, Spool
from stopitd.store import batch, db
from stopitd.store.cases import save_report
from stopitd.store.schema import Report
from stopitd.worker import Outcome, Prepared, Worker
from tests.store.reports import analysis_of, envelope, report

DISTINCT = 12
REPORTERS = ("ann@example.edu", "bob@example.org", "cyd@example.net")


def dataset() -> list[tuple[str, bytes, str]]:
    """12 distinct originals, each reported by 3 people; senders repeat in 3 groups."""
    out = []
    for n in range(DISTINCT):
        for who in REPORTERS:
            raw = report(n, reporter=who, sender=f"pest{n % 3}@harass.example")
            out.append((f"spool-{n:02d}-{who.split('@')[0]}", raw, who))
    return out


def main() -> None:
    url, seed = sys.argv[1], int(sys.argv[2])
    items = dataset()
    if seed % 2:
        random.Random(seed).shuffle(items)
    else:
        # walk the originals in step with the other even nodes, but start each original
        # with a different reporter: nodes race to open the same case from two reports
        items.sort(key=lambda i: (i[0][:9], (REPORTERS.index(i[2]) - seed // 2) % 3))
    prepared = [(spool_id, raw, who, analysis_of(raw)) for spool_id, raw, who in items]
    engine = db.make_engine(url)
    maker = db.make_sessionmaker(engine)
    print("ready", flush=True)
    sys.stdin.readline()
    if sys.argv[3:] == ["batch"]:
        with capture_logs() as logs:
            saved = save_in_batches(maker, prepared)
        engine.dispose()
        conflicts = sum(e["event"] == "batch_conflict" for e in logs)
        print(json.dumps({"saved": saved, "retries": conflicts}), flush=True)
        return
    saved, retries = {}, 0
    for spool_id, raw, who, analysis in prepared:
        for _attempt in range(10):
            try:
                with maker() as session, session.begin():
                    saved[spool_id] = save_report(
                        session,
                        spool_id=spool_id,
                        envelope=envelope(who),
                        raw=raw,
                        analysis=analysis,
                    )
                break
            except OperationalError:
                retries += 1
        else:
            raise SystemExit(f"{spool_id}: not saved after 10 attempts")
    engine.dispose()
    print(json.dumps({"saved": saved, "retries": retries}), flush=True)


def save_in_batches(maker: Any, prepared: list[tuple[str, bytes, str, Any]]) -> dict[str, int]:
    """The worker's own batch path; the entries are not spool files (nothing to unlink)."""
    settings = parse({"dns": {"enabled": False}, "worker": {"max_attempts": 10}}, None)
    worker = Worker(
        Spool(Path(tempfile.mkdtemp(prefix="node-spool-"))),
        maker,
        settings,
        save_report=save_report,
        check_schema=lambda: None,
        save_reports=batch.save_reports,
    )
    items = [
        Prepared(Entry(spool_id, 0, Path("/nonexistent") / spool_id), envelope(who), raw, analysis)
        for spool_id, raw, who, analysis in prepared
    ]
    for start in range(0, len(items), 6):
        assert worker.save_batch(items[start : start + 6]) is Outcome.SAVED
    with maker() as session:
        rows = session.execute(select(Report.spool_id, Report.case_id))
        return {spool_id: case_id for spool_id, case_id in rows}


if __name__ == "__main__":
    main()
