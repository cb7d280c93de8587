"""The daemon's worker treats DNS as down for `dns.retry_after`, then asks again."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace

import pytest

from stopitd import verify, worker
from stopitd.analysis.model import AuthVerdict, Envelope
from stopitd.config import Settings
from tests.auth_fixtures import (  # noqa: F401  (fixtures)
    Key,
    base_message,
    deliver,
    dkim_sign,
    dns_server,
    dns_settings,
    keys,
    no_system_resolver,
    publish_sender,
)
from tests.dnsserver import DnsTestServer


@pytest.fixture(autouse=True)
def fresh_verifiers() -> Iterator[None]:
    verify.reset_default_verifier()
    yield
    verify.reset_default_verifier()


def _report(keys: dict[str, Key]) -> bytes:  # noqa: F811
    """A reporter's forward-as-attachment of a signed, delivered original."""
    original = deliver(dkim_sign(base_message(), keys["rsa"], "rsa1"))
    return (
        b"From: Jane Doe <jdoe@example.edu>\r\nTo: stopit@localhost\r\n"
        b"Subject: Fwd: harassment\r\nMIME-Version: 1.0\r\n"
        b'Content-Type: multipart/mixed; boundary="b1"\r\n\r\n'
        b"--b1\r\nContent-Type: text/plain\r\n\r\nSee attached.\r\n"
        b"--b1\r\nContent-Type: message/rfc822\r\n\r\n" + original + b"\r\n--b1--\r\n"
    )


@pytest.mark.parametrize(("retry_after", "expect_pass"), [(3600.0, False), (1e-6, True)])
def test_dns_is_asked_again_only_after_the_back_off(
    dns_server: DnsTestServer,  # noqa: F811
    keys: dict[str, Key],  # noqa: F811
    retry_after: float,
    expect_pass: bool,
) -> None:
    publish_sender(dns_server, keys)
    settings = Settings(dns=replace(dns_settings(dns_server), retry_after=retry_after))
    verify.default_verifier(settings.dns).switch_dns_off("resolver timed out (test)")
    result = worker.analyse(_report(keys), Envelope(), settings)
    (original,) = result.originals
    results = {sig.result for sig in original.auth.dkim}
    if expect_pass:
        assert results == {AuthVerdict.PASS}
    else:
        assert results == {AuthVerdict.TEMPERROR}
        assert any(f.code == "dns-off" for f in original.findings)
