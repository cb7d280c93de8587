"""A worker that dies mid-batch, as a SIGKILL or a power cut would stop it.

Run as ``python -m tests.store.crashing_worker SPOOL URL SPEC``. It does what the daemon's
worker process does at start (re-queue ``cur/`` leftovers, then drain ``new/`` with the
real ``Worker``, the real ``save_report`` and outbound hook on the real store), except that
the process ends with ``os._exit`` (no cleanup, no rollback, no unlink: the kernel just
closes its files) when SPEC says so:

- ``after:N``: while saving the (N+1)-th report, i.e. N reports of the batch are written
  into the open transaction and none is committed;
- ``on:SPOOL_ID``: whenever that entry is being saved (an entry that kills the worker).

Without a crash it drains the spool and prints one JSON line.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any

from stopitd import outbound
from stopitd.config import parse
from stopitd.spool import Spool
from stopitd.store import cases, db
from stopitd.worker import Worker

CRASH_EXIT = 70
MAX_ATTEMPTS = 3


class _UntilEmpty:
    def __init__(self, spool: Spool) -> None:
        self.spool = spool

    def stopping(self) -> bool:
        return not self.spool.pending()

    def clear_wake(self) -> None:
        pass

    def wait(self, timeout: float, *, wakeable: bool) -> None:
        pass


def main() -> None:
    spool_dir, url, spec = sys.argv[1], sys.argv[2], sys.argv[3]
    kind, _, arg = spec.partition(":")
    settings = parse(
        {
            "worker": {"max_attempts": MAX_ATTEMPTS, "backoff_initial": 0.01},
            "dns": {"enabled": False},
            "log": {"level": "warning"},
        },
        None,
    )
    spool = Spool(Path(spool_dir))
    recovered = spool.recover(MAX_ATTEMPTS)
    calls = 0

    def save_or_die(session: Any, **kw: Any) -> int:
        nonlocal calls
        calls += 1
        if (kind == "after" and calls == int(arg) + 1) or (kind == "on" and kw["spool_id"] == arg):
            sys.stdout.flush()
            os._exit(CRASH_EXIT)
        return cases.save_report(session, **kw)

    engine = db.make_engine(url, writer=True)
    worker = Worker(
        spool,
        db.make_sessionmaker(engine),
        settings,
        save_report=save_or_die,
        check_schema=lambda: db.check_current(engine),
        after_save=outbound.on_report_saved,
    )
    worker.run(_UntilEmpty(spool))
    engine.dispose()
    print(json.dumps({"requeued": recovered.requeued, "failed": recovered.failed}))


if __name__ == "__main__":
    main()
