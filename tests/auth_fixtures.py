"""Shared pieces of the authentication tests: keys made in the test, signing, the DNS server.

Import the fixtures you use by name (pytest only sees fixtures in the test module's
namespace or in conftest.py); ``no_system_resolver`` is autouse and must be imported by
every module that could reach DNS.
"""

from __future__ import annotations

import base64
import shutil
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import dkim
import dns.resolver
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519, rsa

from stopitd import verify
from stopitd.config import DnsSettings
from tests.dnsserver import DnsTestServer

SENDER_DOMAIN = "sender.example"
SENDER_IP = "192.0.2.10"
OTHER_IP = "198.51.100.77"
OUR_MX = "mx.example.edu"


@dataclass(frozen=True)
class Key:
    algorithm: bytes  # b"rsa-sha256" or b"ed25519-sha256"
    private: bytes  # what dkimpy's sign() takes
    record: str  # the DNS TXT record that publishes it


def rsa_key(bits: int = 2048) -> Key:
    k = rsa.generate_private_key(public_exponent=65537, key_size=bits)
    private = k.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.TraditionalOpenSSL,
        serialization.NoEncryption(),
    )
    public = k.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return Key(b"rsa-sha256", private, f"v=DKIM1; k=rsa; p={base64.b64encode(public).decode()}")


def ed25519_key() -> Key:
    k = ed25519.Ed25519PrivateKey.generate()
    seed = k.private_bytes(
        serialization.Encoding.Raw, serialization.PrivateFormat.Raw, serialization.NoEncryption()
    )
    public = k.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return Key(
        b"ed25519-sha256",
        base64.b64encode(seed),
        f"v=DKIM1; k=ed25519; p={base64.b64encode(public).decode()}",
    )


@pytest.fixture(scope="session")
def keys() -> dict[str, Key]:
    """Keys made once per session (RSA generation is the slow part)."""
    return {"rsa": rsa_key(), "rsa2": rsa_key(), "ed25519": ed25519_key(), "arc": rsa_key()}


@pytest.fixture(autouse=True)
def no_system_resolver(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Nothing in these tests may read /etc/resolv.conf or use the system resolver."""

    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError("a test tried to use the system resolver (/etc/resolv.conf)")

    monkeypatch.setattr(dns.resolver.Resolver, "read_resolv_conf", refuse)
    monkeypatch.setattr(dns.resolver, "default_resolver", None)
    verify.reset_default_verifier()
    yield
    verify.reset_default_verifier()


@pytest.fixture
def dns_server() -> Iterator[DnsTestServer]:
    with DnsTestServer() as server:
        yield server


def dns_settings(server: DnsTestServer, timeout: float = 2.0, budget: float = 5.0) -> DnsSettings:
    return DnsSettings(
        enabled=True, nameservers=(server.nameserver,), timeout=timeout, budget=budget
    )


def publish_sender(server: DnsTestServer, keys: dict[str, Key], dmarc: str = "p=reject") -> None:
    """The sender's zone: both DKIM keys, SPF for its relay, DMARC."""
    server.add(f"rsa1._domainkey.{SENDER_DOMAIN}", "TXT", keys["rsa"].record)
    server.add(f"ed1._domainkey.{SENDER_DOMAIN}", "TXT", keys["ed25519"].record)
    server.add(SENDER_DOMAIN, "TXT", "v=spf1 ip4:192.0.2.0/24 -all")
    server.add(SENDER_DOMAIN, "MX", (10, f"mail.{SENDER_DOMAIN}"))
    server.add(f"mail.{SENDER_DOMAIN}", "A", SENDER_IP)
    server.add(f"_dmarc.{SENDER_DOMAIN}", "TXT", f"v=DMARC1; {dmarc}; rua=mailto:d@{SENDER_DOMAIN}")


def base_message(
    *,
    from_addr: str = f"Alice Example <alice@{SENDER_DOMAIN}>",
    subject: str = "You again",
    body: str = "I know where you study.\r\nStop ignoring me.\r\n",
) -> bytes:
    """A message as Thunderbird submits it (before any MTA touched it), CRLF."""
    return (
        f"Message-ID: <5f1e2d3c-0b1a-4c5d-9e8f-7a6b5c4d3e2f@{SENDER_DOMAIN}>\r\n"
        "Date: Wed, 25 Nov 2026 09:11:58 +0000\r\n"
        "MIME-Version: 1.0\r\n"
        "User-Agent: Mozilla Thunderbird\r\n"
        "Content-Language: en-US\r\n"
        "To: Bob Student <bob@example.edu>\r\n"
        f"From: {from_addr}\r\n"
        f"Subject: {subject}\r\n"
        "Content-Type: text/plain; charset=UTF-8; format=flowed\r\n"
        "Content-Transfer-Encoding: 7bit\r\n"
        "\r\n"
        f"{body}"
    ).encode()


def dkim_sign(message: bytes, key: Key, selector: str, domain: str = SENDER_DOMAIN) -> bytes:
    """Prepend a DKIM-Signature made with dkimpy, as the sender's outbound MTA does."""
    header = dkim.sign(
        message,
        selector.encode(),
        domain.encode(),
        key.private,
        signature_algorithm=key.algorithm,
        include_headers=[b"from", b"to", b"subject", b"date", b"message-id", b"content-type"],
    )
    return header + message


def received(ip: str = SENDER_IP, helo: str = f"mail.{SENDER_DOMAIN}", by: str = OUR_MX) -> bytes:
    """The Received header Postfix writes on the MX that took the hand-off."""
    return (
        f"Received: from {helo} ({helo} [{ip}])\r\n"
        f"\tby {by} (Postfix) with ESMTPS id 4Xk9Qw1TzVz9sWq\r\n"
        "\tfor <bob@example.edu>; Wed, 25 Nov 2026 09:12:03 +0000 (UTC)\r\n"
    ).encode()


def deliver(
    signed: bytes,
    *,
    ip: str = SENDER_IP,
    envelope_from: str = f"alice@{SENDER_DOMAIN}",
    above: bytes = b"",
    below: bytes = b"",
    submitted: bool = True,
) -> bytes:
    """The message as it sits in Bob's mailbox: Return-Path, stamps above, our Received.

    ``below`` is inserted under our Received header: what the sender's side wrote.
    ``submitted`` adds the sender's submission hop (False: ``signed`` already has it).
    """
    return (
        f"Return-Path: <{envelope_from}>\r\n".encode()
        + above
        + received(ip)
        + below
        + (submission_hop() if submitted else b"")
        + signed
    )


def submission_hop() -> bytes:
    """Alice's client submitting to her provider's MSA."""
    return (
        f"Received: from [10.0.0.5] (unknown [203.0.113.50])\r\n"
        f"\tby mail.{SENDER_DOMAIN} (Postfix) with ESMTPSA id 4Xk9Qv6m2Hz1xyz\r\n"
        "\tfor <bob@example.edu>; Wed, 25 Nov 2026 09:11:59 +0000 (UTC)\r\n"
    ).encode()


def arc_seal(message: bytes, key: Key, selector: str, domain: str, srv_id: str) -> bytes:
    """Add one ARC set as a forwarding ADMD does (its A-R must name ``srv_id``)."""
    headers = dkim.arc_sign(
        message,
        selector.encode(),
        domain.encode(),
        key.private,
        srv_id.encode(),
        include_headers=[b"from", b"to", b"subject", b"date", b"message-id"],
    )
    assert headers, "dkimpy refused to seal (no Authentication-Results for the srv_id?)"
    return b"".join(headers) + message


# --- an independent implementation: Mail::DKIM (Perl, installed with spamassassin) --------

# Signs or ARC-seals with Mail::DKIM; reads the message on stdin, writes the new header(s)
# and the message. Arguments: dkim KEYFILE DOMAIN SELECTOR | arc KEYFILE DOMAIN SELECTOR SRVID
PERL_SIGNER = r"""
use strict;
use warnings;
use Mail::DKIM::Signer;
use Mail::DKIM::ARC::Signer;
use Mail::DKIM::TextWrap;

my ($mode, $keyfile, $domain, $selector, $srvid) = @ARGV;
binmode STDIN;
binmode STDOUT;
my $message = do { local $/; <STDIN> };
$message =~ s/\015?\012/\015\012/g;

my $signer;
if ($mode eq 'dkim') {
    $signer = Mail::DKIM::Signer->new(
        Algorithm => 'rsa-sha256',
        Method    => 'relaxed/relaxed',
        Domain    => $domain,
        Selector  => $selector,
        KeyFile   => $keyfile,
    );
} elsif ($mode eq 'arc') {
    $signer = Mail::DKIM::ARC::Signer->new(
        Algorithm => 'rsa-sha256',
        Domain    => $domain,
        SrvId     => $srvid,
        Selector  => $selector,
        KeyFile   => $keyfile,
        Chain     => 'ar',
    );
} else {
    die "usage: $0 dkim|arc KEYFILE DOMAIN SELECTOR [SRVID]\n";
}
$signer->PRINT($message);
$signer->CLOSE;
if ($mode eq 'dkim') {
    print $signer->signature->as_string, "\015\012", $message;
} else {
    die "ARC seal not made: " . $signer->result . " " . ($signer->result_detail // '') . "\n"
        unless $signer->result eq 'sealed';
    my $headers = $signer->as_string;
    $headers =~ s/\015?\012/\015\012/g;
    $headers .= "\015\012" unless $headers =~ /\015\012\z/;
    print $headers, $message;
}
"""


def perl_sign(tmp_path: Path, message: bytes, key: Key, mode: str, *args: str) -> bytes:
    """Sign (``dkim``) or ARC-seal (``arc``, with SRVID) with Perl's Mail::DKIM."""
    perl = shutil.which("perl")
    assert perl, "perl is missing: apt-get install perl libmail-dkim-perl (or make system-deps)"
    check = subprocess.run(
        [perl, "-MMail::DKIM::ARC::Signer", "-e", "1"], capture_output=True, check=False
    )
    assert check.returncode == 0, (
        "Perl's Mail::DKIM is missing: apt-get install libmail-dkim-perl"
        " (spamassassin pulls it in: make system-deps)"
    )
    keyfile = tmp_path / f"key-{abs(hash(key.private))}.pem"
    keyfile.write_bytes(key.private)
    done = subprocess.run(
        [perl, "-e", PERL_SIGNER, mode, str(keyfile), *args],
        input=message,
        capture_output=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr.decode(errors="replace")
    return done.stdout
