"""A case is summarised by the harassing message: for a forward of a forward, the
innermost original, not the friend's forward around it."""

from __future__ import annotations

from pathlib import Path

from stopitd.store import db
from stopitd.store.schema import Case
from tests.store.reports import ROOT, report, save

FORWARDED = ROOT / "fixtures" / "forwarded"


def _case(url: str, case_id: int) -> Case:
    engine = db.make_engine(url)
    with db.make_sessionmaker(engine)() as session:
        case = session.get(Case, case_id)
        assert case is not None
        session.expunge(case)
    engine.dispose()
    return case


def test_forward_of_a_forward_takes_the_innermost_original(store_url: str) -> None:
    # a friend (sam.helper, via 192.0.2.30) forwarded the troll's message to the reporter
    raw = (FORWARDED / "nested-forward-of-forward.eml").read_bytes()
    case = _case(store_url, save(store_url, "s-nested", raw))
    assert case.subject == "you will regret this"
    assert case.from_address == "troll.account77@gmail.com"
    assert case.relay_ip == "192.0.2.25"


def test_inline_forward_of_a_forward_takes_the_innermost_original(store_url: str) -> None:
    raw = (FORWARDED / "gmail-de-inline-nested.eml").read_bytes()
    case = _case(store_url, save(store_url, "s-inline-nested", raw))
    assert (case.subject, case.from_address) == ("Drohung", "troll.account77@gmail.com")


def test_two_separate_originals_take_the_first(store_url: str) -> None:
    raw = (FORWARDED / "thunderbird-two-attachments.eml").read_bytes()
    case = _case(store_url, save(store_url, "s-two", raw))
    assert case.subject == "you will regret this"


def test_a_plain_forward_is_unchanged(store_url: str, tmp_path: Path) -> None:
    case = _case(store_url, save(store_url, "s-plain", report(1)))
    assert (case.subject, case.from_address) == ("you know what you did", "k.harlow.1987@gmail.com")
