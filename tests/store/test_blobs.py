"""Big raw messages (> 1 MiB) are stored byte for byte: on SQLite they go in as a trailing
``zeroblob`` written in pieces (store/blobs.py, migration 0130), elsewhere and below the
threshold as a bound parameter, as before. Both save paths, both databases."""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterator

import pytest
from sqlalchemy import Engine, select, text
from sqlalchemy.orm import Session

from stopitd.store import blobs, db
from stopitd.store.batch import Filing, save_reports
from stopitd.store.cases import save_report
from stopitd.store.schema import Report
from tests.store.reports import analysis_of, envelope, report

LINE = b"All work and no play makes Jack a dull boy, over and over, in the original.\r\n"


def big_report(n: int) -> bytes:
    """A report whose attached original is ~1.5 MiB: both raws above `blobs.BIG_BLOB`."""
    body = (LINE * (3 * blobs.BIG_BLOB // 2 // len(LINE))).decode()
    return report(n, text=body.rstrip("\r\n"))


@pytest.fixture
def engine(store_url: str) -> Iterator[Engine]:
    engine = db.make_engine(store_url)
    yield engine
    engine.dispose()


def file_one_by_one(session: Session, raws: list[tuple[str, bytes]]) -> None:
    for spool_id, raw in raws:
        save_report(
            session, spool_id=spool_id, envelope=envelope(), raw=raw, analysis=analysis_of(raw)
        )


def file_as_batch(session: Session, raws: list[tuple[str, bytes]]) -> None:
    save_reports(session, [Filing(s, envelope(), raw, analysis_of(raw)) for s, raw in raws])


@pytest.mark.parametrize("file", [file_one_by_one, file_as_batch], ids=["one", "batch"])
def test_big_and_small_reports_are_stored_byte_identical(
    engine: Engine, file: Callable[[Session, list[tuple[str, bytes]]], None]
) -> None:
    raws = [("s-small", report(1)), ("s-big", big_report(2)), ("s-small2", report(3))]
    assert len(raws[1][1]) > blobs.BIG_BLOB and len(raws[0][1]) < blobs.BIG_BLOB
    with db.make_sessionmaker(engine)() as session, session.begin():
        file(session, raws)
    with engine.connect() as conn:
        stored = {
            spool_id: (bytes(raw), sha256, size)
            for spool_id, raw, sha256, size in conn.execute(
                text("SELECT spool_id, raw, sha256, size FROM reports")
            )
        }
        originals = {
            spool_id: (bytes(raw), sha256)
            for spool_id, raw, sha256 in conn.execute(
                text(
                    "SELECT r.spool_id, o.raw, o.sha256 FROM originals o"
                    " JOIN reports r ON r.id = o.report_id"
                )
            )
        }
    assert set(stored) == {s for s, _ in raws} == set(originals)
    for spool_id, raw in raws:
        assert stored[spool_id] == (raw, hashlib.sha256(raw).hexdigest(), len(raw))
        (original,) = analysis_of(raw).originals
        assert originals[spool_id] == (original.raw, hashlib.sha256(original.raw).hexdigest())
    assert len(originals["s-big"][0]) > blobs.BIG_BLOB


def test_a_big_report_reads_back_in_its_own_transaction(engine: Engine) -> None:
    raw = big_report(4)
    with db.make_sessionmaker(engine)() as session, session.begin():
        file_one_by_one(session, [("s-orm", raw)])
        orm = session.execute(select(Report).where(Report.spool_id == "s-orm")).scalar_one()
        assert orm.raw == raw
        sql = text("SELECT raw FROM reports WHERE spool_id = 's-orm'")
        assert bytes(session.execute(sql).scalar_one()) == raw


def test_only_big_blobs_on_sqlite_are_set_aside(engine: Engine) -> None:
    small = {"id": 1, "raw": b"x" * blobs.BIG_BLOB}
    big = {"id": 2, "raw": b"y" * (blobs.BIG_BLOB + 1)}
    with db.make_sessionmaker(engine)() as session:
        rows, held = blobs.set_aside(session, [small, big])
        sqlite = session.get_bind().dialect.name == "sqlite"
    assert rows[0] is small and held[0] is None
    if sqlite:
        assert rows[1] == {"id": 2, "raw": b""} and held[1] is big["raw"]
        assert big["raw"] == b"y" * (blobs.BIG_BLOB + 1)  # the caller's dict is left alone
    else:
        assert rows[1] is big and held == [None, None]


def test_raw_is_the_last_column_on_sqlite(sqlite_url: str) -> None:
    engine = db.make_engine(sqlite_url)
    try:
        with engine.connect() as conn:
            for table in ("reports", "originals"):
                columns = [row[1] for row in conn.exec_driver_sql(f"PRAGMA table_info({table})")]
                assert columns[-1] == "raw", table
                assert columns.count("raw") == 1
    finally:
        engine.dispose()
