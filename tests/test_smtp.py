"""The SMTP handler without a socket: aiosmtpd's hook objects, a real spool folder."""

from __future__ import annotations

import asyncio
import os
import shutil
from pathlib import Path

import pytest
from aiosmtpd.smtp import Envelope as SmtpEnvelope
from aiosmtpd.smtp import Session
from structlog.testing import capture_logs

from stopitd.smtp import (
    DISK_FULL,
    NO_SUCH_USER,
    OK_RCPT,
    TRY_LATER,
    Handler,
)
from stopitd.spool import Spool, decode_entry
from tests.daemon_helpers import report_message, small_tmpfs

REPORTER = "victim@example.edu"


@pytest.fixture
def spool(tmp_path: Path) -> Spool:
    s = Spool(tmp_path / "spool")
    s.create()
    return s


def session() -> Session:
    s = Session(loop=None)  # type: ignore[arg-type]  # aiosmtpd only stores it
    s.peer = ("192.0.2.7", 40123)
    s.host_name = "laptop.example.edu"
    return s


def envelope(raw: bytes) -> SmtpEnvelope:
    env = SmtpEnvelope()
    env.mail_from = REPORTER
    env.rcpt_tos = ["StopIt@Example.EDU"]
    env.original_content = raw
    return env


def handler(spool: Spool, woken: list[str] | None = None) -> Handler:
    return Handler(
        spool,
        ["stopit@example.edu"],
        on_spooled=None if woken is None else woken.append,
    )


def test_rcpt_only_for_report_addresses_case_insensitive(spool: Spool) -> None:
    h = handler(spool)
    env = SmtpEnvelope()
    sess = session()
    assert asyncio.run(h.handle_RCPT(None, sess, env, "STOPIT@example.EDU", [])) == OK_RCPT  # type: ignore[arg-type]
    assert asyncio.run(h.handle_RCPT(None, sess, env, "<stopit@example.edu>", [])) == OK_RCPT  # type: ignore[arg-type]
    for other in ("stopit@example.edu.evil.example", "victim@example.edu", "stopit@localhost"):
        assert asyncio.run(h.handle_RCPT(None, sess, env, other, [])) == NO_SUCH_USER  # type: ignore[arg-type]
    assert NO_SUCH_USER.startswith("550 5.1.1 ")
    assert env.rcpt_tos == ["STOPIT@example.EDU", "<stopit@example.edu>"]


def test_data_spools_the_exact_bytes_and_envelope_before_250(spool: Spool) -> None:
    raw = report_message(7)
    woken: list[str] = []
    h = handler(spool, woken)
    reply = asyncio.run(h.handle_DATA(None, session(), envelope(raw)))  # type: ignore[arg-type]
    assert reply.startswith("250 2.0.0 queued as ")
    spool_id = reply.rsplit(" ", 1)[1]
    assert woken == [spool_id]
    env, stored = decode_entry((spool.new / spool_id).read_bytes())
    assert stored == raw
    assert env.mail_from == REPORTER
    assert env.rcpt_tos == ("StopIt@Example.EDU",)
    assert env.peer == "192.0.2.7"
    assert env.helo == "laptop.example.edu"
    assert env.received_at is not None


def test_null_sender_is_accepted_as_empty(spool: Spool) -> None:
    """Feedback loops and bounces come from MAIL FROM:<>."""
    env = envelope(report_message(10))
    env.mail_from = "<>"
    reply = asyncio.run(handler(spool).handle_DATA(None, session(), env))  # type: ignore[arg-type]
    spool_id = reply.rsplit(" ", 1)[1]
    stored, _ = decode_entry((spool.new / spool_id).read_bytes())
    assert stored.mail_from == ""


def test_spool_failure_is_451_and_leaves_nothing(spool: Spool) -> None:
    shutil.rmtree(spool.tmp)
    spool.tmp.write_text("not a folder")
    with capture_logs() as logs:
        reply = asyncio.run(handler(spool).handle_DATA(None, session(), envelope(b"x\r\n")))  # type: ignore[arg-type]
    assert reply == TRY_LATER and reply.startswith("451 4.3.0 ")
    assert os.listdir(spool.new) == []
    assert [e["event"] for e in logs] == ["spool_write_failed"]


def test_disk_full_is_452_and_intake_resumes_when_space_returns(tmp_path: Path) -> None:
    with small_tmpfs(tmp_path / "small", "64k") as mount:
        spool = Spool(mount / "spool")
        spool.create()
        h = handler(spool)
        big = report_message(9) + b"X" * 998 + b"\r\n"
        big = big * (80_000 // len(big) + 1)
        reply = asyncio.run(h.handle_DATA(None, session(), envelope(big)))  # type: ignore[arg-type]
        assert reply == DISK_FULL and reply.startswith("452 4.3.1 ")
        assert os.listdir(spool.tmp) == [] and os.listdir(spool.new) == []
        reply = asyncio.run(h.handle_DATA(None, session(), envelope(report_message(9))))  # type: ignore[arg-type]
        assert reply.startswith("250 2.0.0 queued as ")


def test_any_internal_error_is_451_without_a_traceback(spool: Spool) -> None:
    h = handler(spool)
    with capture_logs() as logs:
        reply = asyncio.run(h.handle_exception(KeyError("internal detail")))
    assert reply == TRY_LATER
    assert "Traceback" not in reply and "KeyError" not in reply
    assert logs[0]["event"] == "smtp_command_failed"


def test_info_logs_carry_no_addresses_or_content(spool: Spool) -> None:
    raw = report_message(8)
    h = handler(spool)
    with capture_logs() as logs:
        asyncio.run(h.handle_RCPT(None, session(), SmtpEnvelope(), "someone@else.example", []))  # type: ignore[arg-type]
        asyncio.run(h.handle_DATA(None, session(), envelope(raw)))  # type: ignore[arg-type]
    above_debug = [e for e in logs if e["log_level"] != "debug"]
    assert {e["event"] for e in above_debug} == {"recipient_refused", "message_spooled"}
    text = repr(above_debug)
    for secret in (REPORTER, "someone@else.example", "stopit@example.edu", "you again", "troll"):
        assert secret.lower() not in text.lower()
