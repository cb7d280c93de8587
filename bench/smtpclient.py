"""A small asyncio SMTP client that times DATA-end -> reply per message.

smtp-source reports no latency, so the p99 comes from here: N sessions at once, each
sending its share of messages over one connection; the clock starts just before the final
``.`` CRLF is written and stops when the whole reply has been read.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import time
from dataclasses import dataclass, field

REPLY_TIMEOUT = 120.0


@dataclass(slots=True)
class SendResult:
    latencies: list[float] = field(default_factory=list)  # seconds, one per 250
    refused: list[str] = field(default_factory=list)  # first line of every non-250 reply
    seconds: float = 0.0  # wall time of the whole run

    @property
    def accepted(self) -> int:
        return len(self.latencies)

    def percentile(self, p: float) -> float:
        """The p-th percentile (nearest rank) of the latencies, in seconds."""
        if not self.latencies:
            return float("nan")
        ordered = sorted(self.latencies)
        rank = max(1, math.ceil(p / 100 * len(ordered)))
        return ordered[min(rank, len(ordered)) - 1]


def dot_stuffed(message: bytes) -> bytes:
    """The DATA payload: CRLF line ends, leading dots doubled, ending in CRLF."""
    lines = message.replace(b"\r\n", b"\n").split(b"\n")
    if lines and lines[-1] == b"":
        lines.pop()
    body = b"\r\n".join(b"." + line if line.startswith(b".") else line for line in lines)
    return body + b"\r\n"


async def _reply(reader: asyncio.StreamReader) -> bytes:
    """One whole (possibly multi-line) reply; returns its first line."""
    first = b""
    while True:
        line = await asyncio.wait_for(reader.readline(), REPLY_TIMEOUT)
        if not line:
            raise ConnectionError("server closed the connection")
        first = first or line
        if line[3:4] != b"-":
            return first


async def _command(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, cmd: bytes) -> bytes:
    writer.write(cmd + b"\r\n")
    await writer.drain()
    return await _reply(reader)


async def _session(
    port: int,
    payload: bytes,
    count: int,
    rcpt: str,
    result: SendResult,
    start: asyncio.Event,
    pace: tuple[float, float] | None,
) -> None:
    """One connection, COUNT messages; PACE (offset, interval) spaces them in time."""
    await start.wait()
    reader, writer = await asyncio.open_connection("127.0.0.1", port, limit=1 << 20)
    loop = asyncio.get_running_loop()
    t_start = loop.time()
    try:
        await _reply(reader)
        await _command(reader, writer, b"EHLO bench.localhost")
        for k in range(count):
            if pace is not None:
                delay = t_start + pace[0] + k * pace[1] - loop.time()
                if delay > 0:
                    await asyncio.sleep(delay)
            reply = await _command(reader, writer, b"MAIL FROM:<bench@localhost>")
            if reply.startswith(b"250"):
                reply = await _command(reader, writer, f"RCPT TO:<{rcpt}>".encode())
            if reply.startswith(b"250"):
                reply = await _command(reader, writer, b"DATA")
            if not reply.startswith(b"354"):
                result.refused.append(reply.decode(errors="replace").strip())
                await _command(reader, writer, b"RSET")
                continue
            writer.write(payload)
            await writer.drain()
            t0 = time.perf_counter()
            writer.write(b".\r\n")
            await writer.drain()
            reply = await _reply(reader)
            elapsed = time.perf_counter() - t0
            if reply.startswith(b"250"):
                result.latencies.append(elapsed)
            else:
                result.refused.append(reply.decode(errors="replace").strip())
        await _command(reader, writer, b"QUIT")
    finally:
        writer.close()
        with contextlib.suppress(ConnectionError, OSError):
            await writer.wait_closed()


async def _send(
    port: int, message: bytes, sessions: int, per_session: int, rcpt: str, rate: float | None
) -> SendResult:
    payload = dot_stuffed(message)
    result = SendResult()
    start = asyncio.Event()
    interval = sessions / rate if rate else 0.0
    tasks = [
        asyncio.create_task(
            _session(
                port,
                payload,
                per_session,
                rcpt,
                result,
                start,
                (interval * i / sessions, interval) if rate else None,
            )
        )
        for i in range(sessions)
    ]
    t0 = time.perf_counter()
    start.set()
    outcomes = await asyncio.gather(*tasks, return_exceptions=True)
    result.seconds = time.perf_counter() - t0
    for outcome in outcomes:
        if isinstance(outcome, BaseException):
            result.refused.append(f"session failed: {type(outcome).__name__}: {outcome}")
    return result


def send(
    port: int,
    message: bytes,
    *,
    sessions: int,
    per_session: int,
    rcpt: str = "stopit@localhost",
    rate: float | None = None,
    timeout: float = 600,
) -> SendResult:
    """SESSIONS connections at once to 127.0.0.1:PORT, each sending PER_SESSION messages.

    Without RATE every session sends its next message as soon as the last is answered
    (a closed loop: the server is saturated, and latency is mostly queueing). With RATE
    (messages/s over all sessions) the sends are spread evenly in time (an open loop).
    """

    async def bounded() -> SendResult:
        return await asyncio.wait_for(
            _send(port, message, sessions, per_session, rcpt, rate), timeout
        )

    return asyncio.run(bounded())
