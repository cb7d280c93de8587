"""Every built-in template, rendered with a fixed context, against its reviewed text in
tests/outbound/rendered/ (regenerate with STOPITD_RENDER_GOLDENS=1 and review the diff)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest

from stopitd.outbound.clients import MailClient
from stopitd.outbound.render import Templates

GOLDEN = Path(__file__).parent / "rendered"
COMMON: dict[str, Any] = {
    "tag": "[stopit #123]",
    "case_id": 123,
    "organisation": "Example University",
    "report_address": "stopit@example.edu",
    "emergency_text": "If you are in danger now, call campus security on +1 555 0100 or 911.",
}
CASES: dict[str, tuple[str, dict[str, Any]]] = {
    "ack": (
        "ack.txt.j2",
        {"report_subject": "Fwd: you again", "originals_found": 1, "client": "generic"},
    ),
    **{
        f"resend-{c.value}": (
            "resend.txt.j2",
            {"report_subject": "FW: you again", "originals_found": 0, "client": c.value},
        )
        for c in MailClient
    },
    "stop": (
        "stop.txt.j2",
        {
            "policy_text": "the acceptable use policy for e-mail",
            "behaviour": "sending threatening messages",
            "message_date": "2026-11-23",
            "sender": "mallory@freemail.example",
        },
    ),
    "provider-abuse": (
        "provider-abuse.txt.j2",
        {
            "policy_text": "the acceptable use policy for e-mail",
            "behaviour": "sending threatening messages",
            "message_date": "2026-11-23",
            "sender": "mallory@freemail.example",
            "relay_ip": "198.51.100.25",
            "origin_ip": "203.0.113.77",
            "mode": "handoff",
            "from_authenticated": False,
            "trace_headers": "Received: from [203.0.113.77] by smtp.freemail.example\n"
            "    for <recipient redacted>; Mon, 23 Nov 2026 21:14:05 +0100",
        },
    ),
    "route": (
        "route.txt.j2",
        {
            "office": "security",
            "office_description": "IT security",
            "subject": "you again",
            "status": "new",
            "created": "2026-11-24 09:02 UTC",
            "source": {"relay_ip": "198.51.100.25", "origin_ip": "", "mode": "handoff"},
            "report_count": 2,
            "reporter_count": 2,
            "originals": [
                {
                    "from": "mallory@freemail.example",
                    "date": "2026-11-23 20:14 UTC",
                    "grade": "full-message",
                    "from_authenticated": True,
                    "confidence": "high",
                }
            ],
            "evidence": [{"filename": "report-01J.eml", "sha256": "ab" * 32, "size": 2059}],
        },
    ),
}


@pytest.mark.parametrize("name", sorted(CASES))
def test_rendered_text_is_the_reviewed_one(name: str) -> None:
    template, context = CASES[name]
    subject, body = Templates().render(template, COMMON | context)
    text = f"Subject: {subject}\n\n{body}"
    path = GOLDEN / f"{name}.txt"
    if os.environ.get("STOPITD_RENDER_GOLDENS") == "1":
        path.write_text(text)
    assert path.is_file(), f"{path} is missing: run with STOPITD_RENDER_GOLDENS=1 and review it"
    assert text == path.read_text()
    assert all(len(line) <= 998 for line in text.splitlines())  # RFC 5322
    if template.startswith(("ack", "resend")):  # fixed text: lines no client has to wrap
        assert all(len(line) <= 78 for line in body.splitlines())


def test_admin_override_wins_and_strict_names(tmp_path: Path) -> None:
    (tmp_path / "ack.txt.j2").write_text("Subject: {{ tag }} thanks\n\nThank you.\n")
    subject, body = Templates(tmp_path).render("ack.txt.j2", COMMON)
    assert (subject, body) == ("[stopit #123] thanks", "Thank you.\n")
    # the others still come from the built-ins
    assert Templates(tmp_path).exists("stop.txt.j2")
    (tmp_path / "stop.txt.j2").write_text("Subject: x\n\n{{ reporter }}\n")
    from stopitd.outbound.render import TemplateError

    with pytest.raises(TemplateError, match="'reporter' is undefined"):
        Templates(tmp_path).render("stop.txt.j2", COMMON)
    (tmp_path / "route.txt.j2").write_text("no subject line\n")
    with pytest.raises(TemplateError, match=r"must start with 'Subject: \.\.\.'"):
        Templates(tmp_path).render("route.txt.j2", COMMON)


def test_subject_is_one_clean_line() -> None:
    from stopitd.outbound.render import clean_subject

    assert clean_subject(" Fwd:\r\n Bcc: x@example.org\x00 hi ") == "Fwd: Bcc: x@example.org hi"
    assert len(clean_subject("x" * 500)) == 200
