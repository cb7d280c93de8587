"""The verdict staff read: addresses, mode, who answers for them, confidence and reasons."""

from __future__ import annotations

import pytest

from stopitd.analysis import analyze
from stopitd.analysis.model import Confidence, Envelope, Mode, Original
from stopitd.analysis.policy import Policy, TrustPolicy

D = "Wed, 25 Nov 2026 10:00:{:02d} +0000"


def message(*received: str, extra: str = "") -> bytes:
    head = "".join(f"Received: {r}\r\n" for r in received)
    return (
        head + extra + "From: X <x@example.net>\r\nTo: y@uni.example\r\n"
        "Subject: s\r\nDate: Wed, 25 Nov 2026 10:00:00 +0000\r\n"
        "Message-ID: <m1@example.net>\r\n\r\nbody\r\n"
    ).encode()


def original(raw: bytes, **policy: tuple[str, ...]) -> Original:
    analysis = analyze(raw, Envelope(), Policy(trust=TrustPolicy(**policy)), as_original=True)
    (o,) = analysis.originals
    return o


def codes(o: Original) -> set[str]:
    return {f.code for f in o.findings}


MX = (
    "from WIN-5H4X2 (dsl-187-156-22-9-dyn.prod-infinitum.com.mx [187.156.22.9]) by "
    "mx1.uni.example (Postfix) with ESMTP id 4A9B; " + D.format(3)
)


def test_empty_policy_verdict_is_the_top_senders_address_with_a_reason() -> None:
    o = original(message(MX))
    s = o.source
    assert (s.relay_ip, s.origin_ip, s.mode) == ("187.156.22.9", "187.156.22.9", Mode.HANDOFF)
    assert s.confidence is Confidence.MEDIUM
    assert "prod-infinitum.com.mx" in s.responsible_domains
    assert {r.code for r in s.reasons} >= {"handoff", "top-receiver-only"}
    assert all(r.text for r in s.reasons)
    assert o.hops[0].trust.value == "boundary" and s.boundary_index == 0


def test_no_received_header_is_said_plainly() -> None:
    s = original(message()).source
    assert s.confidence is Confidence.NONE and s.relay_ip == ""
    assert [r.code for r in s.reasons] == ["no-trace"]


def test_private_handoff_is_flagged_and_lowers_confidence() -> None:
    hop = MX.replace("187.156.22.9", "10.9.8.7")
    o = original(message(hop))
    assert "handoff-not-public" in codes(o)
    assert o.source.confidence is Confidence.LOW
    assert o.hops[0].ip_class.value == "private"


def test_forged_lower_hops_give_findings_but_do_not_move_the_handoff() -> None:
    forged = (
        "from secure.bank.example (secure.bank.example [193.0.6.139]) by mail.bank.example "
        "(8.15.2/8.15.2) with ESMTP id 2A; Thu, 26 Nov 2026 03:00:00 +0000"
    )
    o = original(message(MX, forged))
    assert o.source.relay_ip == "187.156.22.9"
    assert {"by-rdns-mismatch", "date-future", "date-order"} <= codes(o)
    assert o.hops[1].trust.value == "claimed"


def test_ip_literal_helo_far_from_the_connection_is_flagged() -> None:
    hop = (
        "from [8.8.4.4] (dsl-187-156-22-9-dyn.prod-infinitum.com.mx [187.156.22.9]) by "
        "mx1.uni.example (Postfix) with ESMTP id 4A9B; " + D.format(3)
    )
    o = original(message(hop))
    (f,) = [f for f in o.findings if f.code == "helo-ip-mismatch"]
    assert f.severity.value == "warning" and "8.8.4.4" in f.text


def test_private_helo_behind_nat_is_normal() -> None:
    hop = MX.replace("WIN-5H4X2", "[192.168.1.4]")
    assert "helo-ip-mismatch" not in codes(original(message(hop)))


def test_absurd_hop_count_is_flagged() -> None:
    hops = [MX] + [
        f"from relay{i}.example.net (relay{i}.example.net [81.2.69.{i % 250 + 1}]) by "
        f"relay{i - 1}.example.net (Postfix) with ESMTP id {i}; " + D.format(1)
        for i in range(1, 80)
    ]
    assert "hop-count-absurd" in codes(original(message(*hops)))


def test_webmail_hiding_the_client_is_unknown_with_what_the_abuse_desk_needs() -> None:
    top = (
        "from sonic305-20.consmr.mail.gq1.yahoo.com (sonic305-20.consmr.mail.gq1.yahoo.com. "
        "[98.137.64.83]) by mx1.uni.example (Postfix) with ESMTPS id 4N; " + D.format(3)
    )
    below = (
        "from sonic.gate.mail.ne1.yahoo.com by sonic305.consmr.mail.gq1.yahoo.com with HTTP; "
        + D.format(2)
    )
    dkim = "DKIM-Signature: v=1; a=rsa-sha256; d=yahoo.com; s=s2048; bh=x; b=y\r\n"
    o = original(message(top, below, extra=dkim), providers=("yahoo",))
    s = o.source
    assert (s.mode, s.provider, s.origin_ip) == (Mode.UNKNOWN, "yahoo", "")
    assert s.relay_ip == "98.137.64.83"
    (ids,) = [r.text for r in s.reasons if r.code == "abuse-identifiers"]
    assert "<m1@example.net>" in ids and "2026-11-25 10:00:00 UTC" in ids and "d=yahoo.com" in ids
    assert "yahooinc.com" in s.responsible_domains


def test_configured_originating_ip_header_names_the_webmail_client() -> None:
    top = (
        "from sonic305-20.consmr.mail.gq1.yahoo.com (sonic305-20.consmr.mail.gq1.yahoo.com. "
        "[98.137.64.83]) by mx1.uni.example (Postfix) with ESMTPS id 4N; " + D.format(3)
    )
    below = "by sonic305.consmr.mail.gq1.yahoo.com with HTTP; " + D.format(2)
    extra = "X-Originating-IP: [81.96.12.77]\r\n"
    s = original(
        message(top, below, extra=extra),
        providers=("yahoo",), originating_ip_headers=("X-Originating-IP",),
    ).source
    assert (s.mode, s.origin_ip) == (Mode.PROVIDER_ATTESTED, "81.96.12.77")
    s = original(message(top, below, extra=extra), providers=("yahoo",)).source
    assert s.origin_ip == ""  # not configured: not believed


def test_internal_submission_names_the_authenticated_user() -> None:
    hub = (
        "from smtp.uni.example (smtp.uni.example [193.60.10.25]) by mx1.uni.example (Postfix) "
        "with ESMTP id 1; " + D.format(3)
    )
    sub = (
        "from [192.168.1.20] (dynamic-77-180-1-2.example.net [77.180.1.2]) (Authenticated "
        "sender: dave) by smtp.uni.example (Postfix) with ESMTPSA id 2; " + D.format(2)
    )
    s = original(message(hub, sub), msa_networks=("193.60.10.0/24",)).source
    assert (s.mode, s.internal, s.origin_ip) == (Mode.SUBMISSION, True, "77.180.1.2")
    assert s.authenticated_identity == "dave"
    assert s.confidence is Confidence.HIGH


@pytest.mark.timeout(120)
def test_ten_thousand_received_headers_finish() -> None:
    unit = (
        "from relay.example.net (relay.example.net [81.2.69.160]) by mx.example.org "
        "(Postfix) with ESMTP id 1; " + D.format(1)
    )
    o = original(message(*([MX] + [unit] * 9999)))
    assert len(o.hops) == 10_000
    assert "hop-count-absurd" in codes(o)
    assert sum(1 for f in o.findings if f.code == "by-rdns-mismatch") <= 5


@pytest.mark.parametrize(
    ("submission", "user"),
    [
        ("from [192.168.0.5] ([81.2.69.154]) (authenticated user a@uni.example) by "
         "mail.uni.example (Kerio Connect 10.0.2 patch 1) with ESMTPA", "a@uni.example"),
        ("from laptop.home (dsl-198-51-100-120.example.net [81.2.69.120]) by mail.uni.example "
         "(OpenSMTPD) with ESMTPSA id 6ea45f1f (TLSv1.3:TLS_AES_256_GCM_SHA384:256:NO) "
         "auth=yes user=carol for <bob@example.com>", "carol"),
        ("from [81.2.69.91] (account carol@uni.example HELO laptop.local) by mail.uni.example "
         "(CommuniGate Pro SMTP 6.3.12) with ESMTPSA id 12345678", "carol@uni.example"),
        ("from laptop ([::ffff:81.2.69.82]) (AUTH: LOGIN carol, TLS: TLSv1.3,256bits) by "
         "mail.uni.example with ESMTPSA", "carol"),
    ],
)
def test_authenticated_identity_of_the_submission_is_read(submission: str, user: str) -> None:
    s = original(message(submission + "; " + D.format(1))).source
    assert s.mode is Mode.SUBMISSION and s.authenticated_identity == user


WEBMAIL = (
    "from webmail.uni.example (localhost [127.0.0.1]) (Authenticated sender: bob) by "
    "mx1.uni.example (Postfix) with ESMTPSA id 9; " + D.format(2)
)


def test_local_webmail_submission_names_the_user_and_the_recorded_client() -> None:
    extra = "X-Originating-IP: [81.96.12.77]\r\n"
    s = original(
        message(WEBMAIL, extra=extra),
        msa_networks=("127.0.0.1/32",), originating_ip_headers=("X-Originating-IP",),
    ).source
    assert (s.mode, s.internal, s.authenticated_identity) == (Mode.SUBMISSION, True, "bob")
    assert s.origin_ip == "81.96.12.77"
    assert "originating-ip-header" in {r.code for r in s.reasons}


def test_originating_ip_header_from_outside_is_not_believed() -> None:
    extra = "X-Originating-IP: [81.96.12.77]\r\n"
    s = original(message(MX, extra=extra), originating_ip_headers=("X-Originating-IP",)).source
    assert s.origin_ip == "187.156.22.9"
