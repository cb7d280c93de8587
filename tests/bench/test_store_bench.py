"""The case-store bench (`bench/store/bench_cases.py`) at a tiny size on both databases:
the fill gives the migrated schema every index back, every query row is printed, and
`--keep` measures a kept store again without a new fill. No timing is asserted."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from tests.bench.test_bench_smoke import ROOT

pytestmark = pytest.mark.timeout(600)
SCRIPT = str(ROOT / "bench" / "store" / "bench_cases.py")


def bench(*argv: str) -> str:
    done = subprocess.run(
        [sys.executable, SCRIPT, "--cases", "400", "--repeat", "1", *argv],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=540,
        check=False,
    )
    assert done.returncode == 0, f"{argv} failed:\n{done.stdout}\n{done.stderr}"
    return done.stdout


def query_rows(out: str) -> dict[str, int]:
    """query label -> rows found, from the printed Markdown table."""
    found = {}
    for line in out.splitlines():
        cells = [c.strip() for c in line.strip("|").split("|")]
        if len(cells) == 4 and cells[0].startswith(("list", "show", "related")):
            found[cells[0]] = int(cells[3])
    return found


def _check(out: str) -> None:
    rows = query_rows(out)
    assert len(rows) == 22, out
    assert rows["list (no filter)"] == 100 and rows["show ID (random cases)"] == 1
    assert next(n for label, n in rows.items() if "a relay seen once" in label) == 1


def test_sqlite_fill_keeps_the_schema_and_measures_a_kept_store(tmp_path: Path) -> None:
    first = bench("--db", "sqlite", "--keep", str(tmp_path))
    assert "400 cases filled" in first
    _check(first)
    store = sqlite3.connect(tmp_path / "bench.db")
    names = {n for (n,) in store.execute("SELECT name FROM sqlite_master WHERE type = 'index'")}
    assert {"ix_cases_status_created", "ix_case_identities_identity", "ix_reports_sha256"} <= names
    assert store.execute("SELECT COUNT(*) FROM cases_text").fetchone() == (400,)
    assert store.execute("PRAGMA integrity_check").fetchone() == ("ok",)
    store.close()
    again = bench("--db", "sqlite", "--keep", str(tmp_path))
    assert "reusing the store" in again and "400 cases kept store upgraded" in again
    _check(again)


def test_postgres_fill(tmp_path: Path) -> None:
    _check(bench("--db", "postgres"))
