"""Whole messages -> hops and verdict, against reviewed golden files (``*.hops.json``).

Each golden holds one or more cases: a trust policy and what the analysis must give under
it. Regenerate after a reviewed change with ``python -m tests.analysis.test_hops_golden``
(new fixtures get the policies in ``NEW_FIXTURE_POLICIES``, or the empty policy).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import pytest

from stopitd.analysis import analyze
from stopitd.analysis.model import Envelope, to_jsonable
from stopitd.analysis.policy import Policy, TrustPolicy

ROOT = Path(__file__).resolve().parents[2]
FIXTURES = ROOT / "fixtures" / "received"
# Finding codes this part of the analysis produces (others belong to other parts).
HOP_CODES = {
    "hop-count-absurd", "received-unparseable", "handoff-not-public", "claimed-bogon",
    "helo-ip-mismatch", "by-rdns-mismatch", "date-future", "date-order",
}
NEW_FIXTURE_POLICIES: dict[str, list[dict[str, Any]]] = {
    "gmail-thunderbird-to-gmail": [{}, {"providers": ["google"]}],
    "gmail-webmail-to-postfix": [{}, {"trusted_networks": ["193.60.0.0/16"],
                                      "providers": ["google"]}],
    "outlook-consumer-to-postfix": [{}, {"providers": ["microsoft"]}],
    "exchange-onprem-internal": [{}, {"trusted_networks": ["10.1.0.0/16"]}],
    "exim-university-submission": [{}, {"trusted_networks": ["193.60.0.0/16"],
                                        "msa_networks": ["193.60.10.0/24"]}],
    "yahoo-webmail-to-gmail": [{}, {"providers": ["google", "yahoo"]}],
    "icloud-to-gmail": [{}, {"providers": ["google", "apple"]}],
}


def _policy(d: dict[str, Any]) -> Policy:
    return Policy(trust=TrustPolicy(**{k: tuple(v) for k, v in d.items()}))


def run_case(raw: bytes, policy: dict[str, Any]) -> dict[str, Any]:
    analysis = analyze(raw, Envelope(), _policy(policy), as_original=True)
    (original,) = analysis.originals
    hops = []
    for hop in to_jsonable(original.hops):
        hop.pop("raw")
        hops.append(hop)
    return {
        "policy": policy,
        "hops": hops,
        "source": to_jsonable(original.source),
        "findings": [to_jsonable(f) for f in original.findings if f.code in HOP_CODES],
    }


def _fixtures() -> list[Path]:
    return sorted(FIXTURES.glob("*.eml"))


@pytest.mark.parametrize("eml", _fixtures(), ids=lambda p: p.stem)
def test_message_gives_golden_hops_and_verdict(eml: Path) -> None:
    golden_path = eml.with_suffix(".hops.json")
    assert golden_path.exists(), "no golden: run python -m tests.analysis.test_hops_golden"
    golden = json.loads(golden_path.read_text(encoding="utf-8"))
    raw = eml.read_bytes()
    for case in golden["cases"]:
        assert run_case(raw, case["policy"]) == case


@pytest.mark.parametrize("eml", _fixtures(), ids=lambda p: p.stem)
def test_fixture_is_a_crlf_message(eml: Path) -> None:
    raw = eml.read_bytes()
    assert b"\r\n" in raw and b"\n" not in raw.replace(b"\r\n", b"")


def test_fixtures_cover_the_main_senders() -> None:
    names = {p.stem for p in _fixtures()}
    assert len(names) >= 10
    for word in ("gmail", "outlook", "exchange", "exim", "yahoo", "icloud", "fetchmail",
                 "postfix", "sendmail", "sendgrid"):
        assert any(word in n for n in names), word


def regenerate() -> None:
    for eml in _fixtures():
        golden_path = eml.with_suffix(".hops.json")
        if golden_path.exists():
            policies = [c["policy"] for c in json.loads(golden_path.read_text())["cases"]]
        else:
            policies = NEW_FIXTURE_POLICIES.get(eml.stem, [{}])
        cases = [run_case(eml.read_bytes(), p) for p in policies]
        golden_path.write_text(json.dumps({"cases": cases}, indent=1) + "\n", encoding="utf-8")
        print(f"wrote {golden_path.relative_to(ROOT)}", file=sys.stderr)


if __name__ == "__main__":
    regenerate()
