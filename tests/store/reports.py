"""Report variants built from the real Thunderbird fixture (CRLF kept), for store tests.

Each knob changes what a second reporter, a second harasser or a reply would change in
the bytes: the outer reporter and Message-ID, the original's Message-ID, sender, relay
IP and text, the subject (a case tag), In-Reply-To.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from stopitd.analysis import analyze
from stopitd.analysis.model import Analysis, Envelope
from stopitd.analysis.policy import Policy
from stopitd.store import db
from stopitd.store.cases import save_report

ROOT = Path(__file__).resolve().parents[2]
FIXTURE = (ROOT / "fixtures" / "reports" / "thunderbird-attached.eml").read_bytes()
REPLY = (ROOT / "fixtures" / "reports" / "thunderbird-reply.eml").read_bytes()
ORIGINAL_MID = b"CAF8wq2u1N5b0X+7mVq9pYdRk3hT=ZpLw4s8Xq@mail.gmail.com"
REPORT_MID = b"5f1c2b7e-9a0d-4c1e-8f3b-2d6a7c9e1f40@example.edu"


def report(
    n: int = 1,
    *,
    reporter: str = "jdoe@example.edu",
    sender: str = "k.harlow.1987@gmail.com",
    relay: str = "198.51.100.25",
    original_mid: str | None = None,
    text: str | None = None,
    subject: str | None = None,
    in_reply_to: str | None = None,
) -> bytes:
    """The fixture with the n-th distinct original (unless original_mid/text say otherwise)."""
    raw = FIXTURE
    user = reporter.split("@")[0].encode()
    raw = raw.replace(
        b"Return-Path: <jdoe@example.edu>", b"Return-Path: <" + reporter.encode() + b">"
    )
    raw = raw.replace(
        b"From: Jane Doe <jdoe@example.edu>", b"From: " + user + b" <" + reporter.encode() + b">"
    )
    raw = raw.replace(REPORT_MID, f"r{n}-{user.decode()}-{original_mid or n}@example.edu".encode())
    raw = raw.replace(
        ORIGINAL_MID, (original_mid or f"CAF8wq2u{n:06d}x=ZpLw4s8Xq@mail.gmail.com").encode()
    )
    raw = raw.replace(b"k.harlow.1987@gmail.com", sender.encode())
    raw = raw.replace(b"198.51.100.25", relay.encode())
    body = text if text is not None else f"I saw you at the library again today (#{n})."
    raw = raw.replace(b"I saw you at the library again today.", body.encode())
    if subject is not None:
        raw = raw.replace(b"Subject: Fwd: you know what you did", b"Subject: " + subject.encode())
    if in_reply_to is not None:
        raw = raw.replace(
            b"MIME-Version: 1.0\r\nUser-Agent",
            f"In-Reply-To: <{in_reply_to}>\r\nReferences: <{in_reply_to}>\r\n".encode()
            + b"MIME-Version: 1.0\r\nUser-Agent",
            1,
        )
    return raw


def reply(case_tag: str, *, in_reply_to: str = "", reporter: str = "jdoe@example.edu") -> bytes:
    """A reporter's plain reply (no forwarded original) to our acknowledgement."""
    raw = REPLY.replace(b"[stopit #1]", case_tag.encode())
    raw = raw.replace(b"jdoe@example.edu", reporter.encode())
    return raw.replace(
        b"ack-1@stopit.example.edu", in_reply_to.encode() or b"unknown@nowhere.invalid"
    )


def envelope(reporter: str = "jdoe@example.edu") -> Envelope:
    return Envelope(
        mail_from=reporter,
        rcpt_tos=("stopit@localhost",),
        peer="127.0.0.1",
        helo="smtp.example.edu",
        received_at=datetime(2026, 11, 24, 3, 2, 12, tzinfo=UTC),
    )


def analysis_of(raw: bytes) -> Analysis:
    return analyze(raw, Envelope(), Policy())


def save(url: str, spool_id: str, raw: bytes, reporter: str = "jdoe@example.edu") -> int:
    engine = db.make_engine(url)
    try:
        with db.make_sessionmaker(engine)() as session, session.begin():
            return save_report(
                session,
                spool_id=spool_id,
                envelope=envelope(reporter),
                raw=raw,
                analysis=analysis_of(raw),
            )
    finally:
        engine.dispose()
