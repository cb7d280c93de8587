"""The listener process stays lean: the store, the analysis and DNS live in the worker.

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
