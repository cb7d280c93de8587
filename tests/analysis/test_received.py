"""Received values of every dialect -> the hop a reader of the header would write down.

Rows live in fixtures/received/received.tsv (one real-shaped value per row); the same rows
are checked against SpamAssassin's relay parser, the reference the parser is held to.
"""

from __future__ import annotations

import ipaddress
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from stopitd.analysis.model import HopStatus, IpClass
from stopitd.analysis.received import parse_received

ROOT = Path(__file__).resolve().parents[2]
TSV = ROOT / "fixtures" / "received" / "received.tsv"
SA_RECEIVED = Path("/usr/share/perl5/Mail/SpamAssassin/Message/Metadata/Received.pm")


@dataclass(frozen=True)
class Row:
    dialect: str
    status: str
    ip: str
    rdns: str
    helo: str
    by: str
    with_: str
    auth: str
    date: str
    sa: str
    raw: str


def _rows() -> list[Row]:
    rows = []
    for line in TSV.read_text(encoding="utf-8").splitlines():
        if not line or line.startswith("#") or line.startswith("dialect\t"):
            continue
        cells = [("" if c == "-" else c) for c in line.split("\t", 10)]
        rows.append(Row(*cells))
    return rows


ROWS = _rows()


def test_the_table_covers_every_dialect_named_in_the_issue() -> None:
    dialects = {r.dialect for r in ROWS}
    for d in ("postfix", "sendmail", "exim", "qmail", "exchange", "m365", "gmail", "yahoo",
              "icloud", "zimbra", "courier", "communigate", "domino", "opensmtpd", "ses",
              "sendgrid", "fetch"):
        assert d in dialects, d
    assert len(ROWS) >= 240


@pytest.mark.parametrize("row", ROWS, ids=[f"{i}-{r.dialect}" for i, r in enumerate(ROWS)])
def test_received_value_gives_expected_hop(row: Row) -> None:
    hop = parse_received(row.raw)
    got = (hop.status.value, hop.ip, hop.rdns, hop.helo, hop.by, hop.with_, hop.auth,
           hop.date.strftime("%Y-%m-%dT%H:%M:%SZ") if hop.date else "")
    want = (row.status, row.ip, row.rdns, row.helo, row.by, row.with_, row.auth, row.date)
    assert got == want
    assert hop.raw == row.raw


def test_ip_never_comes_from_helo_by_or_id() -> None:
    hop = parse_received(
        "from [203.0.113.9] (helo [198.51.100.1]) by 192.0.2.1 with SMTP id 10.0.0.1; "
        "Wed, 25 Nov 2026 10:00:00 +0000"
    )
    assert hop.ip == "203.0.113.9"
    hop = parse_received(
        "from laptop (unknown [198.51.100.7]) by EX01 with Microsoft SMTP Server "
        "id 15.1.2375.31; Wed, 25 Nov 2026 10:00:00 +0000"
    )
    assert hop.ip == "198.51.100.7" and hop.rdns == ""


@pytest.mark.parametrize(
    ("written", "ip", "kind"),
    [
        ("[IPv6:2001:DB8:0:0:0:0:0:1]", "2001:db8::1", IpClass.RESERVED),
        ("[::ffff:192.0.2.1]", "192.0.2.1", IpClass.RESERVED),
        ("[IPv6:::ffff:10.1.2.3]", "10.1.2.3", IpClass.PRIVATE),
        ("[64:ff9b::cb00:7101]", "203.0.113.1", IpClass.RESERVED),
        ("[fe80::1%eth0]", "fe80::1", IpClass.LINK_LOCAL),
        ("[fd12:3456:789a::1]", "fd12:3456:789a::1", IpClass.ULA),
        ("[100.64.0.1]", "100.64.0.1", IpClass.CGNAT),
        ("[172.16.5.4]", "172.16.5.4", IpClass.PRIVATE),
        ("[81.2.69.160]", "81.2.69.160", IpClass.PUBLIC),
        ("[2a00:1450:4864:20::145]", "2a00:1450:4864:20::145", IpClass.PUBLIC),
        ("[127.0.0.1]", "127.0.0.1", IpClass.LOOPBACK),
        ("[2001:db8:0:1:1:1:1:1]", "2001:db8:0:1:1:1:1:1", IpClass.RESERVED),
    ],
)
def test_addresses_are_normalised_and_classified(written: str, ip: str, kind: IpClass) -> None:
    hop = parse_received(
        f"from h.example (h.example {written}) by mx.example.org (Postfix) with ESMTP id 1; "
        "Wed, 25 Nov 2026 10:00:00 +0000"
    )
    assert (hop.status, hop.ip, hop.ip_class) == (HopStatus.PARSED, ip, kind)


def test_port_after_the_address_is_dropped() -> None:
    hop = parse_received(
        "from mail.example.com ([192.0.2.5]:51234 helo=mail.example.com) by mx.example.org "
        "with esmtps (Exim 4.96) id 1t; Wed, 25 Nov 2026 10:00:00 +0000"
    )
    assert hop.ip == "192.0.2.5"


def test_dates_are_utc_and_sendgrid_date_without_semicolon_is_read() -> None:
    hop = parse_received(
        "by filter0001.sendgrid.net with SMTP id f-1 2026-11-25 10:00:00.856029494 +0200 UTC"
    )
    assert hop.date is not None and hop.date.isoformat() == "2026-11-25T08:00:00+00:00"


def test_envelope_from_and_for_are_read() -> None:
    hop = parse_received(
        "from mx.example.com ([192.0.2.22]) by mx.example.org with esmtp (Exim 4.92) "
        "(envelope-from <a@example.com>) id 1t-0 for b@example.org; "
        "Wed, 25 Nov 2026 10:00:00 +0000"
    )
    assert (hop.envelope_from, hop.for_, hop.id) == ("a@example.com", "b@example.org", "1t-0")


def _sa_oracle(lines: list[str]) -> list[list[str]]:
    script = r"""
use strict; use warnings;
use Mail::SpamAssassin::Message::Metadata;
my $md = bless({}, 'Mail::SpamAssassin::Message::Metadata');
while (my $line = <STDIN>) {
  chomp $line;
  my $r = $md->parse_received_line($line);
  if (!defined $r) { print "unparseable\n"; next; }
  if (!$r) { print "skipped\n"; next; }
  print join("\t", "parsed", $r->{ip}, $r->{rdns}, $r->{helo}, $r->{by}), "\n";
}
"""
    if shutil.which("perl") is None or not SA_RECEIVED.exists():
        pytest.fail("SpamAssassin is needed as the reference: apt-get install spamassassin")
    out = subprocess.run(
        ["perl", "-e", script], input="\n".join(lines) + "\n", capture_output=True,
        text=True, check=True, timeout=120,
    ).stdout.splitlines()
    return [line.split("\t") for line in out]


def _sa_form(text: str) -> str:
    """SpamAssassin writes [ ] ( ) < > | # as '!' in its relay fields."""
    for c in "[]()<>|#":
        text = text.replace(c, "!")
    return text


def _ip(text: str) -> str:
    try:
        ip = ipaddress.ip_address(text)
    except ValueError:
        return text
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        return str(ip.ipv4_mapped)
    return str(ip)


def test_agreement_with_spamassassin_relay_parser() -> None:
    """Every row marked 'agree' gives SpamAssassin's relay ip, rdns, helo, by (and status)."""
    rows = [r for r in ROWS if r.sa == "agree"]
    sa = _sa_oracle([r.raw for r in rows])
    assert len(sa) == len(rows)
    mismatches = []
    for row, theirs in zip(rows, sa, strict=True):
        hop = parse_received(row.raw)
        if theirs[0] == "parsed":
            want = ("parsed", _ip(theirs[1]), theirs[2], theirs[3], theirs[4])
            got = (hop.status.value, hop.ip, hop.rdns, _sa_form(hop.helo), _sa_form(hop.by))
        else:
            want, got = (theirs[0],), (hop.status.value,)
        if want != got:
            mismatches.append((row.raw, want, got))
    assert not mismatches
    assert len(rows) >= 230


_TEXT = st.text(
    alphabet=st.sampled_from(list("from by with id for ()[]<>;:.@=-_ 0123456789abcdefHELO\t")),
    max_size=300,
)


@settings(deadline=None, max_examples=400, suppress_health_check=[HealthCheck.too_slow])
@given(_TEXT)
def test_parser_never_raises(value: str) -> None:
    hop = parse_received(value)
    assert hop.raw == value
    assert hop.status in HopStatus


@settings(deadline=None, max_examples=200)
@given(st.sampled_from([r.raw for r in ROWS]), st.integers(0, 400), st.text(max_size=20))
def test_parser_never_raises_on_damaged_real_values(raw: str, cut: int, junk: str) -> None:
    parse_received(raw[:cut] + junk + raw[cut:])


@pytest.mark.timeout(60)
def test_one_megabyte_header_line_finishes() -> None:
    unit = "from a (b [192.0.2.1]) (((( [[[[ by c with d id e for <f@g> "
    value = unit * (1_048_576 // len(unit))
    hop = parse_received(value + "; Wed, 25 Nov 2026 10:00:00 +0000")
    assert hop.date is not None
    parse_received("(" * 1_048_576)
    parse_received("from " + "x" * 1_048_576)
