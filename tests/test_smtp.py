"""The SMTP handler without a socket: aiosmtpd's hook objects, a real spool folder."""

from __future__ import annotations

import asyncio
import contextlib
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
    SPILL_BYTES,
    TRY_LATER,
    Handler,
    Listener,
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


# --- DATA streamed to the spool by the real listener, over loopback -------------------------


class Client:
    """A bare SMTP client on asyncio streams: exact bytes out, replies in."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer

    @classmethod
    async def connect(cls, port: int) -> Client:
        client = cls(*await asyncio.open_connection("127.0.0.1", port))
        assert (await client.reply()).startswith(b"220")
        assert (await client.command(b"EHLO client.example.edu")).startswith(b"250")
        return client

    async def reply(self) -> bytes:
        while True:
            line = await asyncio.wait_for(self.reader.readline(), 30)
            assert line, "the server closed the connection"
            if line[3:4] != b"-":
                return line

    async def command(self, line: bytes) -> bytes:
        self.writer.write(line + b"\r\n")
        return await self.reply()

    async def start_data(self) -> None:
        assert (await self.command(b"MAIL FROM:<" + REPORTER.encode() + b">")).startswith(b"250")
        assert (await self.command(b"RCPT TO:<stopit@example.edu>")).startswith(b"250")
        assert (await self.command(b"DATA")).startswith(b"354")

    async def send(self, stuffed: bytes) -> bytes:
        """One whole transaction; ``stuffed`` is the DATA payload as sent, CRLF-ended."""
        await self.start_data()
        self.writer.write(stuffed + b".\r\n")
        return await self.reply()

    async def close(self) -> None:
        self.writer.close()
        with contextlib.suppress(ConnectionError):
            await self.writer.wait_closed()


async def serving(spool: Spool, max_size: int = 1_000_000) -> Listener:
    listener = Listener(
        Handler(spool, ["stopit@example.edu"]), "127.0.0.1", 0, max_message_size=max_size
    )
    await listener.start()
    return listener


def stored(spool: Spool, reply: bytes) -> bytes:
    assert reply.startswith(b"250 2.0.0 queued as "), reply
    spool_id = reply.decode().split()[-1]
    envelope, raw = decode_entry((spool.new / spool_id).read_bytes())
    assert envelope.mail_from == REPORTER and envelope.peer == "127.0.0.1"
    return raw


def test_streamed_message_is_unstuffed_exactly_and_the_session_goes_on(spool: Spool) -> None:
    """Held in memory (small) or streamed into a spool file (past SPILL_BYTES): same bytes."""
    message = report_message(11) + b".a line that starts with a dot\r\n..two\r\n"
    big = message + (b".QUJD" * 15 + b"\r\n") * (3 * SPILL_BYTES // 77)
    assert len(big) > 2 * SPILL_BYTES

    async def run() -> list[bytes]:
        listener = await serving(spool)
        client = await Client.connect(listener.bound[0][1])
        replies = [await client.send(m.replace(b"\r\n.", b"\r\n..")) for m in (message, big)]
        replies.append(await client.send(b"Subject: third\r\n\r\nbody\r\n"))
        await client.close()
        await listener.drain(5)
        return replies

    first, second, third = asyncio.run(run())
    assert stored(spool, first) == message
    assert stored(spool, second) == big
    assert stored(spool, third) == b"Subject: third\r\n\r\nbody\r\n"
    assert os.listdir(spool.tmp) == []


def test_too_big_is_552_as_it_arrives_and_leaves_nothing(spool: Spool) -> None:
    big = report_message(12) + (b"B" * 76 + b"\r\n") * 6_000  # ~470 KB: spilled, then over

    async def run() -> tuple[bytes, bytes]:
        listener = await serving(spool, max_size=3 * SPILL_BYTES)
        client = await Client.connect(listener.bound[0][1])
        refused = await client.send(big)
        after = await client.send(report_message(13))  # in step: the session goes on
        await client.close()
        await listener.drain(5)
        return refused, after

    refused, after = asyncio.run(run())
    assert refused.startswith(b"552 5.3.4 "), refused
    assert stored(spool, after) == report_message(13)
    assert os.listdir(spool.tmp) == [] and len(os.listdir(spool.new)) == 1


def test_an_overlong_line_is_refused_and_leaves_nothing(spool: Spool) -> None:
    async def run() -> bytes:
        listener = await serving(spool)
        client = await Client.connect(listener.bound[0][1])
        reply = await client.send(b"Subject: x\r\n\r\n" + b"L" * 1200 + b"\r\n")
        await client.close()
        await listener.drain(5)
        return reply

    assert asyncio.run(run()).startswith(b"500 ")
    assert os.listdir(spool.tmp) == [] and os.listdir(spool.new) == []


def test_connection_lost_mid_data_leaves_nothing(spool: Spool) -> None:
    async def run() -> list[str]:
        listener = await serving(spool)
        client = await Client.connect(listener.bound[0][1])
        await client.start_data()
        client.writer.write(report_message(14) + (b"P" * 998 + b"\r\n") * 200)  # > SPILL_BYTES
        await client.writer.drain()
        partial: list[str] = []
        for _ in range(1000):  # until the listener has spilled it into a spool file
            partial = os.listdir(spool.tmp)
            if partial:
                break
            await asyncio.sleep(0.01)
        await client.close()
        await asyncio.wait_for(listener.sessions.idle.wait(), 10)  # DATA over
        await listener.drain(5)
        return partial

    assert len(asyncio.run(run())) == 1
    assert os.listdir(spool.tmp) == [] and os.listdir(spool.new) == []


def test_disk_full_while_streaming_is_452_then_intake_goes_on(tmp_path: Path) -> None:
    """The spool filesystem fills up in the middle of a message."""
    line = b"F" * 76 + b"\r\n"
    big = report_message(15) + line * 3_000  # ~240 KB on a 64 KB filesystem

    async def run(spool: Spool) -> tuple[bytes, bytes]:
        listener = await serving(spool)
        client = await Client.connect(listener.bound[0][1])
        with capture_logs() as logs:
            full = await client.send(big)
        after = await client.send(report_message(16))
        await client.close()
        await listener.drain(5)
        assert [e["errno"] for e in logs if e["event"] == "spool_write_failed"] == [28]
        return full, after

    with small_tmpfs(tmp_path / "small", "64k") as mount:
        spool = Spool(mount / "spool")
        spool.create()
        full, after = asyncio.run(run(spool))
        assert full.startswith(b"452 4.3.1 "), full
        assert os.listdir(spool.tmp) == []
        assert stored(spool, after) == report_message(16)
