"""The daemon's processes stay lean: the store, the analysis and DNS live in the worker
only, and the worker does without alembic.

Issue 9's memory target counts the daemon's processes together; SQLAlchemy, alembic, the
analysis (with extract-msg) and the DNS libraries would add ~40 MB to the listener for its
whole life. ``stopitd serve`` loads the daemon module and checks the schema (in a child
process): after that, none of them may be in the listener's interpreter.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from stopitd.store import db
from tests.daemon_helpers import Daemon, daemon

__all__ = ["daemon"]  # the fixture, imported for pytest

_HEAVY = ("sqlalchemy", "alembic", "extract_msg", "dkim", "dns", "jinja2")
_WORKER_SIDE = ("stopitd.worker", "stopitd.store", "stopitd.outbound", "stopitd.verify")

_PROBE = """
import json, sys
from stopitd import cli
cli._load("serve")
from stopitd import daemon
check = daemon.check_store(sys.argv[1])
print(json.dumps({"outcome": check.outcome, "label": check.label, "modules": sorted(sys.modules)}))
"""


def _listener_modules(url: str) -> dict[str, object]:
    done = subprocess.run(
        [sys.executable, "-c", _PROBE, url], capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    result: dict[str, object] = json.loads(done.stdout)
    return result


def _loaded(modules: object, prefixes: tuple[str, ...]) -> list[str]:
    assert isinstance(modules, list)
    return [m for m in modules if any(m == p or m.startswith(p + ".") for p in prefixes)]


def test_the_schema_check_runs_without_loading_the_store_into_the_listener(
    sqlite_url: str,
) -> None:
    probe = _listener_modules(sqlite_url)
    assert probe["outcome"] == "ok"
    assert probe["label"] == sqlite_url
    assert _loaded(probe["modules"], _HEAVY) == []
    assert _loaded(probe["modules"], _WORKER_SIDE) == []


def test_a_store_behind_is_still_refused(tmp_path: Path) -> None:
    probe = _listener_modules(f"sqlite:///{tmp_path}/never-migrated.db")
    assert probe["outcome"] == "behind"
    assert _loaded(probe["modules"], _HEAVY) == []


def test_the_label_hides_the_password() -> None:
    probe = _listener_modules("postgresql://stopitd:s3cret@127.0.0.1:1/none?connect_timeout=1")
    assert probe["outcome"] in ("down", "error")
    assert "s3cret" not in str(probe["label"])
    assert _loaded(probe["modules"], _HEAVY) == []


_WORKER_PROBE = """
import json, sys
from stopitd import worker
from stopitd.store import db
engine = db.make_engine(sys.argv[1], writer=True)
outcome = "ok"
try:
    worker._schema_check(engine, sys.argv[2])()
except Exception as e:
    outcome = type(e).__name__
print(json.dumps({"outcome": outcome, "modules": sorted(sys.modules)}))
"""


def _worker_check(url: str, head: str) -> dict[str, object]:
    done = subprocess.run(
        [sys.executable, "-c", _WORKER_PROBE, url, head],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    result: dict[str, object] = json.loads(done.stdout)
    return result


def test_the_worker_checks_the_schema_against_the_daemons_head_without_alembic(
    sqlite_url: str, tmp_path: Path
) -> None:
    head = db.head_revision()
    current = _worker_check(sqlite_url, head)
    assert current["outcome"] == "ok"
    assert _loaded(current["modules"], ("alembic",)) == []
    behind = _worker_check(f"sqlite:///{tmp_path}/never-migrated.db", head)
    assert behind["outcome"] == "SchemaBehindError"
    other = _worker_check(sqlite_url, "0000not-our-head")
    assert other["outcome"] == "SchemaBehindError"


def test_the_revision_read_without_alembic_is_alembics(sqlite_url: str) -> None:
    engine = db.make_engine(sqlite_url)
    try:
        assert db.stored_revision(engine) == db.current_revision(engine) == db.head_revision()
    finally:
        engine.dispose()


def test_serve_runs_as_two_processes_listener_and_worker(daemon: Daemon) -> None:
    """No third process (multiprocessing's resource tracker was one, ~12 MB)."""
    assert daemon.proc is not None
    worker_pid = daemon.events("daemon_ready")[0]["worker_pid"]
    children = Path(f"/proc/{daemon.proc.pid}/task/{daemon.proc.pid}/children").read_text()
    assert [int(pid) for pid in children.split()] == [worker_pid]
