"""Hops + TrustPolicy -> the trust walk: a label per hop, the hand-off and the origin (pure).

The walk starts at the top: the top hop's receiver is ours (it delivered the original to
the reporter). A hop whose sender is trusted too (our networks, our trusted host names,
or the provider our mailbox sits at) passes trust down to the next hop's receiver. The
first untrusted sender is the hand-off (``boundary``), unless the trusted receiver recorded
an authenticated submission: then the submitting client is the origin. A fetch hop
(POP3/IMAP pick-up) in the trusted part restarts the walk at the mailbox it fetched from.
Below the hand-off, a known provider's own hops are read one level deeper only when they
are consistent with the hand-off hop (``provider-attested``); everything else is claimed.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import StrEnum
from functools import lru_cache
from typing import NamedTuple

from stopitd.analysis import ipaddr, providers
from stopitd.analysis.headers import HeaderField
from stopitd.analysis.ipaddr import Network
from stopitd.analysis.model import Finding, Hop, HopStatus, IpClass, Mode, Reason, Trust
from stopitd.analysis.policy import TrustPolicy
from stopitd.analysis.providers import Provider
from stopitd.analysis.received import HopParts

# A hop as the walk reads it: a Hop, or the parts of one straight from the parser (then
# the walk builds the Hop once, labelled, instead of relabelling a copy).
AnyHop = Hop | HopParts

CLOCK_SKEW = timedelta(minutes=10)
_FETCH_PROTOCOLS = ("POP", "IMAP")


class Why(StrEnum):
    """Why a receiver is trusted: it decides what an authenticated submission means."""

    TOP = "top"  # only the top receiver (nothing configured)
    OURS = "ours"  # our configured networks, hosts or MSAs
    PROVIDER = "provider"  # the provider our mailbox sits at


class Walk(NamedTuple):
    """What ``walk`` returns (a NamedTuple: built once per message, faster than a frozen
    dataclass)."""

    hops: tuple[Hop, ...]  # labelled
    boundary_index: int | None  # the hop whose sender is the hand-off
    findings: tuple[Finding, ...] = ()
    origin_index: int | None = None  # the hop whose sender is the best origin estimate
    mode: Mode = Mode.UNKNOWN
    internal: bool = False
    provider: str = ""  # the provider that handed off / attested / hosts the submission
    own_provider: str = ""  # the provider whose hops we trusted as our own
    reasons: tuple[Reason, ...] = ()
    policy_configured: bool = False  # any trust list set (else: top receiver only)


@dataclass(frozen=True, slots=True)
class _Compiled:
    trusted: tuple[Network, ...]
    msa: tuple[Network, ...]
    ours: tuple[Network, ...]  # trusted + msa
    hosts: tuple[str, ...]
    providers: tuple[Provider, ...]
    configured: bool


@lru_cache(maxsize=32)
def _compile(policy: TrustPolicy) -> _Compiled:
    trusted = ipaddr.networks(policy.trusted_networks)
    msa = ipaddr.networks(policy.msa_networks)
    return _Compiled(
        trusted=trusted,
        msa=msa,
        ours=trusted + msa,
        hosts=policy.trusted_hosts,
        providers=providers.enabled(policy.providers),
        configured=bool(
            policy.trusted_networks or policy.trusted_hosts or policy.msa_networks
            or policy.providers
        ),
    )


def is_fetch(hop: AnyHop) -> bool:
    return hop.with_.upper().startswith(_FETCH_PROTOCOLS)


def _non_public(hop: AnyHop) -> bool:
    return hop.ip_class is not IpClass.PUBLIC


def _self_hop(hop: AnyHop) -> bool:
    """Loopback, or a link-local address of the receiving host itself (Exchange ``mapi``)."""
    if hop.ip_class is IpClass.LOOPBACK:
        return True
    if hop.ip_class is IpClass.LINK_LOCAL:
        by = hop.by.lower()
        return bool(by) and by in (hop.helo.lower(), hop.rdns.lower())
    return False


def _ours(hop: AnyHop, c: _Compiled) -> bool:
    """The hop's sender is one of our own systems."""
    if hop.ip and c.ours and ipaddr.in_networks(hop.ip, c.ours):
        return True
    if not c.hosts:
        return False  # no trusted host names: the usual case
    if providers.host_in(hop.rdns, c.hosts):
        return True
    return _non_public(hop) and providers.host_in(hop.helo, c.hosts)


def sender_of(hop: AnyHop, p: Provider) -> bool:
    """The hop's sender is one of the provider's own servers."""
    if hop.ip and providers.owns_ip(p, hop.ip):
        return True
    if providers.host_in(hop.rdns, p.host_suffixes):
        return True
    return (not hop.ip or _non_public(hop)) and providers.host_in(hop.helo, p.host_suffixes)


def identify(hop: AnyHop, provs: tuple[Provider, ...]) -> Provider | None:
    """The provider the hop's sender belongs to, by its address or its recorded rDNS."""
    for p in provs:
        if hop.ip and providers.owns_ip(p, hop.ip):
            return p
    for p in provs:
        if providers.host_in(hop.rdns, p.host_suffixes):
            return p
    return None


def _own_provider(
    hops: Sequence[AnyHop], start: int, provs: tuple[Provider, ...]
) -> Provider | None:
    """The provider our mailbox sits at: the one that owns the top receiver."""
    if not provs:
        return None
    for hop in hops[start:]:
        if hop.by:
            return next((p for p in provs if providers.owns_host(p, hop.by)), None)
    return None


@dataclass(slots=True)
class _State:
    labels: list[Trust]
    reasons: list[Reason] = field(default_factory=list)
    boundary: int | None = None
    origin: int | None = None
    mode: Mode = Mode.UNKNOWN
    internal: bool = False
    provider: str = ""
    own: Provider | None = None


# The policy compiled last: a run analyses every message under one policy object, and
# lru_cache would hash that whole dataclass (every trust list) once per message to find it.
_last: list[tuple[TrustPolicy, _Compiled]] = []


def _compiled(policy: TrustPolicy) -> _Compiled:
    if _last and _last[0][0] is policy:
        return _last[0][1]
    c = _compile(policy)
    _last[:] = [(policy, c)]
    return c


def walk(hops: Sequence[AnyHop], fields: list[HeaderField], policy: TrustPolicy) -> Walk:
    """Label every hop and find the hand-off. Empty policy: only the top receiver is trusted."""
    del fields  # reserved: trace headers other than Received
    c = _compiled(policy)
    st = _State([Trust.CLAIMED] * len(hops))  # labels
    st.own = _own_provider(hops, 0, c.providers)
    if st.own is not None:
        st.reasons.append(
            Reason("own-provider", f"Our mailbox is hosted at {st.own.name}: its hops are trusted.")
        )
    why = Why.PROVIDER if st.own is not None else Why.TOP
    last_trusted: int | None = None
    last_why = why
    receiver_is_msa = False  # the hop above was sent by one of our MSAs
    for i, hop in enumerate(hops):
        if hop.status is not HopStatus.PARSED:
            st.labels[i] = Trust.TRUSTED
            if is_fetch(hop):
                st.reasons.append(
                    Reason("fetch-restart", f"Hop {i + 1} is a mailbox pick-up ({hop.with_}): "
                           "the walk restarts at the mailbox it was fetched from.")
                )
                st.own = _own_provider(hops, i + 1, c.providers) or st.own
                why = Why.PROVIDER if st.own is not None else Why.TOP
            continue
        self_hop = _self_hop(hop)
        if self_hop and hop.auth:  # e.g. webmail on the receiving host itself
            msa_self = receiver_is_msa or ipaddr.in_networks(hop.ip, c.msa)
            _submission(st, i, hop, Why.OURS if msa_self else why)
            break
        if self_hop:  # the trusted receiver talking to itself
            st.labels[i] = Trust.TRUSTED
            last_trusted = i if last_trusted is None else last_trusted
            continue
        trusted_by: Why | None = None
        if i == 0 or st.labels[i - 1] is not Trust.TRUSTED:
            receiver_is_msa = False
        if _ours(hop, c):
            trusted_by = Why.OURS
        elif st.own is not None and sender_of(hop, st.own):
            trusted_by = Why.PROVIDER
        if hop.auth and hop.ip and ipaddr.in_networks(hop.ip, c.msa):
            _submission(st, i, hop, Why.OURS)
            break
        if trusted_by is not None:
            st.labels[i] = Trust.TRUSTED
            last_trusted, last_why = i, trusted_by
            why = trusted_by
            receiver_is_msa = bool(hop.ip) and ipaddr.in_networks(hop.ip, c.msa)
            continue
        if hop.auth or receiver_is_msa:  # our MSA only takes submissions, as SpamAssassin
            _submission(st, i, hop, Why.OURS if receiver_is_msa else why)
        else:
            st.boundary = st.origin = i
            st.labels[i] = Trust.BOUNDARY
            st.mode = Mode.HANDOFF
            _deeper(hops, st, i, c)
        break
    else:
        _ran_out(hops, st, last_trusted, last_why)
    return Walk(  # by position: a class called with keywords passes them in a dict
        _with_delays(hops, st.labels),  # hops
        st.boundary,  # boundary_index
        (),  # findings
        st.origin,  # origin_index
        st.mode,
        st.internal,
        st.provider,
        st.own.name if st.own is not None else "",  # own_provider
        tuple(st.reasons),  # reasons
        c.configured,  # policy_configured
    )


def _submission(st: _State, i: int, hop: AnyHop, why: Why) -> None:
    st.boundary = st.origin = i
    st.labels[i] = Trust.BOUNDARY
    st.mode = Mode.SUBMISSION
    where = f"hop {i + 1} ({hop.auth})"
    if why is Why.OURS:
        st.internal = True
        st.reasons.append(Reason(
            "msa-submission",
            f"Our own server recorded an authenticated submission at {where}: the sender is "
            "one of our users (internal sender).",
        ))
    elif why is Why.PROVIDER and st.own is not None:
        st.provider = st.own.name
        st.reasons.append(Reason(
            "provider-submission",
            f"{st.own.name} recorded an authenticated submission at {where}: the client is "
            f"a {st.own.name} account holder.",
        ))
    else:
        st.reasons.append(Reason(
            "authenticated-submission",
            f"The top receiver recorded an authenticated submission at {where}; set "
            "trust.msa_networks to tell whether it is one of ours.",
        ))


def _ran_out(hops: Sequence[AnyHop], st: _State, last: int | None, why: Why) -> None:
    """Every parsed hop was trusted: the message started inside (or at our provider)."""
    if last is None:
        st.reasons.append(Reason("no-relay", "No Received header names a connecting address."))
        return
    st.boundary = st.origin = last
    st.labels[last] = Trust.BOUNDARY
    if why is not Why.PROVIDER:
        st.mode = Mode.INTERNAL
        st.internal = True
        st.reasons.append(Reason(
            "internal-origin",
            f"Every hop is inside our trusted networks: the message started at "
            f"{hops[last].ip} (hop {last + 1}), an internal system.",
        ))
    else:
        st.mode = Mode.UNKNOWN
        st.provider = st.own.name if st.own is not None else ""
        st.reasons.append(Reason(
            "provider-hides-client",
            f"Every hop is inside {st.provider or 'the top receiver'}; it recorded no client "
            "address.",
        ))


def _consistent(upper: AnyHop, lower: AnyHop, p: Provider) -> bool:
    """Does ``lower`` look recorded by the server that sent ``upper`` (names and times)?"""
    names = {n.lower().rstrip(".") for n in (upper.rdns, upper.helo) if n}
    by = lower.by.lower().rstrip(".")
    if not (by in names or providers.owns_host(p, lower.by)):
        return False
    if upper.date is not None and lower.date is not None:
        if lower.date > upper.date + CLOCK_SKEW:
            return False
        if upper.date - lower.date > timedelta(days=2):
            return False
    return True


def _deeper(hops: Sequence[AnyHop], st: _State, b: int, c: _Compiled) -> None:
    """From the hand-off, read one provider's own hops (provider-attested)."""
    p = identify(hops[b], c.providers)
    if p is None:
        st.reasons.append(Reason(
            "handoff",
            f"{hops[b].ip} handed the message to our side (hop {b + 1}); nothing below it is "
            "vouched for.",
        ))
        return
    st.provider = p.name
    lower = next((j for j in range(b + 1, len(hops)) if hops[j].by), None)
    if lower is None or not _consistent(hops[b], hops[lower], p):
        st.reasons.append(Reason(
            "provider-chain-inconsistent" if lower is not None else "handoff",
            f"{hops[b].ip} belongs to {p.name}, but the hops below it do not match its servers "
            "or times; only the hand-off is used." if lower is not None else
            f"{hops[b].ip} belongs to {p.name}; it left no hop below the hand-off.",
        ))
        return
    for k in range(b + 1, len(hops)):
        hop = hops[k]
        if hop.by and not providers.owns_host(p, hop.by):
            break  # the chain has left the provider
        st.labels[k] = Trust.PROVIDER_ATTESTED
        if not hop.ip or sender_of(hop, p):
            continue
        if hop.status is HopStatus.UNPARSEABLE:
            continue
        st.origin = k
        st.mode = Mode.PROVIDER_ATTESTED
        how = f"an authenticated submission ({hop.auth})" if hop.auth else "a hand-off"
        st.reasons.append(Reason(
            "provider-attested",
            f"{p.name} handed the message to us from {hops[b].ip}; its own hops are consistent "
            f"and record {how} from {hop.ip} (hop {k + 1}).",
        ))
        return
    st.mode = Mode.UNKNOWN
    st.reasons.append(Reason(
        "provider-hides-client",
        f"{p.name} handed the message to us from {hops[b].ip} but its hops do not record the "
        f"client's address: ask {p.abuse_domain}'s abuse desk with the identifiers below.",
    ))


def _with_delays(hops: Sequence[AnyHop], labels: list[Trust]) -> tuple[Hop, ...]:
    """Label each hop and give it the seconds since the nearest dated hop below it."""
    out: list[Hop] = []
    below: datetime | None = None  # annotated: mypyc (and a reader) cannot infer it
    for hop, trust in zip(reversed(hops), reversed(labels), strict=True):  # bottom first
        delay: float | None = None
        if hop.date is not None:
            if below is not None:
                delay = (hop.date - below).total_seconds()
            below = hop.date
        if isinstance(hop, Hop):
            out.append(_relabel(hop, trust, delay))
        else:
            out.append(Hop(*hop, trust, delay))
    out.reverse()
    return tuple(out)


def _relabel(h: Hop, trust: Trust, delay: float | None) -> Hop:
    """``replace(h, trust=..., delay_s=...)``, spelt out: dataclasses.replace is slow."""
    return Hop(
        h.raw, h.status, h.ip, h.ip_class, h.rdns, h.helo, h.by, h.with_, h.id, h.for_,
        h.envelope_from, h.date, h.auth, trust, delay,
    )
