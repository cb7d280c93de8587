"""The fuzzer's regressions and a short seeded slice of it (``make fuzz`` runs 100 000)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from stopitd.analysis.policy import Policy
from tests import fuzz

REGRESSIONS = sorted((fuzz.FIXTURES / "fuzz").glob("*.eml"))


def test_there_are_regression_fixtures() -> None:
    assert len(REGRESSIONS) >= 3


@pytest.mark.parametrize("path", REGRESSIONS, ids=lambda p: p.stem)
@pytest.mark.parametrize("as_original", [False, True], ids=["report", "original"])
def test_fuzz_regression_is_analysed_without_an_exception(path: Path, as_original: bool) -> None:
    """Each input once crashed the analysis; now it is a report (maybe with findings)."""
    data = json.loads(fuzz.run_analysis(path.read_bytes(), Policy(), as_original=as_original))
    assert data["schema_version"] == 1
    assert isinstance(data["originals"], list)


def test_mutations_are_reproducible_from_seed_and_case_number() -> None:
    corpus = fuzz.load_corpus()
    assert fuzz.make_case(3, 41, corpus) == fuzz.make_case(3, 41, corpus)
    assert fuzz.make_case(3, 41, corpus)[1] != fuzz.make_case(3, 42, corpus)[1]


@pytest.mark.timeout(600)
def test_seeded_slice_has_no_unexpected_exceptions() -> None:
    summary = fuzz.fuzz(300, seed=20261125)
    assert summary.cases == 300
    details = "\n".join(
        f"case {n} ({name}, {names}):\n{tb}" for n, name, names, tb in summary.crashes
    )
    assert not summary.crashes, details
    # every mutator was exercised
    assert set(summary.by_mutator) == set(fuzz.MUTATORS)
