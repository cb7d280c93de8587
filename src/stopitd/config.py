"""TOML config -> frozen Settings. Unknown keys, wrong types and bad values name the key."""

from __future__ import annotations

import ipaddress
import os
import tomllib
import types
import typing
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, get_type_hints

from stopitd.analysis.policy import Limits, Policy, TrustPolicy
from stopitd.errors import ConfigError

KNOWN_PROVIDERS = ("google", "microsoft", "yahoo", "apple")
LOG_FORMATS = ("auto", "json", "console")
LOG_LEVELS = ("debug", "info", "warning", "error")
SOURCE_MODES = ("handoff", "submission", "provider-attested", "internal", "unknown")


@dataclass(frozen=True, slots=True)
class SmtpSettings:
    listen: str = "127.0.0.1:2525"
    report_addresses: tuple[str, ...] = ("stopit@localhost",)
    max_message_size: int = 25 * 1024 * 1024
    hostname: str = ""  # the name in the banner; empty: the machine's FQDN
    # Floods and slow clients (issue 10): beyond a limit the client gets 421 4.7.0.
    max_connections: int = 200
    max_connections_per_ip: int = 10
    max_messages_per_connection: int = 20
    command_timeout: float = 60.0  # seconds for one command line (slowloris)
    data_timeout: float = 600.0  # seconds for the whole DATA phase
    # STARTTLS: PEM files, re-read on SIGHUP; empty: no STARTTLS.
    tls_cert: str = ""
    tls_key: str = ""
    require_tls: bool = False  # 530 5.7.0 for MAIL/RCPT/DATA before STARTTLS

    @property
    def host(self) -> str:
        return split_host_port(self.listen)[0]

    @property
    def port(self) -> int:
        return split_host_port(self.listen)[1]


@dataclass(frozen=True, slots=True)
class DaemonSettings:
    user: str = ""  # started as root: bind, then run as this user; empty: stay as started


@dataclass(frozen=True, slots=True)
class SpoolSettings:
    path: Path = Path("/var/lib/stopitd/spool")


@dataclass(frozen=True, slots=True)
class DatabaseSettings:
    url: str = "sqlite:////var/lib/stopitd/stopitd.db"


@dataclass(frozen=True, slots=True)
class LogSettings:
    format: str = "auto"
    level: str = "info"


@dataclass(frozen=True, slots=True)
class WorkerSettings:
    max_attempts: int = 5
    backoff_initial: float = 1.0
    backoff_max: float = 300.0
    poll_interval: float = 1.0


@dataclass(frozen=True, slots=True)
class IntakeSettings:
    """Flood grouping (docs/security.md): more than `flood_reports` reports from one
    reporter, or of one original, within one `flood_window` are grouped, not new cases."""

    flood_reports: int = 30  # 0: no grouping
    flood_window: float = 3600.0  # seconds; windows are fixed, aligned to the epoch


@dataclass(frozen=True, slots=True)
class DnsSettings:
    enabled: bool = True
    nameservers: tuple[str, ...] = ()  # empty: the system resolver
    timeout: float = 2.0  # per query
    budget: float = 5.0  # total DNS time per message
    retry_after: float = 300.0  # the daemon's DNS back-off after a resolver timeout


@dataclass(frozen=True, slots=True)
class TrustSettings:
    trusted_networks: tuple[str, ...] = ()
    trusted_hosts: tuple[str, ...] = ()
    msa_networks: tuple[str, ...] = ()
    trusted_authserv_ids: tuple[str, ...] = ()
    originating_ip_headers: tuple[str, ...] = ()
    providers: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class OutboundSettings:
    """Outbound mail (acknowledgements, notices, routing) via a smarthost; docs/outbound.md."""

    enabled: bool = False  # false: nothing is queued automatically and nothing is sent
    smarthost: str = "127.0.0.1:25"
    from_address: str = ""  # empty: the first of smtp.report_addresses
    starttls: bool = False
    ca_file: Path | None = None  # a private CA for the smarthost's certificate
    username: str = ""
    password_file: Path | None = None
    dry_run_dir: Path | None = None  # set: write .eml files there instead of sending
    templates_dir: Path | None = None  # admin overrides, searched before the built-ins
    timeout: float = 30.0  # per SMTP conversation step, seconds
    poll_interval: float = 5.0  # idle sender loop: look for due mail this often, seconds
    retry_initial: float = 60.0  # first wait after a 4xx or an unreachable smarthost
    retry_max: float = 3600.0  # cap of the doubling wait
    give_up_after: float = 432000.0  # a message still undelivered after this is failed
    send_lease: float = 600.0  # a `sending` row older than this is sent again (crash)

    @property
    def host(self) -> str:
        return split_host_port(self.smarthost)[0]

    @property
    def port(self) -> int:
        return split_host_port(self.smarthost)[1]


@dataclass(frozen=True, slots=True)
class RetentionSettings:
    closed_days: int = 365  # `stopitd cases purge` removes cases closed longer ago


@dataclass(frozen=True, slots=True)
class ReplySettings:
    """What stopitd writes back: the case tag, the caps, the texts templates use."""

    tag_prefix: str = "stopit"  # subject tag "[stopit #123]"
    daily_cap_per_address: int = 5  # automatic mails to one address per 24 hours
    emergency_text: str = (
        "If you are in immediate danger, call the emergency services (112 / 911) now."
    )
    acknowledge: bool = True  # send the acknowledgement when a report arrives
    organisation: str = "our institution"
    policy_text: str = "the acceptable use policy for e-mail"


@dataclass(frozen=True, slots=True)
class OfficeSettings:
    """One `[offices.NAME]` table: where a case routed to NAME is mailed."""

    address: str = ""
    description: str = ""
    attach_evidence: bool = False  # attach the raw reports to the routing mail


@dataclass(frozen=True, slots=True)
class RoutingRule:
    """Routes a new case to `office` when every condition it sets holds (first rule wins)."""

    office: str = ""
    internal: bool | None = None  # the source is one of our own users/networks
    from_domains: tuple[str, ...] = ()  # the original's From domain (or a subdomain of one)
    origin_networks: tuple[str, ...] = ()  # origin or relay IP inside one of these CIDRs
    reporter_domains: tuple[str, ...] = ()  # the reporter's address domain
    modes: tuple[str, ...] = ()  # the source mode: handoff, submission, internal, ...


@dataclass(frozen=True, slots=True)
class RoutingSettings:
    rules: tuple[RoutingRule, ...] = ()


@dataclass(frozen=True, slots=True)
class Settings:
    source: Path | None = None  # the file these came from; None: built-in defaults
    smtp: SmtpSettings = field(default_factory=SmtpSettings)
    spool: SpoolSettings = field(default_factory=SpoolSettings)
    database: DatabaseSettings = field(default_factory=DatabaseSettings)
    log: LogSettings = field(default_factory=LogSettings)
    worker: WorkerSettings = field(default_factory=WorkerSettings)
    intake: IntakeSettings = field(default_factory=IntakeSettings)
    dns: DnsSettings = field(default_factory=DnsSettings)
    trust: TrustSettings = field(default_factory=TrustSettings)
    limits: Limits = field(default_factory=Limits)
    daemon: DaemonSettings = field(default_factory=DaemonSettings)
    outbound: OutboundSettings = field(default_factory=OutboundSettings)
    retention: RetentionSettings = field(default_factory=RetentionSettings)
    reply: ReplySettings = field(default_factory=ReplySettings)
    offices: Mapping[str, OfficeSettings] = field(default_factory=dict)
    routing: RoutingSettings = field(default_factory=RoutingSettings)

    @property
    def from_address(self) -> str:
        """The From of every message stopitd sends."""
        return self.outbound.from_address or self.smtp.report_addresses[0]

    def policy(self) -> Policy:
        t = self.trust
        return Policy(
            trust=TrustPolicy(
                trusted_networks=t.trusted_networks,
                trusted_hosts=t.trusted_hosts,
                msa_networks=t.msa_networks,
                trusted_authserv_ids=t.trusted_authserv_ids,
                originating_ip_headers=t.originating_ip_headers,
                providers=t.providers,
            ),
            limits=self.limits,
        )


def split_host_port(value: str) -> tuple[str, int]:
    host, sep, port = value.rpartition(":")
    if not sep or not port.isdigit() or not host:
        raise ValueError(f"expected HOST:PORT, got {value!r}")
    number = int(port)
    if not 0 < number < 65536:
        raise ValueError(f"port out of range in {value!r}")
    return host.strip("[]"), number


def _type_name(tp: Any) -> str:
    if _optional_of(tp) is not None:
        return _type_name(_optional_of(tp))
    if tp is Path:
        return "a path (string)"
    if typing.get_origin(tp) is tuple:
        return "a list of strings"
    return {str: "a string", int: "an integer", float: "a number", bool: "true or false"}.get(
        tp, str(tp)
    )


def _convert(value: Any, tp: Any, key: str, base: Path) -> Any:
    if _optional_of(tp) is not None:  # `X | None`: TOML has no null, a given value is an X
        return _convert(value, _optional_of(tp), key, base)
    wrong = ConfigError(f"{key}: expected {_type_name(tp)}, got {value!r}")
    if tp is bool:
        if not isinstance(value, bool):
            raise wrong
        return value
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise wrong
        return value
    if tp is float:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise wrong
        return float(value)
    if tp is str:
        if not isinstance(value, str):
            raise wrong
        return value
    if tp is Path:
        if not isinstance(value, str) or not value:
            raise wrong
        p = Path(value)
        return p if p.is_absolute() else (base / p).resolve()
    if typing.get_origin(tp) is tuple:
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise wrong
        return tuple(value)
    raise ConfigError(f"{key}: unsupported type {tp!r}")


def _optional_of(tp: Any) -> Any:
    """X for `X | None`, else None."""
    if typing.get_origin(tp) in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        if len(args) == 1 and len(typing.get_args(tp)) == 2:
            return args[0]
    return None


def _section(cls: type[Any], data: Any, prefix: str, base: Path) -> Any:
    if not isinstance(data, dict):
        raise ConfigError(f"[{prefix}]: expected a table")
    hints = get_type_hints(cls)
    known = {f.name for f in fields(cls)}
    for key in data:
        if key not in known:
            raise ConfigError(f"{prefix}.{key}: unknown key (known: {', '.join(sorted(known))})")
    values = {k: _convert(v, hints[k], f"{prefix}.{k}", base) for k, v in data.items()}
    return cls(**values)


def _check(settings: Settings) -> None:
    """Values that have the right type but make no sense."""
    try:
        split_host_port(settings.smtp.listen)
    except ValueError as e:
        raise ConfigError(f"smtp.listen: {e}") from None
    if not settings.smtp.report_addresses:
        raise ConfigError("smtp.report_addresses: at least one reporting address is needed")
    for addr in settings.smtp.report_addresses:
        if addr.count("@") != 1 or addr.startswith("@") or addr.endswith("@"):
            raise ConfigError(f"smtp.report_addresses: {addr!r} is not an address")
    if settings.smtp.max_message_size < 1024:
        raise ConfigError("smtp.max_message_size: must be at least 1024 bytes")
    _check_smtp_limits(settings.smtp)
    if settings.log.format not in LOG_FORMATS:
        raise ConfigError(f"log.format: must be one of {', '.join(LOG_FORMATS)}")
    if settings.log.level not in LOG_LEVELS:
        raise ConfigError(f"log.level: must be one of {', '.join(LOG_LEVELS)}")
    if settings.worker.max_attempts < 1:
        raise ConfigError("worker.max_attempts: must be at least 1")
    for key in ("backoff_initial", "backoff_max", "poll_interval"):
        if getattr(settings.worker, key) <= 0:
            raise ConfigError(f"worker.{key}: must be greater than 0")
    if settings.intake.flood_reports < 0:
        raise ConfigError("intake.flood_reports: must be 0 (no grouping) or more")
    if settings.intake.flood_window <= 0:
        raise ConfigError("intake.flood_window: must be greater than 0")
    for key in ("timeout", "budget", "retry_after"):
        if getattr(settings.dns, key) <= 0:
            raise ConfigError(f"dns.{key}: must be greater than 0")
    from stopitd.verify.dnsclient import parse_nameserver

    for server in settings.dns.nameservers:
        try:
            parse_nameserver(server)
        except ValueError as e:
            raise ConfigError(f"dns.nameservers: {server!r}: {e}") from None
    for key in ("trusted_networks", "msa_networks"):
        for net in getattr(settings.trust, key):
            try:
                ipaddress.ip_network(net, strict=False)
            except ValueError:
                raise ConfigError(f"trust.{key}: {net!r} is not a network") from None
    for name in settings.trust.providers:
        if name not in KNOWN_PROVIDERS:
            raise ConfigError(
                f"trust.providers: unknown provider {name!r} (known: {', '.join(KNOWN_PROVIDERS)})"
            )
    if settings.retention.closed_days < 1:
        raise ConfigError("retention.closed_days: must be at least 1")
    prefix = settings.reply.tag_prefix
    if not prefix or not all(c.isalnum() or c in "._-" for c in prefix):
        raise ConfigError("reply.tag_prefix: letters, digits, '.', '_' or '-' only")
    for f in fields(settings.limits):
        if getattr(settings.limits, f.name) < 1:
            raise ConfigError(f"limits.{f.name}: must be at least 1")


def _check_smtp_limits(smtp: SmtpSettings) -> None:
    for key in ("max_connections", "max_connections_per_ip", "max_messages_per_connection"):
        if getattr(smtp, key) < 1:
            raise ConfigError(f"smtp.{key}: must be at least 1")
    for key in ("command_timeout", "data_timeout"):
        if getattr(smtp, key) <= 0:
            raise ConfigError(f"smtp.{key}: must be greater than 0")
    if bool(smtp.tls_cert) != bool(smtp.tls_key):
        raise ConfigError("smtp.tls_cert, smtp.tls_key: set both or neither")
    if smtp.require_tls and not smtp.tls_cert:
        raise ConfigError("smtp.require_tls: needs smtp.tls_cert and smtp.tls_key")


def _resolve_tls_paths(smtp: SmtpSettings, base: Path) -> SmtpSettings:
    """Relative certificate paths are taken relative to the config file's folder."""
    from dataclasses import replace

    def resolve(value: str) -> str:
        return str((base / value).resolve()) if value else value

    return replace(smtp, tls_cert=resolve(smtp.tls_cert), tls_key=resolve(smtp.tls_key))


def _resolve_db_url(url: str, base: Path) -> str:
    """A relative SQLite path is taken relative to the config file's folder."""
    prefix = "sqlite:///"
    if url.startswith(prefix) and not url.startswith("sqlite:////"):
        rest = url[len(prefix) :]
        if rest and not rest.startswith(":memory:"):
            return prefix + str((base / rest).resolve())
    return url


def parse(data: dict[str, Any], source: Path | None) -> Settings:
    base = source.parent if source is not None else Path.cwd()
    sections: dict[str, Any] = {}
    hints = get_type_hints(Settings)
    known = [f.name for f in fields(Settings) if f.name != "source"]
    for key, value in data.items():
        if key not in known:
            raise ConfigError(f"[{key}]: unknown section (known: {', '.join(known)})")
        if key == "offices":
            sections[key] = _offices(value, base)
        elif key == "routing":
            sections[key] = _routing(value, base)
        else:
            sections[key] = _section(hints[key], value, key, base)
    if "smtp" in sections:
        sections["smtp"] = _resolve_tls_paths(sections["smtp"], base)
    settings = Settings(source=source, **sections)
    if "database" in sections:
        db = settings.database
        settings = _replace(settings, database=DatabaseSettings(_resolve_db_url(db.url, base)))
    _check(settings)
    _check_outbound(settings)
    return settings


def _offices(data: Any, base: Path) -> dict[str, OfficeSettings]:
    """`[offices.NAME]` tables, one per office."""
    if not isinstance(data, dict):
        raise ConfigError("[offices]: expected tables [offices.NAME]")
    out: dict[str, OfficeSettings] = {}
    for name, table in data.items():
        if not isinstance(table, dict):
            raise ConfigError(f"offices.{name}: expected a table [offices.{name}]")
        out[name] = _section(OfficeSettings, table, f"offices.{name}", base)
    return out


def _routing(data: Any, base: Path) -> RoutingSettings:
    if not isinstance(data, dict):
        raise ConfigError("[routing]: expected a table")
    unknown = set(data) - {"rules"}
    if unknown:
        raise ConfigError(f"routing.{sorted(unknown)[0]}: unknown key (known: rules)")
    rules = data.get("rules", [])
    if not isinstance(rules, list):
        raise ConfigError("routing.rules: expected a list of tables")
    parsed = []
    for i, rule in enumerate(rules):
        key = f"routing.rules[{i}]"
        if not isinstance(rule, dict):
            raise ConfigError(f'{key}: expected a table like {{ office = "NAME", ... }}')
        parsed.append(_section(RoutingRule, rule, key, base))
    return RoutingSettings(rules=tuple(parsed))


def _is_address(value: str) -> bool:
    local, at, domain = value.rpartition("@")
    return bool(at and local and domain and " " not in value)


def _check_outbound(settings: Settings) -> None:
    """Values of [outbound], [reply], [offices.*] and [routing] that make no sense."""
    out = settings.outbound
    try:
        split_host_port(out.smarthost)
    except ValueError as e:
        raise ConfigError(f"outbound.smarthost: {e}") from None
    if out.from_address and not _is_address(out.from_address):
        raise ConfigError(f"outbound.from_address: {out.from_address!r} is not an address")
    if out.password_file is not None and not out.username:
        raise ConfigError("outbound.password_file: set outbound.username too")
    for key in (
        "timeout",
        "poll_interval",
        "retry_initial",
        "retry_max",
        "give_up_after",
        "send_lease",
    ):
        if getattr(out, key) <= 0:
            raise ConfigError(f"outbound.{key}: must be greater than 0")
    if out.retry_max < out.retry_initial:
        raise ConfigError("outbound.retry_max: must not be less than outbound.retry_initial")
    reply = settings.reply
    if reply.daily_cap_per_address < 0:
        raise ConfigError("reply.daily_cap_per_address: must be 0 (no automatic mail) or more")
    for name, office in settings.offices.items():
        if not name or not all(c.isalnum() or c in "-_." for c in name):
            raise ConfigError(f"offices.{name}: office names are letters, digits, '-', '_', '.'")
        if not _is_address(office.address):
            raise ConfigError(f"offices.{name}.address: {office.address!r} is not an address")
    for i, rule in enumerate(settings.routing.rules):
        key = f"routing.rules[{i}]"
        if not rule.office:
            raise ConfigError(f"{key}.office: required (the office the rule routes to)")
        if rule.office not in settings.offices:
            raise ConfigError(
                f"{key}.office: no office {rule.office!r} (add a table [offices.{rule.office}])"
            )
        for net in rule.origin_networks:
            try:
                ipaddress.ip_network(net, strict=False)
            except ValueError:
                raise ConfigError(f"{key}.origin_networks: {net!r} is not a network") from None
        for mode in rule.modes:
            if mode not in SOURCE_MODES:
                raise ConfigError(
                    f"{key}.modes: unknown mode {mode!r} (known: {', '.join(SOURCE_MODES)})"
                )


def _replace(settings: Settings, **changes: Any) -> Settings:
    values = {f.name: getattr(settings, f.name) for f in fields(settings)}
    values.update(changes)
    return Settings(**values)


def load(path: Path) -> Settings:
    try:
        with path.open("rb") as fh:
            data = tomllib.load(fh)
    except FileNotFoundError:
        raise ConfigError(f"{path}: no such config file") from None
    except OSError as e:
        raise ConfigError(f"{path}: cannot read: {e.strerror}") from None
    except tomllib.TOMLDecodeError as e:
        raise ConfigError(f"{path}: not valid TOML: {e}") from None
    try:
        return parse(data, path.resolve())
    except ConfigError as e:
        raise ConfigError(f"{path}: {e}") from None


def discover(explicit: str | None) -> Path | None:
    """`--config` > $STOPITD_CONFIG > ./config/stopitd.toml > /etc/stopitd/stopitd.toml."""
    if explicit:
        return Path(explicit)
    env = os.environ.get("STOPITD_CONFIG")
    if env:
        return Path(env)
    for candidate in (Path("config/stopitd.toml"), Path("/etc/stopitd/stopitd.toml")):
        if candidate.is_file():
            return candidate
    return None


def load_discovered(explicit: str | None) -> Settings:
    path = discover(explicit)
    if path is None:
        raise ConfigError(
            "no config file: pass --config FILE, set STOPITD_CONFIG, or create "
            "./config/stopitd.toml or /etc/stopitd/stopitd.toml "
            "(config/stopitd.example.toml documents every key)"
        )
    return load(path)


def as_toml_dict(settings: Settings) -> dict[str, dict[str, Any]]:
    """The effective settings, section by section, for `stopitd check-config`."""
    out: dict[str, dict[str, Any]] = {}
    for f in fields(settings):
        if f.name == "source":
            continue
        section = getattr(settings, f.name)
        if f.name == "offices":
            for name, office in section.items():
                out[f"offices.{name}"] = _plain(office)
            continue
        out[f.name] = _plain(section)
    return out


def _plain(section: Any) -> dict[str, Any]:
    """A settings dataclass as TOML-like values; unset optional keys are left out."""
    values: dict[str, Any] = {}
    for sf in fields(section):
        value = getattr(section, sf.name)
        if value is None:
            continue
        if isinstance(value, Path):
            value = str(value)
        elif isinstance(value, tuple):
            value = [_plain(v) if hasattr(v, "__dataclass_fields__") else v for v in value]
        values[sf.name] = value
    return values
