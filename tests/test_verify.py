"""Verification at intake against a real DNS server on 127.0.0.1: DKIM, ARC, SPF, DMARC."""

from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import pytest

from stopitd import verify
from stopitd.analysis import analyze, conclude
from stopitd.analysis.model import AuthVerdict, Envelope, Evidence, Grade, Original
from stopitd.analysis.policy import Policy
from stopitd.config import DnsSettings
from tests.auth_fixtures import (
    OTHER_IP,
    SENDER_DOMAIN,
    SENDER_IP,
    Key,
    arc_seal,
    base_message,
    deliver,
    dkim_sign,
    dns_server,
    dns_settings,
    keys,
    no_system_resolver,
    perl_sign,
    publish_sender,
    submission_hop,
)
from tests.dnsserver import DnsTestServer

__all__ = ["dns_server", "keys", "no_system_resolver"]  # fixtures used here

POLICY = Policy()


def run(raw: bytes, settings: DnsSettings, verifier: verify.Verifier | None = None) -> Original:
    analysis = analyze(raw, Envelope(), POLICY, as_original=True)
    evidence = verify.verify_analysis(analysis, settings, verifier)
    (original,) = conclude(analysis, evidence, POLICY).originals
    return original


def signed_by_both(keys: dict[str, Key], **kw: str) -> bytes:
    return dkim_sign(dkim_sign(base_message(**kw), keys["rsa"], "rsa1"), keys["ed25519"], "ed1")


# --- DKIM per signature -----------------------------------------------------------------


def test_rsa_and_ed25519_signatures_pass_and_keep_the_key_record(
    dns_server: DnsTestServer, keys: dict[str, Key]
) -> None:
    publish_sender(dns_server, keys)
    original = run(deliver(signed_by_both(keys)), dns_settings(dns_server))
    sigs = {s.selector: s for s in original.auth.dkim}
    assert set(sigs) == {"rsa1", "ed1"}
    assert sigs["rsa1"].algorithm == "rsa-sha256"
    assert sigs["ed1"].algorithm == "ed25519-sha256"
    assert all(s.result is AuthVerdict.PASS and s.domain == SENDER_DOMAIN for s in sigs.values())
    # The evidence outlives a key rotation: the exact record used is kept.
    assert sigs["rsa1"].key_record == keys["rsa"].record
    assert len(keys["rsa"].record) > 255  # served as several TXT strings
    assert sigs["ed1"].key_record == keys["ed25519"].record
    assert original.auth.verified
    assert original.source.from_authenticated is True
    assert SENDER_DOMAIN in original.source.responsible_domains


def test_body_tampered_fails_each_signature(
    dns_server: DnsTestServer, keys: dict[str, Key]
) -> None:
    publish_sender(dns_server, keys)
    raw = deliver(signed_by_both(keys)).replace(b"Stop ignoring me.", b"Please ignore me.")
    original = run(raw, dns_settings(dns_server))
    assert [s.result for s in original.auth.dkim] == [AuthVerdict.FAIL, AuthVerdict.FAIL]
    assert all("body hash" in s.reason for s in original.auth.dkim)


def test_signed_header_tampered_fails(dns_server: DnsTestServer, keys: dict[str, Key]) -> None:
    publish_sender(dns_server, keys)
    raw = deliver(signed_by_both(keys)).replace(b"Subject: You again", b"Subject: Hello")
    original = run(raw, dns_settings(dns_server))
    assert [s.result for s in original.auth.dkim] == [AuthVerdict.FAIL, AuthVerdict.FAIL]
    assert all("header" in s.reason for s in original.auth.dkim)
    # SPF still passes and aligns, so DMARC passes on SPF alone.
    assert original.auth.dmarc is not None
    assert original.auth.dmarc.result is AuthVerdict.PASS
    assert (original.auth.dmarc.spf_aligned, original.auth.dmarc.dkim_aligned) == (True, False)


def test_missing_key_is_permerror_for_that_signature_only(
    dns_server: DnsTestServer, keys: dict[str, Key]
) -> None:
    publish_sender(dns_server, keys)
    dns_server.remove(f"ed1._domainkey.{SENDER_DOMAIN}")
    original = run(deliver(signed_by_both(keys)), dns_settings(dns_server))
    sigs = {s.selector: s for s in original.auth.dkim}
    assert sigs["ed1"].result is AuthVerdict.PERMERROR
    assert "no key record" in sigs["ed1"].reason
    assert sigs["ed1"].key_record == ""
    assert sigs["rsa1"].result is AuthVerdict.PASS


def test_broken_key_record_is_permerror(dns_server: DnsTestServer, keys: dict[str, Key]) -> None:
    publish_sender(dns_server, keys)
    dns_server.remove(f"rsa1._domainkey.{SENDER_DOMAIN}")
    dns_server.add(f"rsa1._domainkey.{SENDER_DOMAIN}", "TXT", "v=DKIM1; k=rsa; p=bm90IGEga2V5")
    original = run(
        deliver(dkim_sign(base_message(), keys["rsa"], "rsa1")), dns_settings(dns_server)
    )
    (sig,) = original.auth.dkim
    assert sig.result is AuthVerdict.PERMERROR
    assert sig.key_record == "v=DKIM1; k=rsa; p=bm90IGEga2V5"


def test_signature_by_another_domain_is_not_aligned(
    dns_server: DnsTestServer, keys: dict[str, Key]
) -> None:
    publish_sender(dns_server, keys)
    dns_server.add("rsa2._domainkey.mailer.example", "TXT", keys["rsa2"].record)
    msg = dkim_sign(base_message(), keys["rsa2"], "rsa2", domain="mailer.example")
    # Handed off from an IP the sender's SPF does not list.
    original = run(deliver(msg, ip=OTHER_IP), dns_settings(dns_server))
    (sig,) = original.auth.dkim
    assert (sig.domain, sig.result) == ("mailer.example", AuthVerdict.PASS)
    assert original.auth.spf is not None and original.auth.spf.result is AuthVerdict.FAIL
    dmarc = original.auth.dmarc
    assert dmarc is not None
    assert (dmarc.result, dmarc.policy, dmarc.dkim_aligned) == (AuthVerdict.FAIL, "reject", False)
    assert original.source.from_authenticated is False
    # The signer is a responsible party whatever else the source estimate names.
    assert "mailer.example" in original.source.responsible_domains
    assert "from-not-authenticated" in {r.code for r in original.source.reasons}


# --- SPF and DMARC ------------------------------------------------------------------------


def test_spf_evaluates_the_handoff_ip_against_the_envelope_sender(
    dns_server: DnsTestServer, keys: dict[str, Key]
) -> None:
    publish_sender(dns_server, keys)
    original = run(deliver(base_message(), ip=OTHER_IP), dns_settings(dns_server))
    spf = original.auth.spf
    assert spf is not None
    assert (spf.result, spf.domain, spf.ip) == (AuthVerdict.FAIL, SENDER_DOMAIN, OTHER_IP)
    assert spf.helo == f"mail.{SENDER_DOMAIN}"
    assert original.source.from_authenticated is False


def test_subdomain_from_uses_the_org_domain_record_and_its_sp(
    dns_server: DnsTestServer, keys: dict[str, Key]
) -> None:
    publish_sender(dns_server, keys, dmarc="p=reject; sp=quarantine")
    dns_server.add(f"rsa1._domainkey.{SENDER_DOMAIN}", "TXT", keys["rsa"].record)
    msg = dkim_sign(base_message(from_addr=f"<alice@news.{SENDER_DOMAIN}>"), keys["rsa"], "rsa1")
    original = run(deliver(msg), dns_settings(dns_server))
    dmarc = original.auth.dmarc
    assert dmarc is not None
    assert dmarc.from_domain == f"news.{SENDER_DOMAIN}"
    assert dmarc.org_domain == SENDER_DOMAIN
    assert dmarc.policy == "quarantine"
    assert dmarc.result is AuthVerdict.PASS and dmarc.dkim_aligned  # relaxed alignment


def test_no_dmarc_record_is_none_but_aligned_dkim_still_authenticates_from(
    dns_server: DnsTestServer, keys: dict[str, Key]
) -> None:
    publish_sender(dns_server, keys)
    dns_server.remove(f"_dmarc.{SENDER_DOMAIN}")
    msg = dkim_sign(base_message(), keys["rsa"], "rsa1")
    original = run(deliver(msg, ip=OTHER_IP), dns_settings(dns_server))
    assert original.auth.dmarc is not None and original.auth.dmarc.result is AuthVerdict.NONE
    assert original.source.from_authenticated is True


# --- DNS failures -------------------------------------------------------------------------


@pytest.mark.timeout(20)
def test_dns_timeout_is_temperror_within_the_budget_and_switches_dns_off(
    dns_server: DnsTestServer, keys: dict[str, Key]
) -> None:
    publish_sender(dns_server, keys)
    dns_server.silent = True
    # A per-query timeout far above the budget: only the budget can keep this test short.
    settings = dns_settings(dns_server, timeout=60.0, budget=0.5)
    verifier = verify.Verifier(settings)
    original = run(deliver(signed_by_both(keys)), settings, verifier)
    assert [s.result for s in original.auth.dkim] == [AuthVerdict.TEMPERROR] * 2
    assert original.auth.spf is not None and original.auth.spf.result is AuthVerdict.TEMPERROR
    assert original.auth.dmarc is not None and original.auth.dmarc.result is AuthVerdict.TEMPERROR
    assert "dns-temperror" in {f.code for f in original.findings}
    assert original.source.from_authenticated is False


@pytest.mark.timeout(20)
def test_after_a_resolver_timeout_dns_stays_off_for_the_run(
    dns_server: DnsTestServer, keys: dict[str, Key]
) -> None:
    publish_sender(dns_server, keys)
    dns_server.silent = True
    settings = dns_settings(dns_server, timeout=0.3, budget=60.0)
    verifier = verify.Verifier(settings)
    first = run(deliver(signed_by_both(keys)), settings, verifier)
    assert verifier.dns_down
    asked = len(dns_server.queries)  # silent servers log nothing; count on the client side
    dns_server.silent = False  # even a recovered server is not asked again in this run
    queries_before = verifier.client.queries
    second = run(deliver(signed_by_both(keys)), settings, verifier)
    assert verifier.client.queries == queries_before
    assert len(dns_server.queries) == asked
    assert AuthVerdict.TEMPERROR in {s.result for s in first.auth.dkim}
    assert {s.result for s in second.auth.dkim} == {AuthVerdict.TEMPERROR}
    assert "dns-off" in {f.code for f in second.findings}


def test_answers_are_cached_per_run(dns_server: DnsTestServer, keys: dict[str, Key]) -> None:
    publish_sender(dns_server, keys)
    settings = dns_settings(dns_server)
    verifier = verify.Verifier(settings)
    run(deliver(signed_by_both(keys)), settings, verifier)
    asked = list(dns_server.queries)
    again = run(deliver(signed_by_both(keys)), settings, verifier)
    assert dns_server.queries == asked
    assert {s.result for s in again.auth.dkim} == {AuthVerdict.PASS}


def test_dns_disabled_gives_no_evidence(dns_server: DnsTestServer, keys: dict[str, Key]) -> None:
    settings = DnsSettings(enabled=False, nameservers=(dns_server.nameserver,))
    analysis = analyze(deliver(signed_by_both(keys)), Envelope(), POLICY, as_original=True)
    assert verify.verify_analysis(analysis, settings) == Evidence.none()
    assert dns_server.queries == []


# --- ARC ----------------------------------------------------------------------------------


def _arc_chain(keys: dict[str, Key], server: DnsTestServer, instances: int) -> bytes:
    """Alice's signed message forwarded through ``instances`` ARC-sealing ADMDs, as it
    arrives at our MX from the last of them (deliver with ``submitted=False``)."""
    msg = submission_hop() + dkim_sign(base_message(), keys["rsa"], "rsa1")
    for n in range(1, instances + 1):
        domain = f"fwd{n}.example"
        server.add(f"arc{n}._domainkey.{domain}", "TXT", keys["arc"].record)
        arc_state = "none" if n == 1 else "pass"
        ar = (
            f"Authentication-Results: {domain};\r\n"
            f"\tdkim=pass header.d={SENDER_DOMAIN} header.s=rsa1;\r\n"
            f"\tarc={arc_state}\r\n"
        ).encode()
        sender = f"mail.{SENDER_DOMAIN}" if n == 1 else f"relay.fwd{n - 1}.example"
        sender_ip = SENDER_IP if n == 1 else forwarder_ip(n - 1)
        relay = (
            f"Received: from {sender} ({sender} [{sender_ip}])\r\n"
            f"\tby {domain} (Postfix) with ESMTPS id 4XkAA{n}; "
            f"Wed, 25 Nov 2026 09:12:0{n} +0000 (UTC)\r\n"
        ).encode()
        msg = arc_seal(ar + relay + msg, keys["arc"], f"arc{n}", domain, domain)
    return msg


def forwarder_ip(n: int) -> str:
    return f"198.51.100.{20 + n}"


def forwarded(keys: dict[str, Key], server: DnsTestServer, instances: int) -> bytes:
    chain = _arc_chain(keys, server, instances)
    return deliver(chain, ip=forwarder_ip(instances), submitted=False)


@pytest.mark.parametrize("instances", [1, 2, 3])
def test_arc_chains_of_one_to_three_instances_pass(
    dns_server: DnsTestServer, keys: dict[str, Key], instances: int
) -> None:
    publish_sender(dns_server, keys)
    original = run(forwarded(keys, dns_server, instances), dns_settings(dns_server))
    arc = original.auth.arc
    assert arc.cv is AuthVerdict.PASS, arc.reason
    assert [i.instance for i in arc.instances] == list(range(1, instances + 1))
    assert [i.domain for i in arc.instances] == [f"fwd{n}.example" for n in range(1, instances + 1)]
    assert all(i.seal_result is AuthVerdict.PASS for i in arc.instances)
    assert arc.instances[0].cv == "none"
    assert all(i.cv == "pass" for i in arc.instances[1:])
    assert arc.oldest_pass == 1
    assert "dkim=pass" in arc.instances[0].recorded_results
    # Forwarding broke SPF (the last forwarder handed it off), Alice's DKIM survived.
    assert original.auth.spf is not None
    assert (original.auth.spf.ip, original.auth.spf.result) == (
        forwarder_ip(instances),
        AuthVerdict.FAIL,
    )
    assert original.auth.dmarc is not None and original.auth.dmarc.result is AuthVerdict.PASS


def test_arc_chain_broken_after_the_last_seal_fails(
    dns_server: DnsTestServer, keys: dict[str, Key]
) -> None:
    publish_sender(dns_server, keys)
    raw = forwarded(keys, dns_server, 2).replace(b"Stop ignoring me.", b"Changed.")
    arc = run(raw, dns_settings(dns_server)).auth.arc
    assert arc.cv is AuthVerdict.FAIL
    assert arc.instances[-1].signature_result is AuthVerdict.FAIL
    assert arc.oldest_pass is None


def test_arc_chain_with_a_forged_middle_seal_fails(
    dns_server: DnsTestServer, keys: dict[str, Key]
) -> None:
    publish_sender(dns_server, keys)
    raw = forwarded(keys, dns_server, 3)
    # Instance 2's seal is re-published with another key: its seal no longer verifies.
    dns_server.remove("arc2._domainkey.fwd2.example")
    dns_server.add("arc2._domainkey.fwd2.example", "TXT", keys["rsa2"].record)
    arc = run(raw, dns_settings(dns_server)).auth.arc
    assert arc.cv is AuthVerdict.FAIL
    by_instance = {i.instance: i for i in arc.instances}
    assert by_instance[2].seal_result is AuthVerdict.FAIL
    assert by_instance[3].seal_result is AuthVerdict.PASS


def test_arc_key_timeout_is_temperror(dns_server: DnsTestServer, keys: dict[str, Key]) -> None:
    publish_sender(dns_server, keys)
    raw = forwarded(keys, dns_server, 1)
    dns_server.silent = True
    arc = run(raw, dns_settings(dns_server, timeout=0.3, budget=2.0)).auth.arc
    assert arc.cv is AuthVerdict.TEMPERROR


# --- the console script -------------------------------------------------------------------

STOPITD = Path(sys.executable).with_name("stopitd")


def _analyze_json(config: Path, path: Path, *extra: str) -> dict[str, object]:
    assert STOPITD.exists(), f"{STOPITD} missing: run `pip install -e '.[dev]'` in the venv"
    done = subprocess.run(
        [
            str(STOPITD),
            "--config",
            str(config),
            "analyze",
            "--original",
            "--json",
            *extra,
            str(path),
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    data = json.loads(done.stdout.splitlines()[0])
    assert isinstance(data, dict)
    return data


def test_analyze_json_shows_per_signature_results_from_the_configured_nameserver(
    dns_server: DnsTestServer, keys: dict[str, Key], tmp_path: Path
) -> None:
    publish_sender(dns_server, keys)
    dns_server.remove(f"ed1._domainkey.{SENDER_DOMAIN}")
    eml = tmp_path / "original.eml"
    eml.write_bytes(deliver(signed_by_both(keys)))
    config = tmp_path / "stopitd.toml"
    config.write_text(
        f'[dns]\nnameservers = ["{dns_server.nameserver}"]\ntimeout = 2.0\nbudget = 5.0\n'
    )
    data = _analyze_json(config, eml)
    (original,) = data["originals"]  # type: ignore[misc]
    auth = original["auth"]
    assert auth["verified"] is True
    results = {s["selector"]: (s["domain"], s["result"]) for s in auth["dkim"]}
    assert results == {
        "rsa1": (SENDER_DOMAIN, "pass"),
        "ed1": (SENDER_DOMAIN, "permerror"),
    }
    assert auth["spf"]["result"] == "pass"
    assert auth["dmarc"]["result"] == "pass" and auth["dmarc"]["dkim_aligned"] is True
    assert original["source"]["from_authenticated"] is True
    assert (f"rsa1._domainkey.{SENDER_DOMAIN}", "TXT") in dns_server.queries

    asked = len(dns_server.queries)
    skipped = _analyze_json(config, eml, "--no-dns")
    (orig2,) = skipped["originals"]  # type: ignore[misc]
    assert orig2["auth"]["verified"] is False and orig2["auth"]["dkim"] == []
    assert orig2["source"]["from_authenticated"] is None
    assert len(dns_server.queries) == asked


# --- guards and other grades --------------------------------------------------------------


def test_the_guard_keeps_tests_off_the_system_resolver() -> None:
    with pytest.raises(AssertionError, match="system resolver"):
        verify.DnsClient(DnsSettings())


def test_headers_only_original_names_signatures_but_still_checks_spf_and_dmarc(
    dns_server: DnsTestServer, keys: dict[str, Key]
) -> None:
    publish_sender(dns_server, keys)
    analysis = analyze(deliver(signed_by_both(keys)), Envelope(), POLICY, as_original=True)
    headers_only = replace(
        analysis, originals=tuple(replace(o, grade=Grade.HEADERS_ONLY) for o in analysis.originals)
    )
    evidence = verify.verify_analysis(headers_only, dns_settings(dns_server))
    (original,) = conclude(headers_only, evidence, POLICY).originals
    assert {(s.selector, s.result) for s in original.auth.dkim} == {
        ("rsa1", AuthVerdict.NONE),
        ("ed1", AuthVerdict.NONE),
    }
    assert not any(q[0].endswith("_domainkey.sender.example") for q in dns_server.queries)
    assert original.auth.spf is not None and original.auth.spf.result is AuthVerdict.PASS
    assert original.auth.dmarc is not None and original.auth.dmarc.spf_aligned
    assert original.source.from_authenticated is True
    assert "dkim-not-verifiable" in {f.code for f in original.findings}


def test_stopitd_stamp_records_what_the_verifier_saw(
    dns_server: DnsTestServer, keys: dict[str, Key]
) -> None:
    import authres

    from stopitd.render.auth import authentication_results

    publish_sender(dns_server, keys)
    dns_server.remove(f"ed1._domainkey.{SENDER_DOMAIN}")
    original = run(deliver(signed_by_both(keys)), dns_settings(dns_server))
    stamp = authentication_results(original, "stopit.example.edu")
    parsed = authres.AuthenticationResultsHeader.parse(stamp)
    assert parsed.authserv_id == "stopit.example.edu"
    got = [(r.method, r.result) for r in parsed.results]
    assert got == [  # signatures top first: ed1 was added last
        ("dkim", "permerror"),
        ("dkim", "pass"),
        ("arc", "none"),
        ("spf", "pass"),
        ("dmarc", "pass"),
    ]
    dkim_props = {(p.type, p.name, p.value) for p in parsed.results[0].properties}
    assert ("header", "s", "ed1") in dkim_props
    spf_props = {(p.type, p.name, p.value) for p in parsed.results[3].properties}
    assert ("smtp", "mailfrom", f"alice@{SENDER_DOMAIN}") in spf_props
    assert (
        authentication_results(replace(original, auth=replace(original.auth, verified=False)), "x")
        == ""
    )


def test_unusable_nameserver_gives_temperror_and_a_finding_not_a_crash(
    keys: dict[str, Key],
) -> None:
    settings = DnsSettings(nameservers=("ns.example.edu",), timeout=1.0, budget=2.0)
    original = run(deliver(signed_by_both(keys)), settings)
    assert {s.result for s in original.auth.dkim} == {AuthVerdict.TEMPERROR}
    finding = next(f for f in original.findings if f.code == "dns-off")
    assert "ns.example.edu" in finding.text


@pytest.mark.timeout(60)
def test_analyze_switches_dns_off_for_the_rest_of_the_run_after_a_timeout(
    dns_server: DnsTestServer, keys: dict[str, Key], tmp_path: Path
) -> None:
    publish_sender(dns_server, keys)
    dns_server.silent = True
    files = []
    for n in range(3):
        eml = tmp_path / f"original-{n}.eml"
        eml.write_bytes(deliver(signed_by_both(keys)))
        files.append(str(eml))
    config = tmp_path / "stopitd.toml"
    config.write_text(
        f'[dns]\nnameservers = ["{dns_server.nameserver}"]\ntimeout = 0.5\nbudget = 5.0\n'
    )
    done = subprocess.run(
        [str(STOPITD), "--config", str(config), "analyze", "--original", "--json", *files],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    results = [json.loads(line)["originals"][0] for line in done.stdout.splitlines()]
    assert len(results) == 3
    first_codes = {f["code"] for f in results[0]["findings"]}
    assert "dns-temperror" in first_codes
    for later in results[1:]:
        assert {s["result"] for s in later["auth"]["dkim"]} == {"temperror"}
        assert "dns-off" in {f["code"] for f in later["findings"]}


def test_spf_follows_mx_a_and_include_through_our_resolver(
    dns_server: DnsTestServer, keys: dict[str, Key]
) -> None:
    publish_sender(dns_server, keys)
    dns_server.remove(SENDER_DOMAIN, "TXT")
    dns_server.add(SENDER_DOMAIN, "TXT", "v=spf1 include:_spf.mailer.example mx -all")
    dns_server.add(
        "_spf.mailer.example", "TXT", "v=spf1 a:out.mailer.example ip6:2001:db8::/32 -all"
    )
    dns_server.add("out.mailer.example", "A", "203.0.113.9")
    unsigned = base_message()
    by_mx = run(deliver(unsigned, ip=SENDER_IP), dns_settings(dns_server))
    by_include = run(deliver(unsigned, ip="203.0.113.9"), dns_settings(dns_server))
    by_v6 = run(deliver(unsigned, ip="2001:db8::25"), dns_settings(dns_server))
    elsewhere = run(deliver(unsigned, ip=OTHER_IP), dns_settings(dns_server))
    results = [
        o.auth.spf.result if o.auth.spf else None for o in (by_mx, by_include, by_v6, elsewhere)
    ]
    assert results == [AuthVerdict.PASS, AuthVerdict.PASS, AuthVerdict.PASS, AuthVerdict.FAIL]
    assert (f"mail.{SENDER_DOMAIN}", "A") in dns_server.queries
    assert by_v6.auth.spf is not None and by_v6.auth.spf.ip == "2001:db8::25"


def test_null_sender_is_checked_by_helo(dns_server: DnsTestServer, keys: dict[str, Key]) -> None:
    publish_sender(dns_server, keys)
    dns_server.add(f"mail.{SENDER_DOMAIN}", "TXT", f"v=spf1 ip4:{SENDER_IP} -all")
    original = run(deliver(base_message(), envelope_from=""), dns_settings(dns_server))
    spf = original.auth.spf
    assert spf is not None
    assert (spf.scope, spf.identity, spf.result) == (
        "helo",
        f"postmaster@mail.{SENDER_DOMAIN}",
        AuthVerdict.PASS,
    )
    # SPF for the HELO domain does not align with the From domain under strict rules,
    # but mail.sender.example shares sender.example's organisational domain: relaxed.
    assert original.auth.dmarc is not None and original.auth.dmarc.spf_aligned


@pytest.mark.timeout(20)
def test_a_revived_verifier_asks_dns_again(dns_server: DnsTestServer, keys: dict[str, Key]) -> None:
    publish_sender(dns_server, keys)
    dns_server.silent = True
    settings = dns_settings(dns_server, timeout=0.3, budget=5.0)
    verifier = verify.Verifier(settings)
    run(deliver(signed_by_both(keys)), settings, verifier)
    assert verifier.dns_down and verifier.down_for() > 0.0
    dns_server.silent = False
    verifier.revive()
    assert not verifier.dns_down and verifier.down_for() == 0.0
    original = run(deliver(signed_by_both(keys)), settings, verifier)
    assert {s.result for s in original.auth.dkim} == {AuthVerdict.PASS}


# --- messages signed and sealed by another implementation (Perl's Mail::DKIM) --------------


def test_signature_made_by_mail_dkim_verifies_and_tampering_fails(
    dns_server: DnsTestServer, keys: dict[str, Key], tmp_path: Path
) -> None:
    publish_sender(dns_server, keys)
    dns_server.add(f"perl1._domainkey.{SENDER_DOMAIN}", "TXT", keys["rsa2"].record)
    signed = perl_sign(tmp_path, base_message(), keys["rsa2"], "dkim", SENDER_DOMAIN, "perl1")
    assert signed.startswith(b"DKIM-Signature:")
    good = run(deliver(signed), dns_settings(dns_server))
    assert [(s.selector, s.result) for s in good.auth.dkim] == [("perl1", AuthVerdict.PASS)]
    bad = run(deliver(signed.replace(b"You again", b"Hello")), dns_settings(dns_server))
    assert [s.result for s in bad.auth.dkim] == [AuthVerdict.FAIL]


def test_arc_chain_sealed_by_mail_dkim_and_dkimpy_passes_and_breaks(
    dns_server: DnsTestServer, keys: dict[str, Key], tmp_path: Path
) -> None:
    publish_sender(dns_server, keys)
    msg = submission_hop() + dkim_sign(base_message(), keys["rsa"], "rsa1")
    # i=1 by Mail::DKIM, i=2 by dkimpy, i=3 by Mail::DKIM again.
    for n, sealer in ((1, "perl"), (2, "dkimpy"), (3, "perl")):
        domain = f"fwd{n}.example"
        dns_server.add(f"arc{n}._domainkey.{domain}", "TXT", keys["arc"].record)
        ar = (
            f"Authentication-Results: {domain}; dkim=pass header.d={SENDER_DOMAIN};"
            f" arc={'none' if n == 1 else 'pass'}\r\n"
        ).encode()
        msg = ar + msg
        if sealer == "perl":
            msg = perl_sign(tmp_path, msg, keys["arc"], "arc", domain, f"arc{n}", domain)
        else:
            msg = arc_seal(msg, keys["arc"], f"arc{n}", domain, domain)
    raw = deliver(msg, ip=forwarder_ip(3), submitted=False)
    arc = run(raw, dns_settings(dns_server)).auth.arc
    assert arc.cv is AuthVerdict.PASS, arc.reason
    assert [(i.instance, i.seal_result) for i in arc.instances] == [
        (1, AuthVerdict.PASS),
        (2, AuthVerdict.PASS),
        (3, AuthVerdict.PASS),
    ]
    broken = run(raw.replace(b"Stop ignoring me.", b"Changed."), dns_settings(dns_server))
    assert broken.auth.arc.cv is AuthVerdict.FAIL


def test_strict_dmarc_alignment_of_the_from_domain_is_respected(
    dns_server: DnsTestServer, keys: dict[str, Key]
) -> None:
    publish_sender(dns_server, keys, dmarc="p=reject; adkim=s; aspf=s")
    msg = dkim_sign(base_message(from_addr=f"<alice@news.{SENDER_DOMAIN}>"), keys["rsa"], "rsa1")
    original = run(deliver(msg), dns_settings(dns_server))
    assert [s.result for s in original.auth.dkim] == [AuthVerdict.PASS]
    dmarc = original.auth.dmarc
    assert dmarc is not None
    assert (dmarc.result, dmarc.dkim_aligned, dmarc.spf_aligned) == (AuthVerdict.FAIL, False, False)
    assert original.source.from_authenticated is False
    assert SENDER_DOMAIN in original.source.responsible_domains  # the signer still is


def test_auth_survives_the_json_round_trip_and_renders_readably(
    dns_server: DnsTestServer, keys: dict[str, Key]
) -> None:
    from rich.console import Console

    from stopitd.analysis.model import analysis_from_json, analysis_to_json
    from stopitd.analysis.policy import TrustPolicy
    from stopitd.render.auth import render_auth

    publish_sender(dns_server, keys)
    dns_server.remove(f"ed1._domainkey.{SENDER_DOMAIN}")
    stamp = (
        b"Authentication-Results: mx.example.edu; iprev=pass policy.iprev=192.0.2.10"
        b" (mail.sender.example)\r\n"
    )
    policy = Policy(trust=TrustPolicy(trusted_authserv_ids=("mx.example.edu",)))
    raw = deliver(signed_by_both(keys), above=stamp)
    analysis = analyze(raw, Envelope(), policy, as_original=True)
    analysis = conclude(
        analysis, verify.verify_analysis(analysis, dns_settings(dns_server)), policy
    )
    back = analysis_from_json(analysis_to_json(analysis), [o.raw for o in analysis.originals])
    assert back.originals[0].auth == analysis.originals[0].auth
    assert back.originals[0].source.from_authenticated is True

    console = Console(width=200, record=True)
    console.print(render_auth(analysis.originals[0]))
    text = console.export_text()
    assert f"d={SENDER_DOMAIN} s=rsa1 rsa-sha256: pass" in text
    assert f"d={SENDER_DOMAIN} s=ed1 ed25519-sha256: permerror (no key record" in text
    assert "SPF    pass for mailfrom alice@sender.example from 192.0.2.10" in text
    assert "DMARC  pass for From sender.example, policy reject: DKIM aligned, SPF aligned" in text
    assert "mx.example.edu [Authentication-Results]: iprev=pass" in text
    assert "trusted stamps record 192.0.2.10, the hand-off is 192.0.2.10" in text


def test_big_answers_come_over_tcp_after_truncation(dns_server: DnsTestServer) -> None:
    big = "v=DKIM1; k=rsa; n=" + "x" * 3000
    dns_server.add("big._domainkey.sender.example", "TXT", big)
    client = verify.DnsClient(dns_settings(dns_server))
    client.start_budget()
    records, nxdomain = client.txt("big._domainkey.sender.example")
    assert (records, nxdomain) == ([big.encode()], False)
    assert dns_server.tcp_queries == 1  # UDP answer was truncated, the client retried on TCP
    assert client.txt("nothing.sender.example") == ([], True)
