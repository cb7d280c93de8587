"""`--ip`/`--domain` answer the same whichever way they read the store: case ids from the
identity index (few cases) or a newest-first walk probing each case (many cases)."""

from __future__ import annotations

from typing import Any

import pytest

from stopitd.store import db, queries
from stopitd.store.queries import CaseFilter, list_cases
from tests.store.reports import report, save


def _ids(url: str, **flt: Any) -> list[int]:
    engine = db.make_engine(url)
    with db.make_sessionmaker(engine)() as session:
        out = [c["id"] for c in list_cases(session, CaseFilter(**flt))]
    engine.dispose()
    return out


def test_a_repeat_sender_is_found_by_walking_the_newest_cases(
    store_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    a = save(store_url, "p-1", report(1, sender="pest@a.example", relay="185.220.101.7"))
    b = save(store_url, "p-2", report(2, sender="other@b.example", relay="45.1.0.1"))
    c = save(store_url, "p-3", report(3, sender="pest@a.example", relay="185.220.101.7"))
    filters: list[dict[str, Any]] = [
        {"ip": "185.220.101.7"},
        {"ip": "185.220.101.0/24"},
        {"domain": "a.example"},
        {"domain": "a.example", "limit": 1},
        {"ip": "45.1.0.1"},
        {"ip": "10.0.0.0/8"},
    ]
    expected = [[c, a], [c, a], [c, a], [c], [b], []]
    assert [_ids(store_url, **f) for f in filters] == expected  # few cases: the id list
    monkeypatch.setattr(queries, "DENSE_CASES", 1)  # as for a sender in 100 000 cases
    assert [_ids(store_url, **f) for f in filters] == expected
