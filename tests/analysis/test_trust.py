"""The trust walk: which hop is the hand-off, and how far down we may believe the chain."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from stopitd.analysis.model import Mode, Trust
from stopitd.analysis.policy import TrustPolicy
from stopitd.analysis.received import parse_received
from stopitd.analysis.trust import Walk, walk

D = "Wed, 25 Nov 2026 10:00:0{} +0000"

MX_FROM_SPAMMER = (
    "from WIN-5H4X2 (dsl-187-156-22-9-dyn.prod-infinitum.com.mx [187.156.22.9]) by "
    "mx1.uni.example (Postfix) with ESMTP id 4A9B for <g@uni.example>; " + D.format(3)
)
AMAVIS_REINJECT = (
    "from localhost (localhost [127.0.0.1]) by mx1.uni.example (Postfix) with ESMTP id 7F3A; "
    + D.format(5)
)
HUB = (
    "from mailhub.uni.example ([193.60.1.5]) by mailbox.uni.example with esmtp (Exim 4.96) "
    "id 1t-3; " + D.format(4)
)
MSA_TO_HUB = (
    "from smtp.uni.example ([193.60.10.25] helo=smtp.uni.example) by mailhub.uni.example "
    "with esmtps (Exim 4.96) id 1t-2; " + D.format(3)
)
STUDENT_SUBMITS = (
    "from host-86-12-34-56.isp.example ([86.12.34.56]:51234 helo=[192.168.1.10]) by "
    "smtp.uni.example with esmtpsa (Exim 4.96) id 1t-1; " + D.format(2)
)
GOOGLE_MX = (
    "from mail-sor-f41.google.com (mail-sor-f41.google.com. [209.85.220.41]) by mx.google.com "
    "with SMTPS id x.1 for <a@gmail.com> (Google Transport Security); " + D.format(3)
)
GOOGLE_INTERNAL = "by 2002:a05:6820:1c8a:b0:5f1:2345:6789 with SMTP id 006d; " + D.format(2)
GMAIL_SUBMISSION = (
    "from [192.168.1.7] (cpc1-brnt4-2-0-cust77.4-2.cable.virginm.net. [81.96.12.77]) by "
    "smtp.gmail.com with ESMTPSA id 5b1 (version=TLS1_3 cipher=TLS_AES_128_GCM_SHA256 "
    "bits=128/128); " + D.format(1)
)
GMAIL_TO_UNI = (
    "from mail-wm1-f54.google.com (mail-wm1-f54.google.com [209.85.128.54]) by "
    "mx1.uni.example (Postfix) with ESMTPS id 4NgZ for <b@uni.example>; " + D.format(4)
)


def run(*values: str, **policy: tuple[str, ...]) -> Walk:
    hops = [parse_received(v) for v in values]
    return walk(hops, [], TrustPolicy(**policy))


def labels(w: Walk) -> list[str]:
    return [h.trust.value for h in w.hops]


def test_empty_policy_top_senders_is_the_handoff() -> None:
    w = run(HUB, MSA_TO_HUB, STUDENT_SUBMITS)
    assert w.boundary_index == 0
    assert w.hops[0].ip == "193.60.1.5"
    assert labels(w) == ["boundary", "claimed", "claimed"]
    assert w.mode is Mode.HANDOFF and not w.internal


def test_loopback_reinjection_on_top_is_skipped_to_the_real_relay() -> None:
    w = run(AMAVIS_REINJECT, MX_FROM_SPAMMER)
    assert w.boundary_index == 1
    assert w.hops[1].ip == "187.156.22.9"
    assert labels(w) == ["trusted", "boundary"]


def test_our_networks_are_walked_through_to_the_first_outside_relay() -> None:
    w = run(HUB, MSA_TO_HUB, MX_FROM_SPAMMER, trusted_networks=("193.60.0.0/16",))
    assert w.boundary_index == 2 and w.mode is Mode.HANDOFF


def test_authenticated_submission_at_our_msa_is_an_internal_sender() -> None:
    w = run(
        HUB, MSA_TO_HUB, STUDENT_SUBMITS,
        trusted_networks=("193.60.0.0/16",), msa_networks=("193.60.10.0/24",),
    )
    assert w.mode is Mode.SUBMISSION and w.internal
    assert w.origin_index == 2 and w.hops[2].ip == "86.12.34.56"
    assert labels(w) == ["trusted", "trusted", "boundary"]


def test_submission_seen_only_by_the_top_receiver_is_not_called_internal() -> None:
    w = run(STUDENT_SUBMITS)
    assert w.mode is Mode.SUBMISSION and not w.internal
    assert any(r.code == "authenticated-submission" for r in w.reasons)


def test_fetch_hop_restarts_the_walk_at_the_fetched_mailbox() -> None:
    fetch = (
        "from pop.isp.example [62.24.139.10] by laptop.home with POP3 (fetchmail-6.4.37) "
        "for <frank@localhost> (single-drop); " + D.format(9)
    )
    w = run(fetch, MX_FROM_SPAMMER)
    assert w.boundary_index == 1
    assert any(r.code == "fetch-restart" for r in w.reasons)


def test_fetch_hop_below_the_boundary_is_ignored() -> None:
    fetch = "from pop.evil.example [198.51.100.1] by x with POP3; " + D.format(1)
    w = run(MX_FROM_SPAMMER, fetch)
    assert w.boundary_index == 0 and labels(w) == ["boundary", "claimed"]


def test_own_provider_hops_are_trusted_down_to_the_client_submission() -> None:
    w = run(GOOGLE_INTERNAL, GOOGLE_MX, GOOGLE_INTERNAL, GMAIL_SUBMISSION, providers=("google",))
    assert w.own_provider == "google"
    assert w.mode is Mode.SUBMISSION and w.provider == "google" and not w.internal
    assert w.hops[w.origin_index or 0].ip == "81.96.12.77"


def test_without_provider_profiles_google_is_only_the_handoff() -> None:
    w = run(GOOGLE_INTERNAL, GOOGLE_MX, GOOGLE_INTERNAL, GMAIL_SUBMISSION)
    assert w.boundary_index == 1 and w.mode is Mode.HANDOFF
    assert labels(w) == ["trusted", "boundary", "claimed", "claimed"]


def test_provider_deeper_when_consistent_is_provider_attested() -> None:
    sub = GMAIL_SUBMISSION.replace("smtp.gmail.com", "mail-wm1-f54.google.com")
    w = run(GMAIL_TO_UNI, sub, providers=("google",))
    assert w.mode is Mode.PROVIDER_ATTESTED and w.provider == "google"
    assert labels(w) == ["boundary", "provider-attested"]
    assert w.hops[w.origin_index or 0].ip == "81.96.12.77"


def test_provider_chain_that_does_not_match_the_handoff_is_not_followed() -> None:
    forged = GMAIL_SUBMISSION.replace("smtp.gmail.com", "mx.bank.example")
    w = run(GMAIL_TO_UNI, forged, providers=("google",))
    assert w.mode is Mode.HANDOFF and w.origin_index == 0
    assert labels(w) == ["boundary", "claimed"]
    assert any(r.code == "provider-chain-inconsistent" for r in w.reasons)


def test_provider_chain_with_dates_after_the_handoff_is_not_followed() -> None:
    late = GMAIL_SUBMISSION.replace("smtp.gmail.com", "mail-wm1-f54.google.com").replace(
        "10:00:01", "11:30:00"
    )
    w = run(GMAIL_TO_UNI, late, providers=("google",))
    assert w.mode is Mode.HANDOFF


def test_provider_hiding_the_client_gives_unknown() -> None:
    below = "by mail-wm1-f54.google.com with SMTP id 5b1f; " + D.format(1)
    w = run(GMAIL_TO_UNI, below, providers=("google",))
    assert w.mode is Mode.UNKNOWN and w.provider == "google"
    assert w.boundary_index == 0


def test_all_trusted_chain_is_internal_origin() -> None:
    w = run(HUB, MSA_TO_HUB, trusted_networks=("193.60.0.0/16",))
    assert w.mode is Mode.INTERNAL and w.internal and w.origin_index == 1


def test_trusted_hosts_cover_hops_without_a_usable_address() -> None:
    internal = (
        "from EX01.corp.uni.example ([fe80::1]) by EX02.corp.uni.example with ESMTP id 1; "
        + D.format(1)
    )
    w = run(MX_FROM_SPAMMER.replace("mx1.uni.example", "EX01.corp.uni.example"))
    assert w.boundary_index == 0
    w = run(internal, MX_FROM_SPAMMER, trusted_hosts=("corp.uni.example",))
    assert w.boundary_index == 1


def test_delays_are_seconds_to_the_hop_below() -> None:
    w = run(AMAVIS_REINJECT, MX_FROM_SPAMMER)
    assert w.hops[0].delay_s == 2.0 and w.hops[1].delay_s is None


@pytest.mark.parametrize("status_line", ["garbage", "by x.example with LMTP; " + D.format(1)])
def test_unparsed_lines_never_become_the_handoff(status_line: str) -> None:
    w = run(status_line, MX_FROM_SPAMMER)
    assert w.boundary_index == 1
    assert w.hops[0].trust is Trust.TRUSTED


def test_labelling_keeps_every_field_of_the_hop() -> None:
    from dataclasses import fields, replace

    from stopitd.analysis.trust import _relabel

    hop = parse_received(GMAIL_SUBMISSION)
    assert _relabel(hop, Trust.BOUNDARY, 3.0) == replace(hop, trust=Trust.BOUNDARY, delay_s=3.0)
    assert len(fields(hop)) == 15  # a new Hop field must be added to _relabel too


def test_whatever_our_msa_accepted_is_a_submission_even_without_an_auth_token() -> None:
    unauthenticated = STUDENT_SUBMITS.replace("esmtpsa", "esmtps")
    w = run(
        HUB, MSA_TO_HUB, unauthenticated,
        trusted_networks=("193.60.0.0/16",), msa_networks=("193.60.10.0/24",),
    )
    assert w.mode is Mode.SUBMISSION and w.internal and w.origin_index == 2
    w = run(HUB, MSA_TO_HUB, unauthenticated, trusted_networks=("193.60.0.0/16",))
    assert w.mode is Mode.HANDOFF and w.boundary_index == 2


_VALUES = [
    MX_FROM_SPAMMER, AMAVIS_REINJECT, HUB, MSA_TO_HUB, STUDENT_SUBMITS, GOOGLE_MX,
    GOOGLE_INTERNAL, GMAIL_SUBMISSION, GMAIL_TO_UNI, "garbage", "",
    "from pop.isp.example [62.24.139.10] by laptop.home with POP3; " + D.format(9),
    "from x (y [fe80::1]) by x with ESMTP; " + D.format(1),
]
_POLICIES = [
    TrustPolicy(),
    TrustPolicy(trusted_networks=("193.60.0.0/16",), msa_networks=("193.60.10.0/24",)),
    TrustPolicy(providers=("google", "microsoft", "yahoo", "apple")),
    TrustPolicy(trusted_hosts=("uni.example", "google.com")),
]


@settings(deadline=None, max_examples=300)
@given(st.lists(st.sampled_from(_VALUES), max_size=12), st.sampled_from(_POLICIES))
def test_walk_never_raises_and_labels_every_hop(values: list[str], policy: TrustPolicy) -> None:
    hops = [parse_received(v) for v in values]
    w = walk(hops, [], policy)
    assert len(w.hops) == len(hops)
    if w.boundary_index is not None:
        assert w.hops[w.boundary_index].trust is Trust.BOUNDARY
        assert all(h.trust is not Trust.CLAIMED for h in w.hops[: w.boundary_index])
    if w.origin_index is not None:
        assert w.hops[w.origin_index].ip
