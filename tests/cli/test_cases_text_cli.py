"""`stopitd cases list --text` on reports filed the normal way (the text index is filled
by the store's own writes), with encoded non-ASCII subjects and punctuation."""

from __future__ import annotations

import json
from email.header import Header
from pathlib import Path

from tests.cli.test_cases_cli import _config, ok
from tests.store.reports import report, save


def _with_subject(raw: bytes, subject: str) -> bytes:
    """The report with its original's Subject replaced (RFC 2047 when not ASCII)."""
    encoded = Header(subject, "utf-8").encode() if not subject.isascii() else subject
    line = b"\r\nSubject: you know what you did\r\n"
    assert raw.count(line) == 1
    return raw.replace(line, b"\r\nSubject: " + encoded.encode() + b"\r\n")


def test_list_text_finds_subjects_and_senders(tmp_path: Path, store_url: str) -> None:
    a = save(store_url, "t-a", _with_subject(report(1, sender="user12345@mail.example"), "hi"))
    b = save(store_url, "t-b", _with_subject(report(2, sender="user123456@mail.example"), "hi"))
    c = save(store_url, "t-c", _with_subject(report(3), "Ты знаешь, что ты сделал"))
    d = save(store_url, "t-d", _with_subject(report(4), "Ärger im Büro (100% ernst)"))
    cfg = _config(tmp_path, store_url)

    def ids(term: str) -> list[int]:
        out = ok("cases", "list", "--text", term, "--json", "--config", cfg)
        return [r["id"] for r in json.loads(out)]

    assert ids("user12345@") == [a]
    assert ids("USER12345") == [b, a]
    assert ids("знаешь") == [c]
    assert ids("büro") == [d]
    assert ids("100%") == [d]
    assert ids("0% e") == [d]
    assert ids("k.harlow") == [d, c]  # the From address of the unchanged reports
    assert ids("no such text") == []
    table = ok("cases", "list", "--text", "знаешь", "--config", cfg)
    assert "Ты знаешь, что ты сделал" in table
