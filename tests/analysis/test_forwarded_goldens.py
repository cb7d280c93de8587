"""Every fixture under fixtures/forwarded/ against its .forwarded.json golden."""

from __future__ import annotations

import json

import pytest

from tests import goldens

KIND = goldens.KINDS[".forwarded.json"]
FIXTURES = goldens.fixtures_for(KIND)


def test_there_are_fixtures_for_every_shape() -> None:
    names = {p.name for p in FIXTURES}
    assert len(names) >= 20
    assert (goldens.FIXTURES / "README.md").read_text().count("### ") >= len(names)
    for name in names:
        assert f"`{name}`" in (goldens.FIXTURES / "README.md").read_text(), name


@pytest.mark.parametrize("fixture", FIXTURES, ids=[p.name for p in FIXTURES])
def test_fixture_is_crlf(fixture: goldens.Path) -> None:
    raw = fixture.read_bytes()
    assert raw.count(b"\n") == raw.count(b"\r\n"), f"{fixture.name} has bare LF line ends"


@pytest.mark.parametrize("fixture", FIXTURES, ids=[p.name for p in FIXTURES])
def test_matches_golden(fixture: goldens.Path) -> None:
    path = goldens.golden_path(fixture, KIND)
    assert path.exists(), f"no golden for {fixture.name}: run `make goldens` and review it"
    expected = json.loads(path.read_text(encoding="utf-8"))
    actual = json.loads(goldens.render(KIND.make(fixture.read_bytes())))
    assert actual == expected, f"{fixture.name} differs from {path.name}; see `make goldens`"
