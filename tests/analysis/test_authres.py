"""Recorded authentication results (pure): which stamps are kept, which are claims, why.

Golden files: every ``fixtures/auth/*.eml`` runs through ``analyze`` (no DNS) with the
trust policy stored in its ``*.auth.json``, and must give that file's ``auth`` (recorded,
untrusted, crosscheck) and ``auth-*`` findings. Regenerate for review with
``python -m tests.analysis.test_authres`` (keeps each file's policy; new fixtures get an
empty policy to edit).
"""

from __future__ import annotations

import contextlib
import json
import sys
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from stopitd.analysis import analyze, conclude
from stopitd.analysis.authres import Recorded, read_recorded
from stopitd.analysis.conclusion import conclude as conclude_original
from stopitd.analysis.dmarc import DmarcRecord, aligned, evaluate, org_domain
from stopitd.analysis.headers import parse_fields, split_message
from stopitd.analysis.model import (
    AuthVerdict,
    DkimSignature,
    Envelope,
    Evidence,
    Severity,
    SpfResult,
    to_jsonable,
)
from stopitd.analysis.policy import Policy, TrustPolicy
from stopitd.analysis.received import parse_received
from stopitd.analysis.resinfo import ResinfoError, parse_results_header
from stopitd.analysis.trust import Walk
from tests.auth_fixtures import no_system_resolver

__all__ = ["no_system_resolver"]  # autouse: nothing here may reach the system resolver

ROOT = Path(__file__).resolve().parents[2]
FIXTURES = ROOT / "fixtures" / "auth"
EMLS = sorted(FIXTURES.glob("*.eml"))


def fixture(name: str) -> bytes:
    return (FIXTURES / name).read_bytes()


def read(raw: bytes, policy: TrustPolicy, boundary: int | None = 0, ip: str = "") -> Recorded:
    """read_recorded with an explicit walk: the hop at ``boundary`` is the hand-off."""
    block, _ = split_message(raw)
    fields = parse_fields(block)
    hops = [parse_received(f.value) for f in fields if f.key == "received"]
    if boundary is not None and ip:
        hops[boundary] = replace(hops[boundary], ip=ip)
    return read_recorded(fields, Walk(tuple(hops), boundary), policy)


def methods(recorded: Recorded) -> dict[str, str]:
    return {r.method: r.result for r in recorded.summary.recorded}


def codes(recorded: Recorded) -> set[str]:
    return {f.code for f in recorded.findings}


# --- goldens ------------------------------------------------------------------------------


def _policy(data: dict[str, Any]) -> TrustPolicy:
    return TrustPolicy(**{k: tuple(v) for k, v in data.items()})


def _golden_view(eml: Path, policy: TrustPolicy) -> dict[str, Any]:
    analysis = analyze(eml.read_bytes(), Envelope(), Policy(trust=policy), as_original=True)
    (original,) = analysis.originals
    auth = to_jsonable(original.auth)
    return {
        "auth": {k: auth[k] for k in ("recorded", "untrusted", "crosscheck")},
        "findings": [to_jsonable(f) for f in original.findings if f.code.startswith("auth-")],
    }


@pytest.mark.parametrize("eml", EMLS, ids=lambda p: p.stem)
def test_golden(eml: Path) -> None:
    golden_path = eml.with_suffix(".auth.json")
    assert golden_path.exists(), (
        f"{golden_path.name} missing: python -m tests.analysis.test_authres"
    )
    golden = json.loads(golden_path.read_text())
    got = _golden_view(eml, _policy(golden["policy"]))
    assert got == {"auth": golden["auth"], "findings": golden["findings"]}


def regenerate() -> None:
    for eml in EMLS:
        path = eml.with_suffix(".auth.json")
        policy = json.loads(path.read_text())["policy"] if path.exists() else {}
        data = {"policy": policy, **_golden_view(eml, _policy(policy))}
        path.write_text(json.dumps(data, indent=2, ensure_ascii=False) + "\n")
        print(f"wrote {path.relative_to(ROOT)}", file=sys.stderr)


def test_every_fixture_has_crlf_line_ends() -> None:
    assert EMLS
    for eml in EMLS:
        raw = eml.read_bytes()
        assert raw.count(b"\n") == raw.count(b"\r\n"), eml.name


# --- trusted id and position --------------------------------------------------------------

OURS = TrustPolicy(trusted_authserv_ids=("mx.example.edu",))


def test_stamp_planted_below_the_boundary_is_ignored_and_reported() -> None:
    rec = read(fixture("postfix-planted.eml"), OURS)
    # Our MX's stamp, above its Received header, is kept ...
    assert methods(rec) == {"dkim": "none", "spf": "softfail", "iprev": "pass"}
    assert {r.authserv_id for r in rec.summary.recorded} == {"mx.example.edu"}
    # ... the sender's copies claiming our id are not, nor a stamp by another ADMD.
    claims = {(u.header, u.authserv_id): u.why for u in rec.summary.untrusted}
    assert "below the trust boundary" in claims[("Authentication-Results", "mx.example.edu")]
    assert "below the trust boundary" in claims[("Received-SPF", "mx.example.edu")]
    assert claims[("Authentication-Results", "spamfilter.sender.example")] == (
        "authserv-id spamfilter.sender.example is not trusted"
    )
    warning = next(f for f in rec.findings if f.code == "auth-results-below-boundary")
    assert warning.severity is Severity.WARNING and "mx.example.edu" in warning.text


def test_planted_dmarc_pass_does_not_authenticate_from() -> None:
    raw = fixture("postfix-planted.eml")
    policy = Policy(trust=OURS)
    analysis = conclude(analyze(raw, Envelope(), policy, as_original=True), Evidence.none(), policy)
    (original,) = analysis.originals
    assert original.fields.from_ is not None
    assert original.fields.from_.address == "registrar@example.edu"
    assert original.source.from_authenticated is None  # no DNS asked, no trusted proof
    assert "example.edu" not in original.source.responsible_domains


def test_same_stamp_with_an_untrusted_id_is_a_claim() -> None:
    rec = read(fixture("postfix-planted.eml"), TrustPolicy())
    assert rec.summary.recorded == ()
    assert all("not trusted" in u.why for u in rec.summary.untrusted)


def test_no_received_header_means_nothing_is_trusted() -> None:
    raw = b"Authentication-Results: mx.example.edu; dmarc=pass header.from=x.example\r\n\r\n"
    rec = read(raw, OURS, boundary=None)
    assert rec.summary.recorded == ()
    (claim,) = rec.summary.untrusted
    assert claim.why.startswith("no trust boundary")


def test_trusted_dmarc_pass_authenticates_from_without_dns() -> None:
    raw = (
        b"Authentication-Results: mx.example.edu; dmarc=pass header.from=sender.example\r\n"
        b"Received: from mail.sender.example (mail.sender.example [192.0.2.10])\r\n"
        b"\tby mx.example.edu (Postfix) with ESMTPS id 4Xk9Qw1TzVz9sWq;\r\n"
        b"\tWed, 25 Nov 2026 09:12:03 +0000 (UTC)\r\n"
        b"From: Alice <alice@sender.example>\r\n\r\nhi\r\n"
    )
    policy = Policy(trust=OURS)
    (original,) = conclude(
        analyze(raw, Envelope(), policy, as_original=True), Evidence.none(), policy
    ).originals
    assert original.source.from_authenticated is True
    assert "sender.example" in original.source.responsible_domains
    assert any(r.code == "from-authenticated" for r in original.source.reasons)


# --- provider stamps ----------------------------------------------------------------------


def test_microsoft_stamp_without_authserv_id_is_kept_by_the_profile() -> None:
    raw = fixture("m365-delivered.eml")
    edge = 3  # the hop by DS2PEPF00003445.mail.protection.outlook.com
    rec = read(raw, TrustPolicy(providers=("microsoft",)), boundary=edge, ip="192.0.2.10")
    by_method = {(r.header, r.method): r for r in rec.summary.recorded}
    spf = by_method[("Authentication-Results", "spf")]
    assert (spf.authserv_id, spf.result, spf.comment) == ("", "pass", "sender IP is 192.0.2.10")
    assert by_method[("Authentication-Results", "dmarc")].properties == (
        ("action", "none"),
        ("header.from", "sender.example"),
    )
    assert by_method[("Authentication-Results", "compauth")].reason == "100"
    assert by_method[("Received-SPF", "spf")].authserv_id == "protection.outlook.com"
    # Forefront sits below every Received (Exchange moves it) and is still believed.
    forefront = by_method[("X-Forefront-Antispam-Report", "forefront")]
    assert forefront.result == "nspm"
    assert ("CIP", "192.0.2.10") in forefront.properties
    assert rec.summary.crosscheck.recorded_ips == ("192.0.2.10",)
    assert rec.summary.crosscheck.agrees is True
    assert rec.summary.untrusted == ()


def test_microsoft_stamps_need_the_profile() -> None:
    rec = read(fixture("m365-delivered.eml"), TrustPolicy(), boundary=3, ip="192.0.2.10")
    assert rec.summary.recorded == ()
    whys = {u.header: u.why for u in rec.summary.untrusted}
    assert whys["Authentication-Results"] == "no authserv-id"
    assert "microsoft provider profile is not enabled" in whys["X-Forefront-Antispam-Report"]


def test_forefront_is_not_believed_when_microsoft_did_not_take_the_hand_off() -> None:
    raw = fixture("postfix-planted.eml").replace(
        b"Message-ID:", b"X-Forefront-Antispam-Report: CIP:192.0.2.99;SFV:SKN;\r\nMessage-ID:"
    )
    rec = read(raw, TrustPolicy(providers=("microsoft",)), boundary=0)
    assert "forefront" not in methods(rec)
    assert any(u.header == "X-Forefront-Antispam-Report" for u in rec.summary.untrusted)


def test_gmail_arc_results_are_kept_and_stamps_under_its_received_are_not() -> None:
    rec = read(fixture("gmail-delivered.eml"), TrustPolicy(providers=("google",)), boundary=1)
    kept = rec.summary.recorded
    assert {r.header for r in kept} == {"ARC-Authentication-Results"}
    assert all(("arc.i", "1") in r.properties for r in kept)
    assert methods(rec) == {"dkim": "pass", "spf": "pass", "dmarc": "pass"}
    spf = next(r for r in kept if r.method == "spf")
    assert "designates 192.0.2.10 as permitted sender" in spf.comment
    # Gmail's own stamps under its Received: info only; the sender's forgery: a warning.
    warnings = [f for f in rec.findings if f.code == "auth-results-below-boundary"]
    assert len(warnings) == 1
    assert len(rec.summary.untrusted) == 3
    assert rec.summary.crosscheck.recorded_ips == ("192.0.2.10",)


def test_yahoo_stamp_with_glued_comment_is_read_by_our_tokenizer() -> None:
    rec = read(fixture("yahoo-delivered.eml"), TrustPolicy(providers=("yahoo",)), boundary=0)
    assert methods(rec) == {"dkim": "pass", "spf": "pass", "dmarc": "pass"}
    dmarc = next(r for r in rec.summary.recorded if r.method == "dmarc")
    assert dmarc.authserv_id == "atlas212.free.mail.bf1.yahoo.com"
    assert dmarc.comment == "p=REJECT sp=REJECT"


# --- the cross-check ----------------------------------------------------------------------


def test_crosscheck_mismatch_names_both_addresses() -> None:
    rec = read(fixture("crosscheck-mismatch.eml"), OURS)
    cross = rec.summary.crosscheck
    assert (cross.recorded_ips, cross.handoff_ip, cross.agrees) == (
        ("192.0.2.10",),
        "10.20.0.7",
        False,
    )
    finding = next(f for f in rec.findings if f.code == "auth-crosscheck-mismatch")
    assert "192.0.2.10" in finding.text and "10.20.0.7" in finding.text


def test_crosscheck_normalises_ipv6_and_mapped_addresses() -> None:
    raw = (
        b"Authentication-Results: mx.example.edu; iprev=pass policy.iprev=::ffff:192.0.2.10;\r\n"
        b" arc=pass smtp.remote-ip=2001:DB8:0:0::1\r\n"
        b"Received: from a.example (a.example [192.0.2.10]) by mx.example.edu; "
        b"Wed, 25 Nov 2026 09:12:03 +0000\r\n\r\n"
    )
    cross = read(raw, OURS).summary.crosscheck
    assert cross.recorded_ips == ("192.0.2.10", "2001:db8::1")
    assert cross.agrees is False


# --- the tokenizer and never crashing -----------------------------------------------------


def test_tokenizer_reads_arc_prefix_versions_quotes_and_nested_comments() -> None:
    parsed = parse_results_header(
        'i=2; mx.microsoft.com 1; spf=pass (a (nested) comment) smtp.mailfrom="a b@x.example";'
        ' dkim = fail reason="bad sig" header.d=x.example; none',
        arc=True,
    )
    assert (parsed.instance, parsed.authserv_id, parsed.version) == (2, "mx.microsoft.com", "1")
    spf, dkim = parsed.results
    assert spf.comment == "a (nested) comment"
    assert spf.properties == (("smtp.mailfrom", "a b@x.example"),)
    assert (dkim.method, dkim.result, dkim.reason) == ("dkim", "fail", "bad sig")


def test_unreadable_stamp_is_a_claim_not_a_crash() -> None:
    raw = (
        b"Authentication-Results: mx.example.edu; ===; (unclosed\r\n"
        b"Received: from a.example (a.example [192.0.2.10]) by mx.example.edu; "
        b"Wed, 25 Nov 2026 09:12:03 +0000\r\n\r\n"
    )
    rec = read(raw, OURS)
    (claim,) = rec.summary.untrusted
    assert claim.why.startswith("could not be read")


@settings(deadline=None, max_examples=300)
@given(
    st.text(max_size=300),
    st.sampled_from(
        [
            "Authentication-Results",
            "ARC-Authentication-Results",
            "Received-SPF",
            "X-Forefront-Antispam-Report",
        ]
    ),
)
def test_any_header_value_is_read_or_reported(value: str, name: str) -> None:
    value = " ".join(value.splitlines())
    raw = (
        f"{name}: {value}\r\n"
        "Received: from a.example (a.example [192.0.2.10]) by mx.example.edu; "
        "Wed, 25 Nov 2026 09:12:03 +0000\r\n\r\n"
    ).encode("utf-8", "surrogatepass")
    rec = read(raw, TrustPolicy(trusted_authserv_ids=("mx.example.edu",), providers=("microsoft",)))
    assert len(rec.summary.untrusted) <= 1
    assert all(u.why and u.header == name for u in rec.summary.untrusted)
    with contextlib.suppress(ResinfoError):  # anything else escaping is a bug
        parse_results_header(value)


# --- DMARC alignment (pure) ---------------------------------------------------------------


def test_org_domain_comes_from_the_bundled_public_suffix_list() -> None:
    assert org_domain("mail.news.example.co.uk") == "example.co.uk"
    assert org_domain("a.b.example.edu") == "example.edu"
    assert aligned("news.example.co.uk", "example.co.uk", strict=False)
    assert not aligned("news.example.co.uk", "example.co.uk", strict=True)
    assert not aligned("example.co.uk", "other.co.uk", strict=False)


def test_dmarc_strict_alignment_rejects_a_subdomain_signer() -> None:
    record = DmarcRecord("example.org", "v=DMARC1; p=quarantine; adkim=s; aspf=s")
    sig = DkimSignature("mail.example.org", "s1", "rsa-sha256", AuthVerdict.PASS)
    spf = SpfResult(AuthVerdict.PASS, domain="bounces.example.org", ip="192.0.2.1")
    result = evaluate(record, [sig], spf)
    assert (result.result, result.policy, result.dkim_aligned, result.spf_aligned) == (
        AuthVerdict.FAIL,
        "quarantine",
        False,
        False,
    )
    relaxed = evaluate(DmarcRecord("example.org", "v=DMARC1; p=none"), [sig], spf)
    assert relaxed.result is AuthVerdict.PASS and relaxed.dkim_aligned and relaxed.spf_aligned


def test_conclusion_without_from_is_not_authenticated() -> None:
    raw = b"Received: from a (a [192.0.2.1]) by b; Wed, 25 Nov 2026 09:12:03 +0000\r\n\r\nx\r\n"
    policy = Policy()
    (original,) = analyze(raw, Envelope(), policy, as_original=True).originals
    from stopitd.analysis.model import OriginalEvidence

    concluded = conclude_original(original, OriginalEvidence(), policy.trust)
    assert concluded.source.from_authenticated is False
    assert concluded.auth.verified is True


if __name__ == "__main__":
    regenerate()
