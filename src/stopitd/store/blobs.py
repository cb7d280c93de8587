"""Big raw messages on SQLite, written in pieces.

Bound whole, a 25 MB blob costs SQLite's writer two more copies of it: pysqlite copies
a bound blob (``SQLITE_TRANSIENT``) and SQLite builds the row's record in a buffer of its
own. So on SQLite a `raw` above `BIG_BLOB` goes in as ``b""``; once the row has its id,
``zeroblob(n)`` reserves its size and the bytes are written from a memoryview of the
caller's buffer through SQLite's incremental blob I/O, `PIECE` bytes at a time, in the
same transaction. That keeps the record small only because `raw` is the last column of
`reports` and `originals` (migration 0130): SQLite expands a zeroblob anywhere else.

PostgreSQL, and every small message, take the ordinary path (a bound parameter).
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from typing import Any

from sqlalchemy import text
from sqlalchemy.orm import Session

BIG_BLOB = 1 << 20  # bytes; at or below, a blob is bound as usual
PIECE = 1 << 20  # bytes per incremental write
COLUMN = "raw"


def set_aside(
    session: Session, rows: list[dict[str, Any]]
) -> tuple[list[dict[str, Any]], list[bytes | None]]:
    """The rows to insert (a big `raw` replaced by ``b""`` on SQLite, the caller's dicts
    left as they were) and, per row, the blob to `write` after the insert (None: none)."""
    if not rows or session.get_bind().dialect.name != "sqlite":
        return rows, [None] * len(rows)
    out: list[dict[str, Any]] = []
    held: list[bytes | None] = []
    for row in rows:
        blob = row.get(COLUMN)
        if isinstance(blob, bytes) and len(blob) > BIG_BLOB:
            out.append({**row, COLUMN: b""})
            held.append(blob)
        else:
            out.append(row)
            held.append(None)
    return out, held


def write(session: Session, table: str, ids: Sequence[int], held: Sequence[bytes | None]) -> None:
    """Write each held blob into the `raw` of row `ids[i]` of `table` (inserted with
    ``b""`` in this transaction): ``zeroblob(n)``, then the bytes in pieces."""
    for row_id, blob in zip(ids, held, strict=True):
        if blob is None:
            continue
        session.execute(
            text(f"UPDATE {table} SET {COLUMN} = zeroblob(:n) WHERE id = :id"),
            {"n": len(blob), "id": row_id},
        )
        driver = session.connection().connection.driver_connection
        assert isinstance(driver, sqlite3.Connection), "incremental blob I/O is SQLite's"
        view = memoryview(blob)
        with driver.blobopen(table, COLUMN, row_id) as handle:
            for start in range(0, len(view), PIECE):
                handle.write(view[start : start + PIECE])
