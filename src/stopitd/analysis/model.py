"""The analysis data model: frozen dataclasses and their JSON form (schema_version 1).

Everything the analysis produces is one of these. The JSON contract is documented in
``docs/analysis-json.md``; ``analysis_to_json`` is the only writer of it and
``analysis_from_json`` reads it back (the store keeps the JSON, the raw bytes are kept
beside it, never inside it).
"""

from __future__ import annotations

import base64
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import MISSING, dataclass, field, fields, is_dataclass
from datetime import UTC, datetime
from enum import StrEnum
from typing import TYPE_CHECKING, Any, NamedTuple

if TYPE_CHECKING:
    from stopitd.analysis.headers import HeaderField

SCHEMA_VERSION = 1
ANALYZER_VERSION = "0.1.0"


class Severity(StrEnum):
    INFO = "info"
    WARNING = "warning"
    ERROR = "error"


@dataclass(frozen=True, slots=True)
class Finding:
    """An expected oddity of the input, with a stable code and a line for staff."""

    code: str
    severity: Severity
    text: str


@dataclass(frozen=True, slots=True)
class Address:
    name: str
    address: str


@dataclass(frozen=True, slots=True)
class Envelope:
    """The SMTP envelope of a report as stopitd received it."""

    mail_from: str = ""
    rcpt_tos: tuple[str, ...] = ()
    peer: str = ""
    helo: str = ""
    received_at: datetime | None = None


@dataclass(frozen=True, slots=True)
class KeyFields:
    """The fields staff read first, decoded (RFC 2047) and normalised."""

    message_id: str = ""  # without <>
    date: datetime | None = None  # UTC
    from_: Address | None = None  # the first From address
    to: tuple[Address, ...] = ()
    subject: str = ""


@dataclass(frozen=True, slots=True)
class Attachment:
    """A part of a report kept as evidence (screenshots, logs, files)."""

    filename: str
    content_type: str
    size: int
    sha256: str


# --- forwarded originals -------------------------------------------------------------


class How(StrEnum):
    """How an original was found inside a report."""

    ATTACHMENT = "attachment"  # message/rfc822 part, .eml attachment
    ATTACHMENT_MSG = "attachment-msg"  # Outlook .msg attachment
    INLINE = "inline"  # inline forward by a mail client
    PASTED_HEADERS = "pasted-headers"  # full headers pasted into the body
    ARF = "arf"  # RFC 5965 feedback report
    HEADERS_ONLY = "headers-only"  # text/rfc822-headers (RFC 6522)
    RESENT = "resent"  # redirected/bounced: the report is the original
    DIRECT = "direct"  # `analyze --original`: the file is the original itself


class Grade(StrEnum):
    """How good the evidence of one original is."""

    FULL_MESSAGE = "full-message"
    HEADERS_ONLY = "headers-only"
    INLINE_SUMMARY = "inline-summary"
    NONE = "none"


# --- hops and the trust walk ------------------------------------------------------------


class HopStatus(StrEnum):
    PARSED = "parsed"
    SKIPPED = "skipped"
    UNPARSEABLE = "unparseable"


class Trust(StrEnum):
    TRUSTED = "trusted"
    BOUNDARY = "boundary"
    PROVIDER_ATTESTED = "provider-attested"
    CLAIMED = "claimed"


class IpClass(StrEnum):
    PUBLIC = "public"
    PRIVATE = "private"
    CGNAT = "cgnat"
    LOOPBACK = "loopback"
    LINK_LOCAL = "link-local"
    ULA = "ula"
    RESERVED = "reserved"
    NONE = ""


@dataclass(frozen=True, slots=True)
class Hop:
    """One Received header (top first). Exactly one hop per header, always."""

    raw: str
    status: HopStatus
    ip: str = ""
    ip_class: IpClass = IpClass.NONE
    rdns: str = ""
    helo: str = ""
    by: str = ""
    with_: str = ""
    id: str = ""
    for_: str = ""
    envelope_from: str = ""
    date: datetime | None = None
    auth: str = ""
    trust: Trust = Trust.CLAIMED
    delay_s: float | None = None


class Mode(StrEnum):
    HANDOFF = "handoff"
    SUBMISSION = "submission"
    PROVIDER_ATTESTED = "provider-attested"
    INTERNAL = "internal"
    UNKNOWN = "unknown"


class Confidence(StrEnum):
    HIGH = "high"
    MEDIUM = "medium"
    LOW = "low"
    NONE = "none"


@dataclass(frozen=True, slots=True)
class Reason:
    code: str
    text: str


@dataclass(frozen=True, slots=True)
class SourceEstimate:
    relay_ip: str = ""
    origin_ip: str = ""
    mode: Mode = Mode.UNKNOWN
    internal: bool = False
    provider: str = ""
    responsible_domains: tuple[str, ...] = ()
    authenticated_identity: str = ""
    from_authenticated: bool | None = None  # None until `conclude` has seen evidence
    confidence: Confidence = Confidence.NONE
    reasons: tuple[Reason, ...] = ()
    boundary_index: int | None = None  # index into hops of the hand-off hop
    origin_index: int | None = None  # index into hops of the hop that names origin_ip


# --- authentication -------------------------------------------------------------------


class AuthVerdict(StrEnum):
    PASS = "pass"
    FAIL = "fail"
    NEUTRAL = "neutral"
    SOFTFAIL = "softfail"
    TEMPERROR = "temperror"
    PERMERROR = "permerror"
    NONE = "none"
    POLICY = "policy"


@dataclass(frozen=True, slots=True)
class DkimSignature:
    domain: str
    selector: str
    algorithm: str
    result: AuthVerdict
    reason: str = ""
    key_record: str = ""  # the DNS TXT record used, kept as evidence


@dataclass(frozen=True, slots=True)
class ArcInstance:
    instance: int
    domain: str
    selector: str
    cv: str  # the cv= the seal claims
    seal_result: AuthVerdict
    signature_result: AuthVerdict
    recorded_results: str = ""  # ARC-Authentication-Results text of this instance


@dataclass(frozen=True, slots=True)
class ArcResult:
    cv: AuthVerdict = AuthVerdict.NONE
    instances: tuple[ArcInstance, ...] = ()
    oldest_pass: int | None = None
    reason: str = ""


@dataclass(frozen=True, slots=True)
class SpfResult:
    result: AuthVerdict
    domain: str = ""
    ip: str = ""
    helo: str = ""
    reason: str = ""
    scope: str = ""  # "mailfrom" or "helo": which identity was checked
    identity: str = ""  # the MAIL FROM address checked (postmaster@HELO for scope helo)


@dataclass(frozen=True, slots=True)
class DmarcResult:
    result: AuthVerdict
    policy: str = ""
    from_domain: str = ""
    org_domain: str = ""
    spf_aligned: bool = False
    dkim_aligned: bool = False
    record: str = ""


@dataclass(frozen=True, slots=True)
class RecordedAuth:
    """A result read from a header stamped by a trusted receiver."""

    header: str  # Authentication-Results, ARC-Authentication-Results, Received-SPF, ...
    authserv_id: str
    method: str  # dkim, spf, dmarc, arc, ...
    result: str
    properties: tuple[tuple[str, str], ...] = ()  # (ptype.property, value)
    reason: str = ""
    comment: str = ""  # the result's comments, e.g. Microsoft's "sender IP is ..."


@dataclass(frozen=True, slots=True)
class UntrustedClaim:
    header: str
    authserv_id: str
    value: str
    why: str


@dataclass(frozen=True, slots=True)
class CrossCheck:
    """Does the client IP recorded by trusted stamps match the walk's hand-off IP?"""

    recorded_ips: tuple[str, ...] = ()
    handoff_ip: str = ""
    agrees: bool | None = None


@dataclass(frozen=True, slots=True)
class AuthSummary:
    dkim: tuple[DkimSignature, ...] = ()
    arc: ArcResult = ArcResult()  # frozen values: one shared default, none built per call
    spf: SpfResult | None = None
    dmarc: DmarcResult | None = None
    recorded: tuple[RecordedAuth, ...] = ()
    untrusted: tuple[UntrustedClaim, ...] = ()
    crosscheck: CrossCheck = CrossCheck()
    verified: bool = False  # True once `verify` ran (DNS); False for --no-dns


# --- originals, reports, the whole analysis ------------------------------------------------


@dataclass(frozen=True, slots=True)
class Original:
    """One offending message found inside a report."""

    how: How
    grade: Grade
    raw: bytes  # a slice of the report's bytes, or the repaired header block
    fields: KeyFields = KeyFields()  # frozen values: one shared default, none built per call
    findings: tuple[Finding, ...] = ()
    hops: tuple[Hop, ...] = ()
    source: SourceEstimate = SourceEstimate()
    auth: AuthSummary = AuthSummary()
    envelope_sender: str = ""  # Return-Path of the original, when it carries one
    sha256: str = ""
    found_in: int | None = None  # index of the original this one was forwarded inside
    filename: str = ""  # the attachment's file name (.eml/.msg), when it had one
    feedback: tuple[tuple[str, str], ...] = ()  # ARF message/feedback-report fields, in order
    # The header fields of ``raw`` as the finder already parsed them, so the analysis does
    # not parse them again; None when they must be read from ``raw``. Not part of the
    # value: never compared, shown or serialised, and dropped once the analysis ran.
    header_fields: tuple[HeaderField, ...] | None = field(
        default=None, compare=False, repr=False
    )


@dataclass(frozen=True, slots=True)
class ReportInfo:
    """The outer message: the report as the reporter sent it."""

    fields: KeyFields = field(default_factory=KeyFields)
    findings: tuple[Finding, ...] = ()
    attachments: tuple[Attachment, ...] = ()
    auto_submitted: str = ""  # Auto-Submitted / Precedence value, for the reply logic
    in_reply_to: tuple[str, ...] = ()  # In-Reply-To and References ids, without <>
    sha256: str = ""
    size: int = 0


@dataclass(frozen=True, slots=True)
class Analysis:
    report: ReportInfo
    originals: tuple[Original, ...]
    schema_version: int = SCHEMA_VERSION
    analyzer_version: str = ANALYZER_VERSION


# --- JSON -----------------------------------------------------------------------------

# Python attribute names that are keywords or clash, and their JSON keys.
_RENAMED = {"from_": "from", "with_": "with", "for_": "for"}
# Attributes that never go into the JSON (bytes live in the store beside it).
_OMITTED = {"raw", "header_fields"}
_KEEP_RAW_TEXT = {Hop}  # a hop's raw text is evidence staff must see
# Attributes whose keys are merged into the parent object.
_FLATTENED = {"fields"}


# The text of a UTC time's fields in three lookups, for ``_iso``: "-MM-DDT" at month * 32 +
# day, "HH:MM:" at hour * 60 + minute, "SSZ" at second (fewer joins and number formats).
_MONTH_DAY = tuple(f"-{m:02d}-{d:02d}T" for m in range(13) for d in range(32))
_HOUR_MINUTE = tuple(f"{h:02d}:{m:02d}:" for h in range(24) for m in range(60))
_SECOND_Z = tuple(f"{s:02d}Z" for s in range(60))


def _iso(value: datetime) -> str:
    if value.tzinfo is UTC and (year := value.year) >= 1000:  # strftime's text, spelt out
        # isoformat formats with C printf, and the offset too: about twice this
        return (
            f"{year}{_MONTH_DAY[value.month * 32 + value.day]}"
            f"{_HOUR_MINUTE[value.hour * 60 + value.minute]}{_SECOND_Z[value.second]}"
        )
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


# Per dataclass type: (attribute, JSON key, flattened) in field order; built once.
_PLANS: dict[type, tuple[tuple[str, str, bool], ...]] = {}


def _plan(cls: type) -> tuple[tuple[str, str, bool], ...]:
    plan = _PLANS.get(cls)
    if plan is None:
        plan = tuple(
            (f.name, _RENAMED.get(f.name, f.name), f.name in _FLATTENED)
            for f in fields(cls)
            if f.name not in _OMITTED or (cls in _KEEP_RAW_TEXT and f.name == "raw")
        )
        _PLANS[cls] = plan
    return plan


def _datetime(value: Any) -> Any:
    return _iso(value)


def _generic(value: Any) -> Any:
    """The reference conversion, for values whose exact type has no converter yet."""
    if value is None or isinstance(value, bool | int | float):
        return value
    if isinstance(value, str):
        return value.value if isinstance(value, StrEnum) else value
    if isinstance(value, tuple | list):
        return [to_jsonable(v) for v in value]
    if isinstance(value, datetime):
        return _iso(value)
    if isinstance(value, bytes):
        return base64.b64encode(value).decode("ascii")
    if is_dataclass(value) and not isinstance(value, type):
        return _dataclass(value)
    return value


def _same(value: Any) -> Any:
    return value


def _sequence(value: Any) -> list[Any]:
    return [to_jsonable(v) for v in value]


def _enum(value: Any) -> Any:
    return value._value_  # what ``.value`` returns, without the enum property's cost


def _dataclass(value: Any) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name, key, flattened in _plan(type(value)):
        item = getattr(value, name)
        if type(item) is not str:  # most leaves are plain text: no call for them
            item = to_jsonable(item)
        if flattened:
            out.update(item)  # key fields sit directly on the report/original object
        else:
            out[key] = item
    return out


_TUPLE_OF = re.compile(r"tuple\[(\w+), \.\.\.\]")
_OPTIONAL = re.compile(r"(\w+) \| None")


class Dialect(NamedTuple):
    """How generated code writes values of each declared type (see ``value_code``)."""

    each: dict[str, str]  # shape -> code for one value ``x`` of that declared type
    sequence: str  # code for the whole tuple, from ``{each}`` (the code for one item ``i``)
    none: str  # code for None
    fallback: str  # name of the function for values of any other type
    other: str  # code for a value whose declared type has no shape here, from ``{get}``
    nested: Callable[[type], Callable[[Any], Any]]  # the generated function of a dataclass
    # code for a whole tuple of dataclass values, from ``{name}``, when the nested function
    # checks its value's class itself (so that ``map`` can call it); None: as any tuple
    objects: str | None = None


# The exact class each shape's values are checked against (enums and dataclasses: their own).
_SHAPE_CLASS = {
    "str": "_str", "int": "_int", "bool": "_bool", "float": "_float",
    "datetime": "_datetime_cls",
}


def value_code(name: str, annotation: str, ns: dict[str, Any], dialect: Dialect) -> str:
    """Python text writing ``v.<name>`` in ``dialect``, specialised by its declared type;
    every specialisation checks the exact class first and falls back to the general way."""
    get = f"(x := v.{name})"
    tuple_of = _TUPLE_OF.fullmatch(annotation)
    optional = None if tuple_of else _OPTIONAL.fullmatch(annotation)
    match = tuple_of or optional
    declared = match.group(1) if match else annotation
    kind = globals().get(declared)
    shape = declared
    if isinstance(kind, type) and issubclass(kind, StrEnum):
        shape, ns[f"_T_{name}"] = "enum", kind
    elif isinstance(kind, type) and is_dataclass(kind):
        shape, ns[f"_T_{name}"], ns[f"_c_{name}"] = "dataclass", kind, dialect.nested(kind)
    one = dialect.each.get(shape)
    test = _SHAPE_CLASS.get(shape, f"_T_{name}")
    fallback = dialect.fallback
    if tuple_of is not None:
        if one is None:
            return f"{fallback}(v.{name})"
        if shape == "dataclass" and dialect.objects is not None:
            sequence = dialect.objects.format(name=name)
            return f"({sequence} if {get}.__class__ is _tuple else {fallback}(x))"
        each = f"{one.format(x='i', name=name)} if i.__class__ is {test} else {fallback}(i)"
        sequence = dialect.sequence.format(each=each)
        return f"({sequence} if {get}.__class__ is _tuple else {fallback}(x))"
    if one is None:
        return dialect.other.format(get=get)
    none_first = f"{dialect.none} if {get} is None else " if optional else ""
    x = "x" if optional else get
    code = one.format(x="x", name=name)
    return f"({none_first}{code} if {x}.__class__ is {test} else {fallback}(x))"


def _dataclass_converter(cls: type) -> Callable[[Any], dict[str, Any]]:
    """``_dataclass`` for exactly this class, generated once from its plan and declared
    types: one function with the attributes spelt out, no loop over the plan, no
    ``getattr`` and no dispatch for values of the declared type."""
    declared = {f.name: str(f.type) for f in fields(cls)}
    namespace: dict[str, Any] = {
        "_str": str, "_tuple": tuple, "_json": to_jsonable, "_iso": _iso,
        "_datetime_cls": datetime,
    }
    lines = ["def convert(v):", "    out = {"]
    started = False
    for name, key, flattened in _plan(cls):
        value = value_code(name, declared[name], namespace, _DICTS)
        if flattened:
            lines.append("    }" if not started else "")
            lines.append(f"    out.update(_json(v.{name}))")
            started = True
        elif not started:
            lines.append(f"        {key!r}: {value},")
        else:
            lines.append(f"    out[{key!r}] = {value}")
    if not started:
        lines.append("    }")
    lines.append("    return out")
    exec("\n".join(line for line in lines if line), namespace)  # our own text, from our types
    convert: Callable[[Any], dict[str, Any]] = namespace["convert"]
    return convert


def _converter_of(cls: type) -> Callable[[Any], Any]:
    convert = _CONVERTERS.get(cls)
    if convert is None:
        convert = _CONVERTERS[cls] = _converter(cls)
    return convert


def _converter(cls: type) -> Callable[[Any], Any]:
    """How to convert every value of exactly this type (what ``_generic`` would do)."""
    if cls in (type(None), bool, int, float, str):
        return _same
    if issubclass(cls, StrEnum):
        return _enum
    if cls in (tuple, list):
        return _sequence
    if issubclass(cls, datetime):
        return _datetime
    if is_dataclass(cls):
        return _dataclass_converter(cls)
    return _generic


# The dict converters' dialect: plain values as they are, tuples as lists.
_DICTS = Dialect(
    each={
        "str": "{x}", "datetime": "_iso({x})", "enum": "{x}._value_",
        "dataclass": "_c_{name}({x})",
    },
    sequence="[{each} for i in x]",
    none="None",
    fallback="_json",
    other="(x if {get}.__class__ is _str else _json(x))",
    nested=_converter_of,
)

# Per exact type: its converter; built on first sight, so each value costs one lookup.
_CONVERTERS: dict[type, Callable[[Any], Any]] = {}


def to_jsonable(value: Any) -> Any:
    """Turn a model value into plain JSON types (dict keys as the contract names them)."""
    convert = _CONVERTERS.get(type(value))
    if convert is None:
        convert = _CONVERTERS[type(value)] = _converter(type(value))
    return convert(value)


def analysis_to_json(analysis: Analysis) -> dict[str, Any]:
    data: dict[str, Any] = {
        "schema_version": analysis.schema_version,
        "analyzer_version": analysis.analyzer_version,
        "report": to_jsonable(analysis.report),
        "originals": [to_jsonable(o) for o in analysis.originals],
    }
    return data


def _parse_dt(value: Any) -> datetime | None:
    if not value:
        return None
    return datetime.fromisoformat(str(value).replace("Z", "+00:00"))


def _address(a: Mapping[str, Any]) -> Address:
    return Address(str(a.get("name", "")), str(a.get("address", "")))


def _key_fields(d: Mapping[str, Any]) -> KeyFields:
    return KeyFields(
        message_id=str(d.get("message_id", "")),
        date=_parse_dt(d.get("date")),
        from_=_address(d["from"]) if d.get("from") else None,
        to=tuple(_address(a) for a in d.get("to", [])),
        subject=str(d.get("subject", "")),
    )


def _findings(items: Sequence[Mapping[str, Any]]) -> tuple[Finding, ...]:
    return tuple(Finding(str(f["code"]), Severity(f["severity"]), str(f["text"])) for f in items)


def _hop(d: Mapping[str, Any]) -> Hop:
    return Hop(
        raw=str(d.get("raw", "")),
        status=HopStatus(d["status"]),
        ip=str(d.get("ip", "")),
        ip_class=IpClass(d.get("ip_class", "")),
        rdns=str(d.get("rdns", "")),
        helo=str(d.get("helo", "")),
        by=str(d.get("by", "")),
        with_=str(d.get("with", "")),
        id=str(d.get("id", "")),
        for_=str(d.get("for", "")),
        envelope_from=str(d.get("envelope_from", "")),
        date=_parse_dt(d.get("date")),
        auth=str(d.get("auth", "")),
        trust=Trust(d.get("trust", "claimed")),
        delay_s=d.get("delay_s"),
    )


def _source(d: Mapping[str, Any]) -> SourceEstimate:
    return SourceEstimate(
        relay_ip=str(d.get("relay_ip", "")),
        origin_ip=str(d.get("origin_ip", "")),
        mode=Mode(d.get("mode", "unknown")),
        internal=bool(d.get("internal", False)),
        provider=str(d.get("provider", "")),
        responsible_domains=tuple(d.get("responsible_domains", [])),
        authenticated_identity=str(d.get("authenticated_identity", "")),
        from_authenticated=d.get("from_authenticated"),
        confidence=Confidence(d.get("confidence", "none")),
        reasons=tuple(Reason(str(r["code"]), str(r["text"])) for r in d.get("reasons", [])),
        boundary_index=d.get("boundary_index"),
        origin_index=d.get("origin_index"),
    )


def _auth(d: Mapping[str, Any]) -> AuthSummary:
    arc = d.get("arc") or {}
    spf = d.get("spf")
    dmarc = d.get("dmarc")
    cross = d.get("crosscheck") or {}
    return AuthSummary(
        dkim=tuple(
            DkimSignature(
                domain=s["domain"],
                selector=s["selector"],
                algorithm=s["algorithm"],
                result=AuthVerdict(s["result"]),
                reason=s.get("reason", ""),
                key_record=s.get("key_record", ""),
            )
            for s in d.get("dkim", [])
        ),
        arc=ArcResult(
            cv=AuthVerdict(arc.get("cv", "none")),
            instances=tuple(
                ArcInstance(
                    instance=i["instance"],
                    domain=i["domain"],
                    selector=i["selector"],
                    cv=i["cv"],
                    seal_result=AuthVerdict(i["seal_result"]),
                    signature_result=AuthVerdict(i["signature_result"]),
                    recorded_results=i.get("recorded_results", ""),
                )
                for i in arc.get("instances", [])
            ),
            oldest_pass=arc.get("oldest_pass"),
            reason=arc.get("reason", ""),
        ),
        spf=None
        if spf is None
        else SpfResult(
            result=AuthVerdict(spf["result"]),
            domain=spf.get("domain", ""),
            ip=spf.get("ip", ""),
            helo=spf.get("helo", ""),
            reason=spf.get("reason", ""),
            scope=spf.get("scope", ""),
            identity=spf.get("identity", ""),
        ),
        dmarc=None
        if dmarc is None
        else DmarcResult(
            result=AuthVerdict(dmarc["result"]),
            policy=dmarc.get("policy", ""),
            from_domain=dmarc.get("from_domain", ""),
            org_domain=dmarc.get("org_domain", ""),
            spf_aligned=bool(dmarc.get("spf_aligned", False)),
            dkim_aligned=bool(dmarc.get("dkim_aligned", False)),
            record=dmarc.get("record", ""),
        ),
        recorded=tuple(
            RecordedAuth(
                header=r["header"],
                authserv_id=r["authserv_id"],
                method=r["method"],
                result=r["result"],
                properties=tuple((str(k), str(v)) for k, v in r.get("properties", [])),
                reason=r.get("reason", ""),
                comment=r.get("comment", ""),
            )
            for r in d.get("recorded", [])
        ),
        untrusted=tuple(
            UntrustedClaim(u["header"], u["authserv_id"], u["value"], u["why"])
            for u in d.get("untrusted", [])
        ),
        crosscheck=CrossCheck(
            recorded_ips=tuple(cross.get("recorded_ips", [])),
            handoff_ip=cross.get("handoff_ip", ""),
            agrees=cross.get("agrees"),
        ),
        verified=bool(d.get("verified", False)),
    )


def analysis_from_json(data: Mapping[str, Any], raws: Sequence[bytes] = ()) -> Analysis:
    """Read the JSON back; ``raws`` gives each original's bytes (kept in the store)."""
    if data.get("schema_version") != SCHEMA_VERSION:
        raise ValueError(f"unsupported analysis schema_version {data.get('schema_version')!r}")
    rep = data["report"]
    report = ReportInfo(
        fields=_key_fields(rep),
        findings=_findings(rep.get("findings", [])),
        attachments=tuple(
            Attachment(a["filename"], a["content_type"], a["size"], a["sha256"])
            for a in rep.get("attachments", [])
        ),
        auto_submitted=rep.get("auto_submitted", ""),
        in_reply_to=tuple(rep.get("in_reply_to", [])),
        sha256=rep.get("sha256", ""),
        size=int(rep.get("size", 0)),
    )
    originals = []
    for i, o in enumerate(data.get("originals", [])):
        originals.append(
            Original(
                how=How(o["how"]),
                grade=Grade(o["grade"]),
                raw=raws[i] if i < len(raws) else b"",
                fields=_key_fields(o),
                findings=_findings(o.get("findings", [])),
                hops=tuple(_hop(h) for h in o.get("hops", [])),
                source=_source(o.get("source", {})),
                auth=_auth(o.get("auth", {})),
                envelope_sender=o.get("envelope_sender", ""),
                sha256=o.get("sha256", ""),
                found_in=o.get("found_in"),
                filename=o.get("filename", ""),
                feedback=tuple((str(k), str(v)) for k, v in o.get("feedback", [])),
            )
        )
    return Analysis(
        report=report,
        originals=tuple(originals),
        schema_version=int(data["schema_version"]),
        analyzer_version=str(data.get("analyzer_version", "")),
    )


# --- evidence from the verifier (DNS), consumed by `conclude` ---------------------------------


@dataclass(frozen=True, slots=True)
class OriginalEvidence:
    """What `verify` found for one original (same order as Analysis.originals)."""

    dkim: tuple[DkimSignature, ...] = ()
    arc: ArcResult = field(default_factory=ArcResult)
    spf: SpfResult | None = None
    dmarc: DmarcResult | None = None
    findings: tuple[Finding, ...] = ()


@dataclass(frozen=True, slots=True)
class Evidence:
    originals: tuple[OriginalEvidence, ...] = ()
    verified: bool = False

    @classmethod
    def none(cls) -> Evidence:
        """No DNS was asked (`--no-dns`, or DNS disabled)."""
        return cls()


# --- construction -----------------------------------------------------------------------

_NO_VALUE = object()  # stands for a missing argument whose default a factory makes


# From this many fields on, ``_slot_init`` fills a value through its unfrozen twin (below).
_TWIN_FIELDS = 5


def _slot_init(cls: type) -> Callable[..., None]:
    """``cls``'s ``__init__`` as ``dataclass`` writes it, but without the frozen class's
    ``object.__setattr__`` per field (the name looked up each time).

    A field set through the slot's member descriptor (``descriptor.__set__``) still costs a
    C call through an argument tuple, some 700 instructions. From ``_TWIN_FIELDS`` fields
    on, the new value instead becomes for a moment an instance of an unfrozen twin class
    with the very same slots, takes plain attribute stores (a few dozen instructions each),
    and becomes a ``cls`` again: two ``__class__`` assignments, about 2,000 instructions
    together, where a Hop's fifteen fields saved 9,000. Frozen stays frozen (``cls``'s
    ``__setattr__`` is kept); a subclass's instance takes the descriptor way."""
    ns: dict[str, Any] = {"_NO_VALUE": _NO_VALUE, "_cls": cls, "_set_class": object.__setattr__}
    params = ["self"]
    body: list[str] = []
    stores: list[str] = []
    for f in fields(cls):
        if not f.init or f.kw_only:
            raise TypeError(f"{cls.__name__}.{f.name}: not a plain init field")
        ns[f"_set_{f.name}"] = vars(cls)[f.name].__set__
        if f.default_factory is not MISSING:
            ns[f"_make_{f.name}"] = f.default_factory
            params.append(f"{f.name}=_NO_VALUE")
            body.append(f"    if {f.name} is _NO_VALUE:\n        {f.name} = _make_{f.name}()")
        elif f.default is not MISSING:
            ns[f"_default_{f.name}"] = f.default
            params.append(f"{f.name}=_default_{f.name}")
        else:
            params.append(f.name)
        stores.append(f"        self.{f.name} = {f.name}")
        body.append(f"    _set_{f.name}(self, {f.name})")
    if len(stores) >= _TWIN_FIELDS:
        slots = getattr(cls, "__slots__", None)
        if slots is None or any(vars(c).get("__slots__") for c in cls.__mro__[1:-1]):
            raise TypeError(f"{cls.__name__}: not a slotted class of its own")
        ns["_twin"] = type(f"_Unfrozen{cls.__name__}", (), {"__slots__": slots})
        factories = [line for line in body if line.startswith("    if ")]
        body = [
            *factories,
            "    if self.__class__ is _cls:",
            "        _set_class(self, '__class__', _twin)",
            *stores,
            "        self.__class__ = _cls",
            "        return",
            *[line for line in body if not line.startswith("    if ")],
        ]
    exec(f"def __init__({', '.join(params)}):\n" + "\n".join(body or ["    pass"]), ns)
    init: Callable[..., None] = ns["__init__"]
    init.__qualname__ = f"{cls.__qualname__}.__init__"
    return init


for _cls in [
    c for c in list(globals().values())
    if isinstance(c, type) and is_dataclass(c) and c.__module__ == __name__
]:
    if getattr(_cls, "__post_init__", None) is None:
        setattr(_cls, "__init__", _slot_init(_cls))  # noqa: B010 (mypy: no method assignment)
