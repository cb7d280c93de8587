"""Whole delivered messages (fixtures/delivered/): what staff need from each, at the
receiving site's own settings.

These are full-size mail as a mailbox holds it (provider header blocks of several KB,
text and HTML alternatives, attachments), unlike the trimmed fixtures elsewhere; the
analysis benchmark runs over them too.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from stopitd.analysis import analyze, conclude
from stopitd.analysis.model import Envelope, Evidence, Original
from stopitd.analysis.policy import Policy, TrustPolicy

DELIVERED = Path(__file__).resolve().parents[2] / "fixtures" / "delivered"


def only_original(name: str, policy: Policy) -> Original:
    """What `stopitd analyze --original --no-dns` concludes about fixture NAME."""
    raw = (DELIVERED / name).read_bytes()
    analysis = analyze(raw, Envelope(), policy, as_original=True)
    (original,) = conclude(analysis, Evidence.none(), policy).originals
    return original


# fixture, the receiving site's providers, the hand-off IP, the domains answerable for it,
CASES = [
    ("gmail-to-m365.eml", ("microsoft",), "209.85.208.52", {"gmail.com", "google.com"}),
    ("outlook-com-to-gmail.eml", ("google",), "40.92.91.16", {"outlook.com"}),
    ("thunderbird-postfix-attachments.eml", (), "198.51.100.25", {"example.net"}),
]


def test_every_delivered_fixture_is_covered() -> None:
    assert sorted(p.name for p in DELIVERED.glob("*.eml")) == sorted(c[0] for c in CASES)


@pytest.mark.parametrize(("name", "providers", "handoff", "domains"), CASES)
def test_the_source_is_the_handoff_to_the_receiving_site(
    name: str, providers: tuple[str, ...], handoff: str, domains: set[str]
) -> None:
    original = only_original(name, Policy(trust=TrustPolicy(providers=providers)))
    source = original.source
    assert source.relay_ip == handoff
    assert source.mode.value == "handoff"
    assert domains <= set(source.responsible_domains)
    # the hops above the hand-off are the receiving site's own; none below is trusted
    edge = source.boundary_index
    assert edge is not None and original.hops[edge].ip == handoff
    assert all(h.trust.value == "trusted" for h in original.hops[:edge])
    assert all(h.trust.value == "claimed" for h in original.hops[edge + 1 :])


def test_without_the_provider_profile_a_mailbox_hop_is_not_taken_for_the_sender() -> None:
    """At defaults, Microsoft 365's top mailbox hop ("with HTTPS") is all that is trusted:
    the estimate says so (low confidence, and what to configure) rather than naming
    Gmail or Microsoft."""
    original = only_original("gmail-to-m365.eml", Policy())
    assert original.source.confidence.value == "low"
    assert original.source.origin_ip != "209.85.208.52"
    assert any("msa_networks" in r.text for r in original.source.reasons)


def test_attachments_of_a_delivered_message_are_not_originals() -> None:
    """A PDF and a JPEG on a harassing message are its content, not forwarded mail."""
    original = only_original("thunderbird-postfix-attachments.eml", Policy())
    assert original.fields.subject == "I have pictures"
