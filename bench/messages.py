"""The messages the benchmarks send and parse, built from the fixtures."""

from __future__ import annotations

import base64
import os
from pathlib import Path

from bench.common import FIXTURES, BenchError

# The load for intake and drain: a report shaped like those in fixtures/ (a Thunderbird
# forward with the original attached, a few hops), its note padded to the wanted size.
REPORT_FIXTURE = FIXTURES / "reports" / "thunderbird-attached.eml"
FILLER = b"I am forwarding this again because it keeps happening and I am scared." + b"\r\n"


def fixture_files() -> list[Path]:
    """Every fixtures/**/*.eml, sorted (the tree grows as work lands)."""
    files = sorted(FIXTURES.rglob("*.eml"))
    if not files:
        raise BenchError(f"no fixtures/**/*.eml under {FIXTURES}")
    return files


def report_of_size(size: int) -> bytes:
    """The report fixture with filler lines in its own text note, about SIZE bytes long."""
    raw = REPORT_FIXTURE.read_bytes()
    part = raw.find(b"Content-Type: text/plain")
    body = raw.find(b"\r\n\r\n", part) + 4 if part >= 0 else -1
    if part < 0 or body < 4:
        raise BenchError(f"{REPORT_FIXTURE}: expected a text/plain note before the original")
    missing = max(0, size - len(raw))
    filler = FILLER * (missing // len(FILLER))
    return raw[:body] + filler + raw[body:]


def lf_copy(message: bytes, path: Path) -> Path:
    """MESSAGE with LF line ends in PATH: smtp-source -F adds CRLF to every line it reads."""
    path.write_bytes(message.replace(b"\r\n", b"\n"))
    return path


def report_with_attachment(size: int) -> bytes:
    """A report near SIZE bytes: the report fixture plus one large base64 attachment.

    The shape of a maximum-size report (a screenshot or video attached beside the
    original); lines stay under 1000 bytes, as SMTP requires.
    """
    raw = REPORT_FIXTURE.read_bytes()
    boundary = _boundary(raw)
    closing = b"--" + boundary + b"--"
    end = raw.rfind(closing)
    if end < 0:
        raise BenchError(f"{REPORT_FIXTURE}: no closing MIME boundary")
    head = (
        b"--" + boundary + b"\r\n"
        b'Content-Type: application/octet-stream; name="screen-recording.bin"\r\n'
        b'Content-Disposition: attachment; filename="screen-recording.bin"\r\n'
        b"Content-Transfer-Encoding: base64\r\n\r\n"
    )
    room = size - len(raw) - len(head) - 2
    encoded_len = room // 78 * 76  # 76 characters + CRLF per line
    data = base64.b64encode(os.urandom(encoded_len // 4 * 3))
    lines = b"\r\n".join(data[i : i + 76] for i in range(0, len(data), 76))
    return raw[:end] + head + lines + b"\r\n" + raw[end:]


def _boundary(raw: bytes) -> bytes:
    marker = b'boundary="'
    at = raw.find(marker)
    if at < 0:
        raise BenchError(f"{REPORT_FIXTURE}: no MIME boundary")
    start = at + len(marker)
    return raw[start : raw.index(b'"', start)]
