"""Threading, duplicates and related cases when reports are filed (both databases)."""

from __future__ import annotations

import email.policy
import re
from email.parser import BytesHeaderParser
from typing import Any

import pytest

from stopitd.store import db
from stopitd.store.cases import CaseFilter, list_cases, record_sent_message, show_case
from stopitd.store.intake import reply_ids
from tests.store.reports import analysis_of, reply, report, save


def _show(url: str, case_id: int) -> dict[str, Any]:
    engine = db.make_engine(url)
    with db.make_sessionmaker(engine)() as session:
        data = show_case(session, case_id)
    engine.dispose()
    assert data is not None
    return data


def _list(url: str, **flt: Any) -> list[dict[str, Any]]:
    engine = db.make_engine(url)
    with db.make_sessionmaker(engine)() as session:
        rows = list_cases(session, CaseFilter(**flt))
    engine.dispose()
    return rows


def test_same_original_from_three_reporters_is_one_case_with_three_reporters(
    store_url: str,
) -> None:
    ids = {
        save(store_url, f"s-{who}", report(7, reporter=f"{who}@example.edu"), f"{who}@example.edu")
        for who in ("ann", "bob", "cyd")
    }
    assert len(ids) == 1
    (case_id,) = ids
    case = _show(store_url, case_id)
    assert (case["report_count"], case["reporter_count"]) == (3, 3)
    assert [r["joined_by"] for r in case["reports"]] == ["new", "duplicate", "duplicate"]
    assert [e["kind"] for e in case["events"]] == ["created", "report_added", "report_added"]


def test_the_same_reporter_twice_counts_one_reporter(store_url: str) -> None:
    a = save(store_url, "s-1", report(3))
    b = save(store_url, "s-2", report(3))
    assert a == b
    case = _show(store_url, a)
    assert (case["report_count"], case["reporter_count"]) == (2, 1)


def test_outlook_regenerated_message_id_joins_by_digest(store_url: str) -> None:
    a = save(store_url, "s-1", report(4))
    b = save(
        store_url,
        "s-2",
        report(
            4, reporter="lee@example.edu", original_mid="AM0PR10MB3012.eurprd10.prod.outlook.com"
        ),
        "lee@example.edu",
    )
    assert a == b
    # the same sender, same date, different text: a different message, a different case
    c = save(store_url, "s-3", report(4, original_mid="new@mail.gmail.com", text="Another one."))
    assert c != a


def test_reply_with_the_case_tag_joins_the_case_and_reopens_it(store_url: str) -> None:
    case_id = save(store_url, "s-1", report(1))
    other = save(store_url, "s-2", report(2))
    engine = db.make_engine(store_url)
    with db.make_sessionmaker(engine)() as session, session.begin():
        from stopitd.store.schema import Case

        case = session.get(Case, case_id)
        assert case is not None
        case.status = "closed"
    engine.dispose()
    joined = save(store_url, "s-3", reply(f"[stopit #{case_id}]"))
    assert joined == case_id != other
    case = _show(store_url, case_id)
    assert case["status"] == "open"
    assert case["reports"][-1]["joined_by"] == "thread"
    assert [e["kind"] for e in case["events"]][-2:] == ["report_added", "reopened"]


def test_reply_to_a_message_we_sent_joins_by_in_reply_to(store_url: str) -> None:
    case_id = save(store_url, "s-1", report(1))
    save(store_url, "s-2", report(2))
    engine = db.make_engine(store_url)
    with db.make_sessionmaker(engine)() as session, session.begin():
        record_sent_message(session, case_id, "<ack-77@stopit.example.edu>")
    engine.dispose()
    # no tag in the subject (the reporter's client dropped it): threading by References
    joined = save(
        store_url, "s-3", reply("Re: your report", in_reply_to="ack-77@stopit.example.edu")
    )
    assert joined == case_id


def test_a_tag_of_a_missing_case_opens_a_new_case(store_url: str) -> None:
    case_id = save(store_url, "s-1", reply("[stopit #4242]"))
    assert case_id != 4242
    assert _show(store_url, case_id)["reports"][0]["joined_by"] == "new"


def test_cases_sharing_a_sender_are_related_but_not_by_private_relays(store_url: str) -> None:
    a = save(store_url, "s-1", report(1, sender="pest@harass.example"))
    b = save(store_url, "s-2", report(2, sender="pest@harass.example"))
    c = save(store_url, "s-3", report(3, sender="other@elsewhere.example"))
    rows = {r["id"]: r for r in _list(store_url)}
    assert rows[a]["related"] == [b] and rows[b]["related"] == [a]
    # all three came through the same (documentation-range, non-global) relay: no link
    assert rows[c]["related"] == []


def test_cases_sharing_a_public_relay_ip_are_related_and_filterable(store_url: str) -> None:
    a = save(store_url, "s-1", report(1, sender="x1@a.example", relay="185.220.101.7"))
    b = save(store_url, "s-2", report(2, sender="x2@b.example", relay="185.220.101.200"))
    c = save(store_url, "s-3", report(3, sender="x3@c.example", relay="2a02:418:6a04:178::7"))
    rows = {r["id"]: r for r in _list(store_url)}
    assert rows[a]["related"] == [b]  # same /24
    assert [r["id"] for r in _list(store_url, ip="185.220.101.7")] == [a]
    assert [r["id"] for r in _list(store_url, ip="185.220.101.0/24")] == [b, a]
    assert [r["id"] for r in _list(store_url, ip="2a02:418::/32")] == [c]
    assert [r["id"] for r in _list(store_url, domain="b.example")] == [b]
    assert [r["id"] for r in _list(store_url, text="X3@C")] == [c]


def test_ip_and_domain_filters_walk_newest_cases_when_the_identity_is_common(
    store_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    from stopitd.store import queries

    a = save(store_url, "s-1", report(1, sender="x1@a.example", relay="185.220.101.7"))
    save(store_url, "s-2", report(2, sender="x2@b.example", relay="45.1.0.1"))
    c = save(store_url, "s-3", report(3, sender="x3@a.example", relay="185.220.101.9"))
    monkeypatch.setattr(queries, "DENSE_IDENTITIES", 1)  # as for a CIDR with many addresses
    assert [r["id"] for r in _list(store_url, ip="185.220.101.0/24")] == [c, a]
    assert [r["id"] for r in _list(store_url, domain="a.example", limit=1)] == [c]
    assert _list(store_url, ip="10.0.0.0/8") == []


def _reply_ids_of_whole_raw(raw: bytes) -> list[str]:
    """What `reply_ids` read before it normalised only a prefix: the reference."""
    head = raw.replace(b"\r\n", b"\n").split(b"\n\n", 1)[0][:262144]
    msg = BytesHeaderParser(policy=email.policy.compat32).parsebytes(head)
    return [
        i
        for n in ("In-Reply-To", "References")
        for v in msg.get_all(n) or []
        for i in re.findall(r"<([^<>\s]+)>", str(v))
    ]


@pytest.mark.parametrize("pad", [0, 100, 262_000, 262_100, 262_200, 300_000, 600_000])
@pytest.mark.parametrize("eol", [b"\r\n", b"\n"])
def test_reply_ids_reads_the_same_header_prefix_without_copying_the_message(
    pad: int, eol: bytes
) -> None:
    """Headers padded so that References falls before, across and after the 256 KiB cut,
    CRLF or LF, and a big body: the same ids as normalising the whole message."""
    no_reply = analysis_of(report(1))
    assert not no_reply.report.in_reply_to
    filler = b"".join(b"X-Pad: " + b"p" * 70 + eol for _ in range(pad // 79 + 1)) if pad else b""
    raw = (
        b"From: a@example.org"
        + eol
        + filler
        + b"References: <one@example.org> <two@example.org>"
        + eol
        + b"Subject: s"
        + eol
        + eol
        + (b"body line" + eol) * 200_000
    )
    expected = _reply_ids_of_whole_raw(raw)
    assert reply_ids(no_reply, raw) == expected
    if pad <= 100:
        assert expected == ["one@example.org", "two@example.org"]
    elif pad >= 300_000:  # beyond the 256 KiB of header block that are read
        assert expected == []
