"""Case-store benchmark: fill N cases of realistic shape, then time list/show/related.

    python bench/store/bench_cases.py --db sqlite --cases 1000000
    python bench/store/bench_cases.py --db postgres --cases 1000000   # throwaway server

Shape (per case, seeded): 1 report (80%), 2 (15%) or 3-5 (5%), each with its raw bytes
made from one of eight fixture reports (Thunderbird and Gmail forwards as attachment;
Outlook 365, Outlook desktop, Gmail, Yahoo, Apple Mail and Thunderbird inline forwards,
0.9-3.2 kB) with this case's subject, sender, Message-ID and relay address written in,
so every report's bytes and sha256 differ; one original each (its raw bytes and the
template's real analysis JSON with the same values written in), one analysis row, one
thread id; 2 de-duplication keys; 6-9 identities drawn from Zipf-like pools (a few
senders and IPs repeat in thousands of cases, most in one); a quarter of relays are a
provider's (not linking); 1-4 staff events and a note in 20%. Statuses 70% closed, 15%
open, 10% new, 5% waiting; 80% routed to one of 6 offices; 60% assigned to one of 20
staff; created over two years. Hops, auth results, verdicts and findings rows are not
filled: nothing measured here reads them.

The fill is a bulk load. On PostgreSQL, as a restore would be: the migrated schema's
secondary indexes, keys and foreign keys are dropped, the rows written with `COPY`, then
everything dropped is created again from its saved definition. On SQLite: `executemany`
in one transaction with `journal_mode=OFF`, `synchronous=OFF` and a 4 GB page cache, with
the migrated indexes and text-search triggers in place (see `_fill_sqlite`). Either way
the measured store has exactly the migrated schema.

`--keep DIR` keeps the filled store (and the PostgreSQL server's data) in DIR; a second
run with the same --cases upgrades it to the current migrations and measures it again
without a new fill.

Each query runs --repeat times through the same store functions the CLI calls
(`list_cases` with the CLI's default limit of 100, `show_case`, `related_cases`);
median and 95th percentile in milliseconds are printed as a Markdown table.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import random
import shutil
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from sqlalchemy import Engine, text  # noqa: E402
from sqlalchemy.exc import DBAPIError  # noqa: E402

from stopitd.analysis import analyze  # noqa: E402
from stopitd.analysis.model import Envelope, analysis_to_json  # noqa: E402
from stopitd.analysis.policy import Policy  # noqa: E402
from stopitd.store import db  # noqa: E402
from stopitd.store.fingerprints import ip_key  # noqa: E402
from stopitd.store.queries import CaseFilter, list_cases, related_cases, show_case  # noqa: E402

TEMPLATE_FILES = [  # (fixture, weight): half forwarded as attachment, half inline
    ("reports/thunderbird-attached.eml", 25),
    ("forwarded/gmail-forward-as-attachment.eml", 25),
    ("forwarded/outlook365-inline.eml", 15),
    ("forwarded/outlook-desktop-inline.eml", 10),
    ("forwarded/gmail-inline.eml", 10),
    ("forwarded/yahoo-inline.eml", 5),
    ("forwarded/apple-inline-quoted.eml", 5),
    ("forwarded/thunderbird-inline.eml", 5),
]


@dataclass(frozen=True, slots=True)
class Template:
    """A fixture report and its analysis, with the values each case writes in."""

    raw: bytes
    original_raw: bytes
    analysis_json: str
    original_json: str
    subject: str
    sender: str
    message_id: str
    relay_ip: str

    @staticmethod
    def load(name: str) -> Template:
        raw = (ROOT / "fixtures" / name).read_bytes()
        result = analyze(raw, Envelope(), Policy())
        original = result.originals[0]
        data = analysis_to_json(result)
        sender = original.fields.from_.address if original.fields.from_ else ""
        return Template(
            raw,
            original.raw,
            json.dumps(data),
            json.dumps(data["originals"][0]),
            original.fields.subject,
            sender,
            original.fields.message_id,
            original.source.relay_ip,
        )

    def fill(
        self, subject: str, sender: str, message_id: str, relay: str
    ) -> tuple[bytes, bytes, str, str]:
        """(report raw, original raw, analysis JSON, original JSON) for one report."""
        pairs = [(self.subject, subject), (self.sender, sender)]
        if self.message_id:
            pairs.append((self.message_id, message_id))
        if self.relay_ip:
            pairs.append((self.relay_ip, relay))
        raw, original, analysis, original_json = (
            self.raw,
            self.original_raw,
            self.analysis_json,
            self.original_json,
        )
        for old, new in pairs:
            old_b, new_b = old.encode(), new.encode()
            raw = raw.replace(old_b, new_b)
            original = original.replace(old_b, new_b)
            analysis = analysis.replace(old, new)
            original_json = original_json.replace(old, new)
        return raw, original, analysis, original_json


TEMPLATES = [Template.load(name) for name, _ in TEMPLATE_FILES]
TEMPLATE_WEIGHTS = [w for _, w in TEMPLATE_FILES]
NOW = datetime(2026, 11, 25, tzinfo=UTC)
OFFICES = ["title-ix", "dean-of-students", "hr", "it-security", "police-liaison", "residence"]
STAFF = [f"staff{i:02d}" for i in range(20)]
WORDS = [
    "you",
    "know",
    "what",
    "you",
    "did",
    "watch",
    "out",
    "I",
    "saw",
    "you",
    "again",
    "library",
    "tonight",
    "answer",
    "me",
    "last",
    "warning",
    "everyone",
    "will",
    "know",
    "photos",
    "party",
    "leave",
    "her",
    "alone",
    "meet",
    "me",
]
STATUSES = ["closed"] * 70 + ["open"] * 15 + ["new"] * 10 + ["waiting"] * 5
BATCH = 5000
TABLES = [
    "cases",
    "identities",
    "case_identities",
    "reports",
    "analyses",
    "originals",
    "dedupe_keys",
    "thread_ids",
    "events",
    "notes",
]


def zipf_pick(rng: random.Random, pool: int) -> int:
    """An index in [0, pool): index 0 is drawn most, the tail about once."""
    return min(int(rng.paretovariate(1.1)) - 1, pool - 1)


def public_ip(n: int) -> str:
    return f"{45 + n % 150}.{(n >> 8) % 250 + 1}.{(n >> 3) % 250}.{n % 250 + 1}"


class Filler:
    def __init__(self, engine: Engine, cases: int, seed: int) -> None:
        self.engine = engine
        self.n = cases
        self.rng = random.Random(seed)
        self.pg = engine.dialect.name == "postgresql"
        self.ids = {"report": 0, "analysis": 0, "original": 0, "event": 0, "note": 0, "thread": 0}
        self.identity_ids: dict[tuple[str, str], int] = {}
        self.senders = max(cases // 2, 10)
        self.ips = max(cases // 3, 10)

    def next_id(self, kind: str) -> int:
        self.ids[kind] += 1
        return self.ids[kind]

    def identity(self, kind: str, value: str, rows: list[tuple[Any, ...]]) -> int:
        key = (kind, value)
        if key not in self.identity_ids:
            self.identity_ids[key] = len(self.identity_ids) + 1
            ipk = ip_key(value) if kind.endswith("_ip") else None
            rows.append((self.identity_ids[key], kind, value, ipk))
        return self.identity_ids[key]

    def batches(self) -> Iterator[dict[str, list[tuple[Any, ...]]]]:
        rng = self.rng
        span = 2 * 365 * 86400
        for start in range(1, self.n + 1, BATCH):
            t: dict[str, list[tuple[Any, ...]]] = {k: [] for k in TABLES}
            for cid in range(start, min(start + BATCH, self.n + 1)):
                created = NOW - timedelta(seconds=span * (self.n - cid) / self.n)
                status = rng.choice(STATUSES)
                sender_n = zipf_pick(rng, self.senders)
                domain = "gmail.com" if sender_n % 3 else f"d{sender_n % 997}.example"
                sender = f"user{sender_n}@{domain}"
                provider = sender.endswith("gmail.com") and rng.random() < 0.8
                relay = (
                    f"209.85.{rng.randrange(128, 256)}.{rng.randrange(1, 255)}"
                    if provider
                    else public_ip(zipf_pick(rng, self.ips) * 7919)
                )
                origin = public_ip(zipf_pick(rng, self.ips) * 104729) if rng.random() < 0.4 else ""
                subject = " ".join(rng.choices(WORDS, k=rng.randrange(3, 8)))
                t["cases"].append(
                    (
                        cid,
                        status,
                        subject,
                        created,
                        created + timedelta(hours=rng.randrange(1, 400)),
                        rng.choice(OFFICES) if rng.random() < 0.8 else None,
                        rng.choice(STAFF) if rng.random() < 0.6 else None,
                        relay,
                        origin,
                        "handoff" if not origin else "submission",
                        sender,
                        created + timedelta(days=rng.randrange(1, 60))
                        if status == "closed"
                        else None,
                    )
                )
                idents = [
                    ("from_address", sender, True),
                    ("from_domain", sender.split("@")[1], False),
                    ("envelope_sender", sender, True),
                    ("relay_ip", relay, not provider),
                    ("relay_prefix", relay.rsplit(".", 1)[0] + ".0/24", not provider),
                ]
                if not provider:
                    idents.append(("dkim_domain", sender.split("@")[1], sender_n % 3 == 0))
                if origin:
                    idents.append(("origin_ip", origin, True))
                    idents.append(("origin_prefix", origin.rsplit(".", 1)[0] + ".0/24", True))
                seen = set()
                for kind, value, links in idents:
                    iid = self.identity(kind, value, t["identities"])
                    if iid not in seen:
                        seen.add(iid)
                        t["case_identities"].append((cid, iid, links))
                mid = f"m{cid}.{sender_n}@mail.example"
                t["dedupe_keys"].append(("mid:" + hashlib.sha256(mid.encode()).hexdigest(), cid))
                t["dedupe_keys"].append(
                    ("dig:" + hashlib.sha256(subject.encode() + mid.encode()).hexdigest(), cid)
                )
                r = rng.random()
                n_reports = 1 if r < 0.8 else 2 if r < 0.95 else rng.randrange(3, 6)
                for k in range(n_reports):
                    rid = self.next_id("report")
                    at = created + timedelta(minutes=k * 37)
                    reporter = f"reporter{rng.randrange(20000)}@example.edu"
                    template = rng.choices(TEMPLATES, TEMPLATE_WEIGHTS)[0]
                    raw, original_raw, analysis_json, original_json = template.fill(
                        subject, sender, mid, relay
                    )
                    t["reports"].append(
                        (
                            rid,
                            f"bench-{rid:09d}",
                            cid,
                            at,
                            reporter,
                            raw,
                            hashlib.sha256(raw).hexdigest(),
                            len(raw),
                            "Fwd: " + subject,
                            f"r{rid}@example.edu",
                            at,
                            "new" if k == 0 else "duplicate",
                            analysis_json,
                        )
                    )
                    aid = self.next_id("analysis")
                    t["analyses"].append((aid, rid, at, analysis_json))
                    oid = self.next_id("original")
                    t["originals"].append(
                        (
                            oid,
                            rid,
                            aid,
                            cid,
                            mid,
                            sender,
                            subject,
                            relay,
                            origin,
                            original_raw,
                            hashlib.sha256(original_raw).hexdigest(),
                            original_json,
                        )
                    )
                    t["thread_ids"].append((self.next_id("thread"), f"r{rid}@example.edu", cid))
                t["events"].append((self.next_id("event"), cid, created, "stopitd", "created", {}))
                for k in range(rng.randrange(1, 5)):
                    t["events"].append(
                        (
                            self.next_id("event"),
                            cid,
                            created + timedelta(hours=k + rng.random() * 48),
                            rng.choice(STAFF),
                            rng.choice(["assigned", "routed", "status_changed", "note_added"]),
                            {},
                        )
                    )
                if rng.random() < 0.2:
                    t["notes"].append(
                        (
                            self.next_id("note"),
                            cid,
                            created,
                            rng.choice(STAFF),
                            "Called the reporter.",
                        )
                    )
            yield t

    def fill(self) -> None:
        if self.pg:
            self._fill_postgres()
        else:
            self._fill_sqlite()

    def _fill_sqlite(self) -> None:
        """One transaction, no journal, no fsync, a 4 GB page cache; the migrated
        indexes and the text-search triggers stay in place during the load.

        Building the indexes afterwards (as the PostgreSQL fill does) costs more on
        SQLite: a report's or original's indexed columns sit after its raw bytes and
        JSON, in overflow pages, so each CREATE INDEX read a whole 5-8 GB table again
        (59 GB read for 1 000 000 cases), while the index b-trees themselves (under
        2 GB for 1 000 000 cases) stay in the page cache when they are kept."""
        path = self.engine.url.database
        assert path
        self.engine.dispose()
        conn = sqlite3.connect(path, isolation_level=None)
        conn.execute("PRAGMA journal_mode=OFF")
        conn.execute("PRAGMA synchronous=OFF")
        conn.execute("PRAGMA cache_size=-4000000")  # 4 GB
        conn.execute("PRAGMA temp_store=MEMORY")
        conn.execute("BEGIN")
        for batch in self.batches():
            for table, rows in batch.items():
                if rows:
                    cols, values = COLUMNS[table](rows)
                    marks = ", ".join("?" * len(cols))
                    conn.executemany(
                        f"INSERT INTO {table} ({', '.join(cols)}) VALUES ({marks})", values
                    )
        conn.execute("COMMIT")
        conn.execute("ANALYZE")
        conn.execute("PRAGMA journal_mode=WAL")
        conn.close()

    def _fill_postgres(self) -> None:
        """COPY into tables stripped of foreign keys, keys and indexes, which are added
        back from their saved definitions once the rows are in. The throwaway server gets
        bulk-load checkpoint settings (fewer, larger checkpoints) for the fill."""
        with self.engine.connect() as conn:
            auto = conn.execution_options(isolation_level="AUTOCOMMIT")
            auto.execute(text("ALTER SYSTEM SET max_wal_size = '8GB'"))
            auto.execute(text("ALTER SYSTEM SET checkpoint_timeout = '30min'"))
            auto.execute(text("SELECT pg_reload_conf()"))
        with self.engine.begin() as conn:
            conn.execute(text("SET maintenance_work_mem = '1GB'"))
            # lz4 where the server has it (PostgreSQL >= 14 built with lz4, as Debian's
            # is): the JSON and raw bytes are compressed ~5x faster than with pglz
            lz4 = conn.execute(
                text(
                    "SELECT 'lz4' = ANY(enumvals) FROM pg_settings"
                    " WHERE name = 'default_toast_compression'"
                )
            ).scalar()
            if lz4:
                conn.execute(text("SET default_toast_compression = 'lz4'"))
            constraints = conn.execute(
                text(
                    "SELECT conrelid::regclass::text, conname, contype,"
                    " pg_get_constraintdef(oid) FROM pg_constraint"
                    " WHERE contype IN ('p', 'u', 'f') AND connamespace = 'public'::regnamespace"
                    " ORDER BY contype = 'f' DESC"
                )
            ).all()
            indexes = conn.execute(
                text(
                    "SELECT indexname, indexdef FROM pg_indexes WHERE schemaname = 'public'"
                    " AND indexname NOT IN (SELECT conname FROM pg_constraint)"
                )
            ).all()
            for table, name, _type, _definition in constraints:
                conn.execute(text(f"ALTER TABLE {table} DROP CONSTRAINT {name}"))
            for name, _definition in indexes:
                conn.execute(text(f"DROP INDEX {name}"))
            raw_conn = conn.connection.driver_connection
            assert raw_conn is not None
            for batch in self.batches():
                for table, rows in batch.items():
                    if rows:
                        cols, values = COLUMNS[table](rows)
                        with (
                            raw_conn.cursor() as cur,
                            cur.copy(f"COPY {table} ({', '.join(cols)}) FROM STDIN") as copy,
                        ):
                            for row in values:
                                copy.write_row(row)
            for table, name, _type, definition in reversed(constraints):  # keys, then FKs
                if _type != "f":
                    conn.execute(text(f"ALTER TABLE {table} ADD CONSTRAINT {name} {definition}"))
            for _name, definition in indexes:
                conn.execute(text(definition))
            for table, name, _type, definition in constraints:
                if _type == "f":
                    conn.execute(text(f"ALTER TABLE {table} ADD CONSTRAINT {name} {definition}"))
            for table in (
                "cases",
                "reports",
                "analyses",
                "originals",
                "events",
                "notes",
                "thread_ids",
                "identities",
            ):
                conn.execute(
                    text(
                        f"SELECT setval('{table}_id_seq',"
                        f" (SELECT COALESCE(MAX(id), 1) FROM {table}))"
                    )
                )
        with self.engine.connect() as conn:
            conn.execution_options(isolation_level="AUTOCOMMIT").execute(text("VACUUM ANALYZE"))


def _sqlite_time(value: datetime | None) -> str | None:
    """SQLAlchemy's SQLite text form, 'YYYY-MM-DD HH:MM:SS.ffffff' (UTC, no zone)."""
    return None if value is None else value.isoformat(" ", "microseconds")[:26]


def _cols(
    names: str, convert: Callable[[tuple[Any, ...]], tuple[Any, ...]]
) -> Callable[[list[tuple[Any, ...]]], tuple[list[str], list[tuple[Any, ...]]]]:
    def build(rows: list[tuple[Any, ...]]) -> tuple[list[str], list[tuple[Any, ...]]]:
        return names.split(), [convert(r) for r in rows]

    return build


T = _sqlite_time
PG = False


def t(value: datetime | None) -> Any:
    return value if PG else T(value)


COLUMNS: dict[str, Callable[[list[tuple[Any, ...]]], tuple[list[str], list[tuple[Any, ...]]]]] = {
    "cases": _cols(
        "id status subject created_at updated_at office assignee relay_ip origin_ip"
        " source_mode from_address closed_at",
        lambda r: (*r[:3], t(r[3]), t(r[4]), *r[5:11], t(r[11])),
    ),
    "identities": _cols("id kind value ip_key", lambda r: r),
    "case_identities": _cols("case_id identity_id links", lambda r: r),
    "reports": _cols(
        "id spool_id case_id received_at reporter rcpt_tos peer helo raw sha256 size subject"
        " message_id analyzer_version analysis created_at joined_by",
        lambda r: (
            r[0],
            r[1],
            r[2],
            t(r[3]),
            r[4],
            '["stopit@example.edu"]',
            "127.0.0.1",
            "mx.example.edu",
            r[5],
            r[6],
            r[7],
            r[8],
            r[9],
            "0.1.0",
            r[12],
            t(r[10]),
            r[11],
        ),
    ),
    "analyses": _cols(
        "id report_id analyzer_version schema_version created_at current verified result",
        lambda r: (r[0], r[1], "0.1.0", 1, t(r[2]), True, False, r[3]),
    ),
    "originals": _cols(
        "id report_id analysis_id case_id position how grade raw sha256 message_id"
        " from_address subject relay_ip origin_ip source_mode analysis",
        lambda r: (
            r[0],
            r[1],
            r[2],
            r[3],
            0,
            "attachment",
            "full-message",
            r[9],
            r[10],
            r[4],
            r[5],
            r[6],
            r[7],
            r[8],
            "handoff",
            r[11],
        ),
    ),
    "dedupe_keys": _cols("key case_id", lambda r: r),
    "thread_ids": _cols("id message_id case_id origin", lambda r: (*r, "report")),
    "events": _cols(
        "id case_id at actor kind detail",
        lambda r: (r[0], r[1], t(r[2]), r[3], r[4], json.dumps(r[5])),
    ),
    "notes": _cols("id case_id at author text", lambda r: (r[0], r[1], t(r[2]), r[3], r[4])),
}


def timed(fn: Callable[[], object], repeat: int) -> tuple[float, float]:
    samples = []
    fn()  # warm the caches once, as a staff member's second query would find them
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        samples.append((time.perf_counter() - t0) * 1000)
    samples.sort()
    return statistics.median(samples), samples[min(len(samples) - 1, int(len(samples) * 0.95))]


def measure(engine: Engine, n: int, repeat: int, seed: int) -> list[tuple[str, float, float, int]]:
    rng = random.Random(seed + 1)
    maker = db.make_sessionmaker(engine)
    out = []
    with maker() as session:
        hot_sender = "user0@d0.example"
        hot_ip = session.execute(
            text(
                "SELECT relay_ip FROM cases WHERE relay_ip NOT LIKE '209.85.%'"
                " GROUP BY relay_ip ORDER BY COUNT(*) DESC LIMIT 1"
            )
        ).scalar_one()
        rare_ip = session.execute(
            text("SELECT relay_ip FROM cases WHERE id = :i"), {"i": n // 2}
        ).scalar_one()
        once_ip = session.execute(
            text(
                "SELECT relay_ip FROM cases WHERE relay_ip NOT LIKE '209.85.%'"
                " GROUP BY relay_ip HAVING COUNT(*) = 1 ORDER BY relay_ip LIMIT 1"
            )
        ).scalar_one()
        filters: list[tuple[str, CaseFilter]] = [
            ("list (no filter)", CaseFilter(limit=100)),
            ("list --status open", CaseFilter(status="open", limit=100)),
            ("list --status new (10%)", CaseFilter(status="new", limit=100)),
            ("list --office hr", CaseFilter(office="hr", limit=100)),
            ("list --assignee staff07", CaseFilter(assignee="staff07", limit=100)),
            ("list --since (last 30 days)", CaseFilter(since=NOW - timedelta(days=30), limit=100)),
            ("list --until (a year ago)", CaseFilter(until=NOW - timedelta(days=365), limit=100)),
            (
                "list --status open --office hr --since 90d",
                CaseFilter(status="open", office="hr", since=NOW - timedelta(days=90), limit=100),
            ),
            (f"list --ip (hot relay {hot_ip})", CaseFilter(ip=hot_ip, limit=100)),
            ("list --ip (relay of case N/2)", CaseFilter(ip=rare_ip, limit=100)),
            (f"list --ip (a relay seen once, {once_ip})", CaseFilter(ip=once_ip, limit=100)),
            (
                "list --status waiting --ip (hot relay)",
                CaseFilter(status="waiting", ip=hot_ip, limit=100),
            ),
            (
                "list --assignee staff07 --domain gmail.com --until (a year ago)",
                CaseFilter(
                    assignee="staff07",
                    domain="gmail.com",
                    until=NOW - timedelta(days=365),
                    limit=100,
                ),
            ),
            ("list --ip 209.85.0.0/16 (provider CIDR)", CaseFilter(ip="209.85.0.0/16", limit=100)),
            (
                "list --ip /24 of the hot relay",
                CaseFilter(ip=hot_ip.rsplit(".", 1)[0] + ".0/24", limit=100),
            ),
            (
                "list --domain d0.example (repeat sender)",
                CaseFilter(domain="d0.example", limit=100),
            ),
            ("list --domain gmail.com (2/3 of cases)", CaseFilter(domain="gmail.com", limit=100)),
            ("list --text warning (common word)", CaseFilter(text="warning", limit=100)),
            ("list --text user12345@ (rare)", CaseFilter(text="user12345@", limit=100)),
        ]
        for label, flt in filters:
            rows = list_cases(session, flt)
            med, p95 = timed(lambda flt=flt: list_cases(session, flt), repeat)
            out.append((label, med, p95, len(rows)))
            session.rollback()
        ids = [rng.randrange(1, n + 1) for _ in range(repeat + 1)]
        it = iter(ids)
        med, p95 = timed(lambda: show_case(session, next(it)), repeat)
        out.append(("show ID (random cases)", med, p95, 1))
        it2 = iter(ids)
        med, p95 = timed(lambda: related_cases(session, next(it2)), repeat)
        out.append(("related ID (random cases, limit 50)", med, p95, 0))
        hot_case = session.execute(
            text("SELECT MAX(id) FROM cases WHERE from_address = :s"), {"s": hot_sender}
        ).scalar_one()
        rel = related_cases(session, hot_case) or []
        med, p95 = timed(lambda: related_cases(session, hot_case), repeat)
        out.append(("related ID (case of the most-repeated sender)", med, p95, len(rel)))
    return out


def _filled(url: str) -> int:
    """How many cases a kept store holds (0 when it has no schema yet)."""
    engine = db.make_engine(url)
    try:
        with engine.connect() as conn:
            return int(conn.execute(text("SELECT COUNT(*) FROM cases")).scalar_one())
    except DBAPIError:  # no schema yet
        return 0
    finally:
        engine.dispose()


def _load() -> str:
    return subprocess.run(["uptime"], capture_output=True, text=True, check=False).stdout.strip()


def main() -> None:
    global PG
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--db", choices=["sqlite", "postgres"], required=True)
    parser.add_argument("--cases", type=int, default=100_000)
    parser.add_argument("--repeat", type=int, default=20)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--workdir", type=Path, default=None, help="Where the SQLite file goes.")
    parser.add_argument(
        "--keep",
        type=Path,
        default=None,
        help="Keep the filled store in this folder (the SQLite file, or the PostgreSQL"
        " server's data) and, when it already holds --cases cases, measure it again"
        " without a new fill (after `db upgrade`, so a new migration is measured too).",
    )
    args = parser.parse_args()
    server = None
    keep = args.keep
    if keep is not None:
        keep.mkdir(parents=True, exist_ok=True)
    workdir = keep or args.workdir or Path(tempfile.mkdtemp(prefix="stopitd-bench-"))
    if args.db == "postgres":
        from tests.pg import PgServer

        server = PgServer(root=keep / "pg") if keep is not None else PgServer()
        server.start()
        if keep is not None:
            with server.admin() as admin:
                found = admin.execute("SELECT 1 FROM pg_database WHERE datname = 'bench'")
                if not found.fetchone():
                    admin.execute("CREATE DATABASE bench")
            url = server.url("bench")
        else:
            url = server.url(server.create_database())
        PG = True
    else:
        url = f"sqlite:///{workdir / 'bench.db'}"
    try:
        print(f"load before: {_load()}")
        reuse = keep is not None and _filled(url) == args.cases
        t0 = time.perf_counter()
        db.upgrade(url)
        if reuse:
            print(f"reusing the store kept in {keep} ({args.cases} cases)")
        else:
            if keep is not None and _filled(url):
                raise SystemExit(f"{keep} holds another store: remove it first")
            Filler(db.make_engine(url), args.cases, args.seed).fill()
        fill_s = time.perf_counter() - t0
        print(f"load after the {'upgrade' if reuse else 'fill'}: {_load()}")
        engine = db.make_engine(url)
        with engine.connect() as conn:
            counts = {
                tb: conn.execute(text(f"SELECT COUNT(*) FROM {tb}")).scalar_one()
                for tb in ("cases", "reports", "case_identities", "identities", "events")
            }
            if args.db == "postgres":
                size = conn.execute(
                    text("SELECT pg_database_size(current_database())")
                ).scalar_one()
            else:
                size = os.path.getsize(workdir / "bench.db")
        what = "kept store upgraded" if reuse else "filled"
        print(
            f"## {args.db}: {args.cases} cases {what} in {fill_s:.0f} s, {size / 1e9:.1f} GB"
            f" ({counts})\n"
        )
        print("| query | median ms | p95 ms | rows |\n|---|---:|---:|---:|", flush=True)
        for label, med, p95, rows in measure(engine, args.cases, args.repeat, args.seed):
            print(f"| {label} | {med:.1f} | {p95:.1f} | {rows} |", flush=True)
        print(f"\nload at the end: {_load()}")
        engine.dispose()
    finally:
        if server is not None:
            if keep is None:
                server.destroy()
            else:
                server.stop()
        if args.workdir is None and keep is None:
            shutil.rmtree(workdir, ignore_errors=True)  # the 1M SQLite file is ~20 GB


if __name__ == "__main__":
    main()
