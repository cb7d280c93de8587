"""The DATA stream reader on a real asyncio.StreamReader, fed in arbitrary pieces.

The reference is aiosmtpd's own line model (CRLF lines until a line that is exactly
``.``, one leading dot dropped per line), written here line by line, so the chunked
reader is checked against an independent, obviously-correct parse.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

from hypothesis import given
from hypothesis import strategies as st

from stopitd.smtp_data import DataState, DataStream

LIMIT = 1001  # aiosmtpd's line_length_limit, also its StreamReader limit
AFTER = b"QUIT\r\n"  # a pipelined command that must stay in the reader


@dataclass(frozen=True, slots=True)
class Parsed:
    body: bytes
    rest: bytes
    size: int
    longest: int  # longest line, CRLF included


def reference(stream: bytes) -> Parsed:
    lines: list[bytes] = []
    pos = 0
    while True:
        end = stream.index(b"\r\n", pos) + 2
        line = stream[pos:end]
        pos = end
        if line == b".\r\n":
            break
        lines.append(line)
    body = b"".join(line[1:] if line.startswith(b".") else line for line in lines)
    return Parsed(
        body,
        stream[pos:],
        sum(map(len, lines)),
        max(map(len, lines), default=0),
    )


async def _read(
    stream: bytes, cuts: list[int], max_size: int | None, max_line: int
) -> tuple[bytes, DataState, int, bytes]:
    reader = asyncio.StreamReader(limit=LIMIT)

    async def feed() -> None:
        last = 0
        for cut in sorted(set(cuts)):
            reader.feed_data(stream[last:cut])
            last = cut
            await asyncio.sleep(0)  # let the reader run between pieces
        reader.feed_data(stream[last:])
        reader.feed_eof()

    feeder = asyncio.create_task(feed())
    data = DataStream(reader, max_size=max_size, max_line=max_line)
    body = b"".join([chunk async for chunk in data.chunks()])
    await feeder
    return body, data.state, data.size, await reader.read()


def read(
    stream: bytes, cuts: list[int] | None = None, max_size: int | None = None, max_line: int = LIMIT
) -> tuple[bytes, DataState, int, bytes]:
    return asyncio.run(_read(stream, cuts or [], max_size, max_line))


# Bytes that make the end marker, dot-stuffing and bare line ends interesting.
_piece = st.sampled_from([b".", b"\r", b"\n", b"\r\n", b"x", b"..", b"\r\n.", b"\n.\r\n", b"ab"])
payloads = st.lists(_piece, max_size=60).map(b"".join)


@given(payloads, st.lists(st.integers(min_value=0, max_value=400), max_size=12))
def test_matches_the_line_by_line_parse_whatever_the_pieces(
    payload: bytes, cuts: list[int]
) -> None:
    stream = payload + b"\r\n.\r\n" + AFTER
    expected = reference(stream)
    body, state, size, rest = read(stream, cuts)
    assert state is DataState.OK
    assert body == expected.body
    assert size == expected.size
    assert rest == expected.rest  # nothing read past the end of data


@given(payloads, st.lists(st.integers(min_value=0, max_value=400), max_size=8))
def test_limits_hit_refuse_but_read_to_the_end(payload: bytes, cuts: list[int]) -> None:
    stream = payload + b"\r\n.\r\n" + AFTER
    expected = reference(stream)
    body, state, _, rest = read(stream, cuts, max_size=20, max_line=12)
    over = expected.size > 20 or expected.longest > 12
    assert (state is not DataState.OK) == over
    if over:  # what came before the limit was hit (the caller drops the entry)
        assert expected.body.startswith(body)
    else:
        assert body == expected.body
    assert rest == expected.rest


def test_an_empty_message_and_a_blank_line_message() -> None:
    assert read(b".\r\n" + AFTER) == (b"", DataState.OK, 0, AFTER)
    assert read(b"\r\n.\r\n" + AFTER) == (b"\r\n", DataState.OK, 2, AFTER)


def test_bare_line_end_lookalikes_are_data() -> None:
    """SMTP smuggling: only CRLF "." CRLF ends DATA."""
    for fake in (b"\n.\r\n", b"\r\n.\n", b"\n.\n", b"\r.\r\n"):
        stream = b"Subject: first\r\n\r\nfirst" + fake + b"MAIL FROM:<x@y>\r\n.\r\n" + AFTER
        body, state, _, rest = read(stream)
        assert state is DataState.OK and rest == AFTER
        assert body == reference(stream).body
        assert b"MAIL FROM" in body


def test_a_large_message_in_network_sized_pieces() -> None:
    line = b"QUJD" * 19 + b"\r\n"  # base64-like 78-byte lines
    message = b"Subject: big\r\n\r\n" + b".leading dot\r\n" + line * 40_000
    stream = message + b".\r\n" + AFTER
    cuts = [*range(0, len(stream), 65_536), len(stream) - 4, len(stream) - 7]
    body, state, size, rest = read(stream, cuts)
    assert state is DataState.OK and rest == AFTER
    assert body == message.replace(b"\r\n.leading", b"\r\nleading")
    assert size == len(message)


def test_size_limit_is_the_bytes_as_sent() -> None:
    message = b"x" * 98 + b"\r\n"  # 100 bytes
    assert read(message + b".\r\n", max_size=100)[1] is DataState.OK
    assert read(message + b".\r\n", max_size=99)[1] is DataState.TOO_BIG


def test_line_limit_counts_the_crlf() -> None:
    ok = b"y" * (LIMIT - 2) + b"\r\n"
    assert read(ok + b".\r\n")[0] == ok
    body, state, _, rest = read(b"y" + ok + b".\r\n" + AFTER)
    assert (body, state, rest) == (b"", DataState.LINE_TOO_LONG, AFTER)


def test_an_unfinished_line_is_never_held_beyond_the_line_limit() -> None:
    """A client sending one endless line: the stream refuses it, keeps reading, holds nothing."""
    endless = b"z" * 500_000
    stream = endless + b"\r\n.\r\n" + AFTER
    body, state, size, rest = read(stream, list(range(0, len(stream), 4096)))
    assert (body, state, rest) == (b"", DataState.LINE_TOO_LONG, AFTER)
    assert size == len(endless) + 2
