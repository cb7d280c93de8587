"""DKIM per signature and the ARC chain, with dkimpy and a recording ``dnsfunc``.

dkimpy answers True/False and swallows DNS and key errors into False; the recording
``dnsfunc`` remembers what each key lookup gave (the TXT text, no record, a temporary
failure), which tells ``temperror`` (retry later) from ``permerror`` (no usable key) from
``fail`` (the key is there and the signature does not verify), and keeps the key text as
evidence that outlives a key rotation.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

import dkim
from dkim.util import parse_tag_value

from stopitd.analysis.model import ArcInstance, ArcResult, AuthVerdict, DkimSignature
from stopitd.verify.dnsclient import DnsClient, DnsTempError

_QUIET = logging.Logger("stopitd.verify.dkimpy", level=logging.CRITICAL + 1)
_QUIET.addHandler(logging.NullHandler())
_QUIET.propagate = False


@dataclass(slots=True)
class KeyLookup:
    text: str = ""  # the TXT record used
    missing: bool = False  # no such name, or no TXT record there
    temperror: str = ""


@dataclass(slots=True)
class KeyLookups:
    """dkimpy's ``dnsfunc(name, timeout=...)``: TXT text or None; records each outcome."""

    client: DnsClient
    seen: dict[str, KeyLookup] = field(default_factory=dict)

    def __call__(self, name: bytes | str, timeout: float = 5) -> bytes | None:
        del timeout  # the client applies its own timeout and the message's budget
        qname = name.decode("ascii", "replace") if isinstance(name, bytes) else name
        qname = qname.rstrip(".").lower()
        try:
            records, _ = self.client.txt(qname)
        except DnsTempError as e:
            self.seen[qname] = KeyLookup(temperror=str(e))
            raise dkim.DnsTimeoutError(str(e)) from e
        if not records:
            self.seen[qname] = KeyLookup(missing=True)
            return None
        chosen = next((r for r in records if b"p=" in r), records[0])
        self.seen[qname] = KeyLookup(text=chosen.decode("ascii", "replace"))
        return chosen

    def get(self, selector: str, domain: str) -> KeyLookup | None:
        return self.seen.get(f"{selector}._domainkey.{domain}".lower().rstrip("."))


def _key_problem(lookup: KeyLookup | None, name: str) -> tuple[AuthVerdict, str] | None:
    """Why a False from dkimpy was not the signature's fault, if it was not."""
    if lookup is None:
        return None
    if lookup.temperror:
        return AuthVerdict.TEMPERROR, lookup.temperror
    if lookup.missing:
        return AuthVerdict.PERMERROR, f"no key record at {name}"
    try:
        dkim.evaluate_pk(name.encode(), lookup.text.encode())
    except Exception as e:  # dkimpy raises several kinds for a broken key record
        return AuthVerdict.PERMERROR, f"unusable key record: {e}"
    return None


def _text(value: bytes | None) -> str:
    return value.decode("ascii", "replace") if value else ""


def _one_signature(d: dkim.DKIM, idx: int, value: bytes, lookups: KeyLookups) -> DkimSignature:
    try:
        tags = parse_tag_value(value)
    except Exception as e:
        return DkimSignature("", "", "", AuthVerdict.PERMERROR, f"unreadable signature: {e}")
    domain, selector = _text(tags.get(b"d")).lower(), _text(tags.get(b"s"))
    algorithm = _text(tags.get(b"a"))
    name = f"{selector}._domainkey.{domain}"

    def sig(result: AuthVerdict, reason: str = "") -> DkimSignature:
        lookup = lookups.get(selector, domain)
        key = lookup.text if lookup else ""
        return DkimSignature(domain, selector, algorithm, result, reason, key)

    try:
        ok = d.verify(idx=idx, dnsfunc=lookups)
    except dkim.ValidationError as e:
        reason = str(e)
        if reason.startswith("body hash mismatch"):
            return sig(AuthVerdict.FAIL, "body hash mismatch: the body was changed")
        return sig(AuthVerdict.PERMERROR, reason)
    except dkim.DKIMException as e:
        return sig(AuthVerdict.PERMERROR, str(e))
    except Exception as e:  # dkimpy on hostile input: a permerror, never a crash
        return sig(AuthVerdict.PERMERROR, f"verifier error: {type(e).__name__}: {e}")
    if ok:
        weak = "rsa-sha1 (RFC 8301 deprecates it)" if algorithm == "rsa-sha1" else ""
        return sig(AuthVerdict.PASS, weak)
    problem = _key_problem(lookups.get(selector, domain), name)
    if problem is not None:
        return sig(*problem)
    return sig(
        AuthVerdict.FAIL,
        "signature did not verify: a signed header was changed, or the published key"
        " is not the one that signed",
    )


def verify_dkim(raw: bytes, client: DnsClient) -> tuple[DkimSignature, ...]:
    """Every DKIM-Signature of the message, top first, each verified on its own."""
    try:
        d = dkim.DKIM(raw, logger=_QUIET, timeout=client.settings.timeout)
    except Exception as e:
        return (DkimSignature("", "", "", AuthVerdict.PERMERROR, f"unreadable message: {e}"),)
    values = [v for k, v in d.headers if k.lower() == b"dkim-signature"]
    lookups = KeyLookups(client)
    return tuple(_one_signature(d, i, v, lookups) for i, v in enumerate(values))


def list_signatures(raw: bytes, reason: str) -> tuple[DkimSignature, ...]:
    """Signatures that cannot be verified (no body): named, with result none and why."""
    try:
        d = dkim.DKIM(raw, logger=_QUIET)
    except Exception:
        return ()
    out = []
    for k, v in d.headers:
        if k.lower() != b"dkim-signature":
            continue
        try:
            tags = parse_tag_value(v)
        except Exception:
            tags = {}
        out.append(
            DkimSignature(
                _text(tags.get(b"d")).lower(),
                _text(tags.get(b"s")),
                _text(tags.get(b"a")),
                AuthVerdict.NONE,
                reason,
            )
        )
    return tuple(out)


_CV = {b"pass": AuthVerdict.PASS, b"fail": AuthVerdict.FAIL, b"none": AuthVerdict.NONE}


def _part_result(valid: bool, lookup: KeyLookup | None, name: str) -> AuthVerdict:
    if valid:
        return AuthVerdict.PASS
    problem = _key_problem(lookup, name)
    return problem[0] if problem else AuthVerdict.FAIL


def verify_arc(raw: bytes, client: DnsClient) -> ArcResult:
    """The ARC chain (RFC 8617): cv, each instance's seal and signature, oldest pass."""
    lookups = KeyLookups(client)
    try:
        a = dkim.ARC(raw, logger=_QUIET, timeout=client.settings.timeout)
        cv, results, reason = a.verify(dnsfunc=lookups)
    except Exception as e:  # hostile or broken chain: fail, never a crash
        return ArcResult(cv=AuthVerdict.FAIL, reason=f"unreadable ARC chain: {e}")
    if cv == dkim.CV_None and not results:
        return ArcResult(cv=AuthVerdict.NONE, reason=str(reason))
    instances = []
    for r in sorted(results, key=lambda r: int(r["instance"])):
        ams_d, ams_s = _text(r.get("ams-domain")).lower(), _text(r.get("ams-selector"))
        as_d, as_s = _text(r.get("as-domain")).lower(), _text(r.get("as-selector"))
        instances.append(
            ArcInstance(
                instance=int(r["instance"]),
                domain=as_d or ams_d,
                selector=as_s or ams_s,
                cv=_text(r.get("cv")),
                seal_result=_part_result(
                    bool(r.get("as-valid")),
                    lookups.get(as_s, as_d),
                    f"{as_s}._domainkey.{as_d}",
                ),
                signature_result=_part_result(
                    bool(r.get("ams-valid")),
                    lookups.get(ams_s, ams_d),
                    f"{ams_s}._domainkey.{ams_d}",
                ),
                recorded_results=" ".join(_text(r.get("aar-value")).split()),
            )
        )
    verdict = _CV.get(cv, AuthVerdict.FAIL) if cv is not None else AuthVerdict.FAIL
    temp = [i for i in instances if AuthVerdict.TEMPERROR in (i.seal_result, i.signature_result)]
    if verdict is not AuthVerdict.PASS and temp:
        verdict = AuthVerdict.TEMPERROR
    oldest: int | None = None
    if verdict is AuthVerdict.PASS:
        for inst in sorted(instances, key=lambda i: -i.instance):
            if inst.signature_result is not AuthVerdict.PASS:
                break
            oldest = inst.instance
    return ArcResult(cv=verdict, instances=tuple(instances), oldest_pass=oldest, reason=str(reason))
