"""The SMTP DATA stream as it arrives: end of data, dot-unstuffing, size and line limits.

aiosmtpd reads DATA one line at a time into a list and joins it at the end, so a 25 MB
message costs several copies of itself in memory and one coroutine round per line.
``DataStream`` reads the same socket stream in large pieces and yields the message bytes
(unstuffed, whole lines only) for the caller to write to the spool at once.

Semantics are aiosmtpd's (RFC 5321 §4.1.1.4, §4.5.2): lines end with CRLF only, so a bare
LF or CR is data and ``\\n.\\r\\n``, ``\\r\\n.\\n`` and ``\\r.\\r\\n`` never end a message (no
SMTP smuggling); data ends at the first line that is exactly ``.``; a leading dot of a line
is removed; the size counts the bytes as sent (dot-stuffed, line ends included, the final
``.`` line excluded); a line longer than ``max_line`` bytes (CRLF included) is refused.
After a limit is hit the rest of the data is still read (and dropped) up to its end, so
the reply comes in step with the client.

Nothing after the end-of-data line is consumed: the stream only ever reads up to a found
``CRLF . CRLF``, or up to a point where that marker cannot have started yet (what
``StreamReader.readuntil`` reports with ``LimitOverrunError.consumed``), so pipelined
commands stay in the reader for aiosmtpd.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from enum import StrEnum

END = b"\r\n.\r\n"  # end of data: CRLF (ending the last line) "." CRLF
_DOT_LINE = len(END) - 2  # the bytes of the "." CRLF line itself


class DataState(StrEnum):
    OK = "ok"
    TOO_BIG = "too_big"  # more than max_size bytes
    LINE_TOO_LONG = "line_too_long"  # a line over max_line bytes


class DataStream:
    """One message's DATA from ``reader`` (positioned just after the ``DATA`` CRLF)."""

    def __init__(self, reader: asyncio.StreamReader, *, max_size: int | None, max_line: int):
        self._reader = reader
        self._max_size = max_size or None
        self._max_line = max_line
        self.state = DataState.OK
        self.size = 0  # bytes of data as sent (stuffed), the final "." line excluded
        self._carry = b""  # an unfinished line, held until its CRLF arrives

    async def chunks(self) -> AsyncIterator[bytes]:
        """The message bytes, unstuffed, in order; ends after the end-of-data line.

        Nothing is yielded once a limit is hit (``state`` says which), but the data is
        still read to its end. Raises what the reader raises (the connection was lost).
        """
        data, ended = await self._start()
        while True:
            out = self._take(data, ended)
            if out:
                yield out
            if ended:
                return
            data, ended = await self._next()

    async def _start(self) -> tuple[bytes, bool]:
        """The first bytes, read exactly until the end marker cannot start before them.

        The DATA command's own CRLF counts as the end of the line before a first ``.``
        line (an empty message), which ``readuntil`` cannot see; so read the few bytes
        that decide it one by one (never past a possible end).
        """
        seen = b"\r\n"  # the DATA command's line end
        while True:
            pending = _partial_end(seen)
            if pending == 0:
                return seen[2:], False
            seen += await self._reader.readexactly(len(END) - pending)
            at = seen.find(END)
            if at != -1:  # it can only end exactly here
                return seen[2 : at + 2], True

    async def _next(self) -> tuple[bytes, bool]:
        try:
            data = await self._reader.readuntil(END)
        except asyncio.LimitOverrunError as e:
            # no end marker starts in the first e.consumed bytes: take them
            return await self._reader.readexactly(e.consumed), False
        return data[:-_DOT_LINE], True  # keep the CRLF that ends the last line

    def _take(self, data: bytes, ended: bool) -> bytes:
        """Count ``data``, check the limits, and return its whole lines unstuffed."""
        self.size += len(data)
        if self.state is not DataState.OK:
            return b""
        if self._max_size is not None and self.size > self._max_size:
            return self._refuse(DataState.TOO_BIG)
        buf = self._carry + data if self._carry else data
        if ended:  # ends with CRLF (or is empty)
            lines, self._carry = buf, b""
        else:
            cut = buf.rfind(b"\r\n") + 2
            if cut == 1:  # no line end yet
                lines, self._carry = b"", buf
            else:
                lines, self._carry = buf[:cut], buf[cut:]
            if len(self._carry) > self._max_line:  # too long already, whatever follows
                return self._refuse(DataState.LINE_TOO_LONG)
        if not lines:
            return b""
        if len(lines) > self._max_line - 2 and _longest_line(lines) + 2 > self._max_line:
            return self._refuse(DataState.LINE_TOO_LONG)
        return _unstuff(lines)

    def _refuse(self, state: DataState) -> bytes:
        self.state = state
        self._carry = b""
        return b""


def _partial_end(seen: bytes) -> int:
    """How many bytes at the end of ``seen`` are a proper beginning of ``END``."""
    for n in range(len(END) - 1, 0, -1):
        if seen.endswith(END[:n]):
            return n
    return 0


def _longest_line(lines: bytes) -> int:
    """Longest line in ``lines`` (whole CRLF-ended lines), CRLF not counted."""
    return max(map(len, lines.split(b"\r\n")))


def _unstuff(lines: bytes) -> bytes:
    """RFC 5321 §4.5.2: drop one leading dot of every line (``lines`` starts a line)."""
    out = lines.replace(b"\r\n.", b"\r\n")
    return out[1:] if out.startswith(b".") else out
