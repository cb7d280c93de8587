"""Deciding whether a stamp is kept before authres reads its results gives the same stamp.

``authres._stamp(results=False)`` skips the authres library for stamps whose authserv-id
is a plain dot-atom; the kept/ignored decision must then be the one the full reading
would make: same authserv-id, same error.
"""

from __future__ import annotations

from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st

from stopitd.analysis.authres import _library_reads_ours, _read_stamp, _results_header, _stamp
from stopitd.analysis.headers import parse_fields, split_message
from stopitd.analysis.resinfo import ResinfoError, parse_results_header, read_authserv_id

ROOT = Path(__file__).resolve().parents[2]
_KEYS = ("authentication-results", "arc-authentication-results")


def _fixture_stamps() -> list[tuple[str, str]]:
    out = []
    for path in sorted((ROOT / "fixtures").glob("**/*.eml")):
        block, _ = split_message(path.read_bytes())
        out += [(f.key, f.value) for f in parse_fields(block) if f.key in _KEYS]
    return out


def _same_decision(key: str, value: str) -> None:
    quick = _read_stamp(key, value, quick=True)
    full = _read_stamp(key, value, quick=False)
    assert (quick.authserv_id, quick.error) == (full.authserv_id, full.error), value
    assert not full.partial


def test_fixture_stamps_decide_the_same() -> None:
    stamps = _fixture_stamps()
    assert len(stamps) >= 10
    for key, value in stamps:
        _same_decision(key, value)


ids = st.sampled_from(
    ["mx.google.com", "MX.Example.ORG", "spf.protection.outlook.com", "a-b_c.d", "x", ""]
)
results = st.sampled_from(
    [
        "spf=pass smtp.mailfrom=a@example.org",
        "dkim=pass (2048-bit key) header.d=example.org header.i=@example.org",
        "dmarc=pass (p=NONE sp=NONE dis=NONE) header.from=example.org",
        "dmarc=pass(p=none) header.from=x",
        'dkim=fail reason="bad sig" header.b="abc"',
        "arc=none",
        "none",
        "iprev=pass policy.iprev=192.0.2.1 (mail.example.org)",
        "spf = pass (comment; with semicolon) smtp.mailfrom = x@y",
        "auth=pass smtp.auth=user",
        "",
        "(unclosed",
    ]
)
versions = st.sampled_from(["", " 1", " 2", "\t1"])
headers = st.builds(
    lambda i, v, rs: f"{i}{v}; " + "; ".join(rs), ids, versions, st.lists(results, max_size=4)
)


@settings(max_examples=400, deadline=None)
@given(headers, st.booleans(), st.sampled_from(["i=1; ", "i = 2;", "i=x; ", ""]))
def test_generated_stamps_decide_the_same(value: str, arc: bool, instance: str) -> None:
    if arc:
        _same_decision("arc-authentication-results", instance + value)
    else:
        _same_decision("authentication-results", value)


def test_plain_id_stamp_is_partial_until_kept() -> None:
    from stopitd.analysis.headers import header_field

    f = header_field("Authentication-Results", b"", "mx.example.org; spf=pass smtp.mailfrom=a@b")
    assert _stamp(f, results=False).partial
    assert not _stamp(f, results=True).partial


_NO_ID_PIECES = st.sampled_from(
    ["spf=pass", "dkim=pass", "x=y", " 1", "1", " ", "\t", ";", "; ", "(c)", "(a (b))", "(",
     ")", "none", "NONE", "nonexistent=pass", "i=1", "a", ".", "smtp.mailfrom=a@b",
     "header.d=x", "reason=r", "=", "\u00a0", "action=none"]
)


@settings(max_examples=3000, deadline=None)
@given(st.lists(_NO_ID_PIECES, max_size=14).map("".join))
def test_stamps_without_authserv_id_are_ours_whatever_authres_reads(value: str) -> None:
    try:
        authserv_id, instance = read_authserv_id(value)
    except ResinfoError:
        return
    if _library_reads_ours(value, authserv_id, instance):
        assert _results_header(value, arc=False) == parse_results_header(value)


def test_microsoft_stamp_is_decided_without_authres() -> None:
    value = "spf=pass (sender IP is 192.0.2.1) smtp.mailfrom=a.example; dkim=none (no sig)"
    assert _read_stamp("authentication-results", value, quick=True).partial
