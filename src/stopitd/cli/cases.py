"""`stopitd cases …`: the staff's view of the case base, and what they do to cases."""

from __future__ import annotations

import functools
import getpass
import ipaddress
import json
import logging
import os
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

import click
from rich.console import Console
from rich.table import Table
from sqlalchemy.orm import Session

from stopitd import verify
from stopitd.analysis.model import analysis_from_json
from stopitd.cli.common import config_option, state
from stopitd.config import Settings
from stopitd.errors import StopitdError
from stopitd.render.auth import render_auth
from stopitd.render.hops import render_hops, render_source
from stopitd.render.originals import render_original_summary
from stopitd.store import actions, db
from stopitd.store.export import export_case
from stopitd.store.queries import CaseFilter, list_cases, related_cases, show_case
from stopitd.store.reanalysis import Verifier, cases_to_reanalyze, no_dns, reanalyze_case
from stopitd.store.retention import purge, purgeable
from stopitd.store.schema import CaseStatus

log = logging.getLogger("stopitd.cases")
F = TypeVar("F", bound=Callable[..., Any])


@contextmanager
def store_session(ctx: click.Context) -> Iterator[Session]:
    """A session on the configured store, refused when its schema is behind."""
    settings = state(ctx).settings()
    engine = db.make_engine(settings.database.url)
    try:
        try:
            db.check_current(engine)
        except StopitdError as e:
            raise click.ClickException(str(e)) from None
        with db.make_sessionmaker(engine)() as session:
            yield session
    finally:
        engine.dispose()


def settings_of(ctx: click.Context) -> Settings:
    return state(ctx).settings()


def parse_when(value: str | None) -> datetime | None:
    """A date (2026-11-25) or ISO time; naive values are UTC."""
    if value is None:
        return None
    try:
        when = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise click.BadParameter(f"{value!r} is not a date (YYYY-MM-DD or ISO 8601)") from None
    return when if when.tzinfo else when.replace(tzinfo=UTC)


def staff_identity(explicit: str | None) -> str:
    """Who acts, for the event log: --as, else the login user (the one behind sudo)."""
    if explicit:
        return explicit.strip()
    return os.environ.get("SUDO_USER") or getpass.getuser()


def as_option(func: F) -> F:
    return click.option(
        "--as", "actor", metavar="NAME", help="Who acts (for the event log); default: login user."
    )(func)


def json_option(func: F) -> F:
    return click.option("--json", "as_json", is_flag=True, help="JSON (docs/cases-json.md).")(func)


def echo_json(data: Any) -> None:
    click.echo(json.dumps(data, ensure_ascii=False, indent=1))


def _short_time(value: str | None) -> str:
    return (value or "").replace("T", " ").rstrip("Z")


@click.group("cases")
def cases_group() -> None:
    """List, show and work on cases."""


def _check_ip(_ctx: click.Context, _param: click.Parameter, value: str | None) -> str | None:
    if value is None:
        return None
    try:
        ipaddress.ip_network(value.strip(), strict=False)
    except ValueError:
        raise click.BadParameter(f"{value!r} is not an IP address or CIDR") from None
    return value.strip()


@cases_group.command("list")
@config_option
@click.option(
    "--status", type=click.Choice([s.value for s in CaseStatus]), help="Only this status."
)
@click.option("--office", help="Only cases routed to this office.")
@click.option("--assignee", help="Only cases assigned to this person.")
@click.option("--since", help="Created on or after this date (YYYY-MM-DD or ISO time, UTC).")
@click.option("--until", help="Created before this date.")
@click.option("--ip", callback=_check_ip, help="Relay or origin IP, or a CIDR (203.0.113.0/24).")
@click.option("--domain", help="From, DKIM or envelope-sender domain.")
@click.option("--text", help="Text in the subject or the From address (any case).")
@click.option(
    "--limit",
    type=click.IntRange(min=0),
    default=100,
    show_default=True,
    help="At most this many cases (0: all).",
)
@json_option
@click.pass_context
def list_command(
    ctx: click.Context,
    status: str | None,
    office: str | None,
    assignee: str | None,
    since: str | None,
    until: str | None,
    ip: str | None,
    domain: str | None,
    text: str | None,
    limit: int,
    as_json: bool,
) -> None:
    """List cases, newest first."""
    flt = CaseFilter(
        status=status,
        office=office,
        assignee=assignee,
        since=parse_when(since),
        until=parse_when(until),
        ip=ip,
        domain=domain,
        text=text,
        limit=limit or None,
    )
    prefix = settings_of(ctx).reply.tag_prefix
    with store_session(ctx) as session:
        rows = list_cases(session, flt, tag_prefix=prefix)
    if as_json:
        echo_json(rows)
        return
    table = Table(title=f"{len(rows)} case(s)", title_justify="left")
    for col in (
        "id",
        "status",
        "created",
        "office",
        "assignee",
        "reports",
        "source",
        "from",
        "subject",
        "related",
    ):
        table.add_column(col)
    for row in rows:
        src = row["source"]
        table.add_row(
            str(row["id"]),
            row["status"],
            _short_time(row["created"]),
            row["office"] or "",
            row["assignee"] or "",
            f"{row['report_count']} ({row['reporter_count']} reporters)"
            + (f" FLOOD ({row['flood']})" if row.get("flood") else ""),
            f"{src['mode']} {src['origin_ip'] or src['relay_ip']}".strip(),
            row["from"],
            row["subject"],
            ", ".join(f"#{r}" for r in row["related"][:5])
            + (" …" if len(row["related"]) > 5 else ""),
        )
    Console().print(table)


@cases_group.command("show")
@config_option
@click.argument("case_id", type=int)
@json_option
@click.pass_context
def show_command(ctx: click.Context, case_id: int, as_json: bool) -> None:
    """Show one case: its reports, each original with hops and verdict, its history."""
    prefix = settings_of(ctx).reply.tag_prefix
    with store_session(ctx) as session:
        data = show_case(session, case_id, tag_prefix=prefix)
    if data is None:
        raise click.ClickException(f"no case {case_id}")
    if as_json:
        echo_json(data)
        return
    _print_case(data)


def _print_case(data: dict[str, Any]) -> None:
    console = Console()
    console.rule(f"{data['tag']} {data['subject']}")
    console.print(
        f"status {data['status']}, created {_short_time(data['created'])}, "
        f"office {data['office'] or '-'}, assignee {data['assignee'] or '-'}; "
        f"{data['report_count']} report(s) from {data['reporter_count']} reporter(s)"
    )
    if data.get("flood") == "reporter":
        console.print("FLOOD: one reporter sent more reports than the flood rate; grouped here")
    elif data.get("flood") == "original":
        console.print("FLOOD: this original was reported more often than the flood rate")
    if data["related"]:
        console.print("related cases: " + ", ".join(f"#{r}" for r in data["related"]))
    for report in data["reports"]:
        versions = ", ".join(
            a["analyzer_version"] + (" (current)" if a["current"] else "")
            for a in report["analyses"]
        )
        console.print(
            f"report {report['spool_id']} received {_short_time(report['received_at'])} "
            f"({report['joined_by']}, {report['size']} bytes, sha256 {report['sha256'][:16]}…, "
            f"analyser {versions})"
        )
        for finding in report["findings"]:
            console.print(f"  {finding['severity']} {finding['code']}: {finding['text']}")
    wrapper = {"schema_version": 1, "report": {}, "originals": data["originals"]}
    for n, original in enumerate(analysis_from_json(wrapper).originals, 1):
        console.rule(f"original {n}", style="dim")
        console.print(render_original_summary(original))
        console.print(render_hops(original))
        console.print(render_source(original))
        console.print(render_auth(original))
    if data["identities"]:
        console.rule("identities", style="dim")
        for ident in data["identities"]:
            mark = "" if ident["links"] else "  (shared: does not link cases)"
            console.print(f"{ident['kind']}: {ident['value']}{mark}")
    if data["notes"]:
        console.rule("notes", style="dim")
        for note in data["notes"]:
            console.print(f"{_short_time(note['at'])} {note['author']}: {note['text']}")
    console.rule("history", style="dim")
    for ev in data["events"]:
        detail = ", ".join(f"{k}={v}" for k, v in ev["detail"].items() if k != "report")
        console.print(f"{_short_time(ev['at'])} {ev['actor']}: {ev['kind']} {detail}".rstrip())


def _act(
    ctx: click.Context,
    case_id: int,
    as_json: bool,
    action: Callable[[Session], bool],
    done: str,
    unchanged: str,
) -> None:
    with store_session(ctx) as session:
        try:
            with session.begin():
                changed = action(session)
        except actions.CaseNotFoundError as e:
            raise click.ClickException(str(e)) from None
        data = show_case(session, case_id, tag_prefix=settings_of(ctx).reply.tag_prefix)
    if as_json:
        echo_json({"changed": changed, "case": data})
    else:
        click.echo(done if changed else unchanged)


@cases_group.command("assign")
@config_option
@click.argument("case_id", type=int)
@click.argument("assignee", required=False)
@click.option("--unassign", is_flag=True, help="Remove the assignee.")
@as_option
@json_option
@click.pass_context
def assign_command(
    ctx: click.Context,
    case_id: int,
    assignee: str | None,
    unassign: bool,
    actor: str | None,
    as_json: bool,
) -> None:
    """Assign a case to a person (or --unassign)."""
    if not unassign and not assignee:
        raise click.UsageError("name an ASSIGNEE, or give --unassign")
    who = staff_identity(actor)
    target = None if unassign else assignee
    _act(
        ctx,
        case_id,
        as_json,
        lambda s: actions.assign(s, case_id, target, who),
        f"case {case_id} assigned to {target or 'nobody'}",
        f"case {case_id} already assigned to {target or 'nobody'}",
    )


def _office_names(settings: Settings) -> set[str] | None:
    """Office names from config ([offices.NAME]), or None when none are configured."""
    offices = getattr(settings, "offices", None)
    if not offices:
        return None
    if isinstance(offices, dict):
        return {str(k) for k in offices}
    return {str(getattr(o, "name", o)) for o in offices}


def _route_and_mail(
    ctx: click.Context, session: Session, case_id: int, office: str, who: str
) -> bool:
    """Set the office; when it changed, mail the office in the same transaction."""
    from stopitd.outbound import queue_route_mail

    changed = actions.route(session, case_id, office, who)
    settings = settings_of(ctx)
    if changed and settings.outbound.enabled and office in settings.offices:
        queue_route_mail(session, case_id, office, settings, actor=who)
    return changed


@cases_group.command("route")
@config_option
@click.argument("case_id", type=int)
@click.argument("office")
@as_option
@json_option
@click.pass_context
def route_command(
    ctx: click.Context, case_id: int, office: str, actor: str | None, as_json: bool
) -> None:
    """Route a case to an office (one of the config's [offices.NAME])."""
    names = _office_names(settings_of(ctx))
    if names is not None and office not in names:
        raise click.ClickException(
            f"unknown office {office!r}: the config names {', '.join(sorted(names))}"
        )
    who = staff_identity(actor)
    _act(
        ctx,
        case_id,
        as_json,
        lambda s: _route_and_mail(ctx, s, case_id, office, who),
        f"case {case_id} routed to {office}",
        f"case {case_id} is already with {office}",
    )


@cases_group.command("status")
@config_option
@click.argument("case_id", type=int)
@click.argument("status", type=click.Choice([s.value for s in CaseStatus]))
@click.option("--reason", default="", help="Why (kept in the event log).")
@as_option
@json_option
@click.pass_context
def status_command(
    ctx: click.Context,
    case_id: int,
    status: str,
    reason: str,
    actor: str | None,
    as_json: bool,
) -> None:
    """Set a case's status."""
    who = staff_identity(actor)
    _act(
        ctx,
        case_id,
        as_json,
        lambda s: actions.set_status(s, case_id, CaseStatus(status), who, reason),
        f"case {case_id} is now {status}",
        f"case {case_id} is {status} already",
    )


@cases_group.command("close")
@config_option
@click.argument("case_id", type=int)
@click.option("--reason", default="", help="Why (kept in the event log).")
@as_option
@json_option
@click.pass_context
def close_command(
    ctx: click.Context, case_id: int, reason: str, actor: str | None, as_json: bool
) -> None:
    """Close a case."""
    who = staff_identity(actor)
    _act(
        ctx,
        case_id,
        as_json,
        lambda s: actions.close(s, case_id, who, reason),
        f"case {case_id} closed",
        f"case {case_id} is closed already",
    )


@cases_group.command("reopen")
@config_option
@click.argument("case_id", type=int)
@click.option("--reason", default="", help="Why (kept in the event log).")
@as_option
@json_option
@click.pass_context
def reopen_command(
    ctx: click.Context, case_id: int, reason: str, actor: str | None, as_json: bool
) -> None:
    """Reopen a closed case."""
    who = staff_identity(actor)
    _act(
        ctx,
        case_id,
        as_json,
        lambda s: actions.reopen(s, case_id, who, reason),
        f"case {case_id} reopened",
        f"case {case_id} is not closed",
    )


@cases_group.command("note")
@config_option
@click.argument("case_id", type=int)
@click.argument("text")
@as_option
@json_option
@click.pass_context
def note_command(
    ctx: click.Context, case_id: int, text: str, actor: str | None, as_json: bool
) -> None:
    """Add a note to a case ("-" reads the note from standard input)."""
    if text == "-":
        text = sys.stdin.read()
    if not text.strip():
        raise click.UsageError("the note is empty")
    who = staff_identity(actor)

    def add(session: Session) -> bool:
        actions.add_note(session, case_id, text.strip(), who)
        return True

    _act(ctx, case_id, as_json, add, f"note added to case {case_id}", "")


@cases_group.command("related")
@config_option
@click.argument("case_id", type=int)
@click.option("--limit", type=click.IntRange(min=1), default=50, show_default=True)
@json_option
@click.pass_context
def related_command(ctx: click.Context, case_id: int, limit: int, as_json: bool) -> None:
    """Cases that share a sender identity with this one, and what they share."""
    prefix = settings_of(ctx).reply.tag_prefix
    with store_session(ctx) as session:
        rows = related_cases(session, case_id, limit=limit, tag_prefix=prefix)
    if rows is None:
        raise click.ClickException(f"no case {case_id}")
    if as_json:
        echo_json(rows)
        return
    table = Table(title=f"{len(rows)} case(s) related to #{case_id}", title_justify="left")
    for col in (
        "id",
        "status",
        "created",
        "reports",
        "shared",
        "notice sent",
        "after notice",
        "subject",
    ):
        table.add_column(col)
    for row in rows:
        table.add_row(
            str(row["id"]),
            row["status"],
            _short_time(row["created"]),
            str(row["report_count"]),
            "; ".join(f"{s['kind']} {s['value']}" for s in row["shared"]),
            _short_time(row["notice_sent"]) or "-",
            "reported again" if row["reported_after_notice"] else "-",
            row["subject"],
        )
    Console().print(table)


@cases_group.command("export")
@config_option
@click.argument("case_id", type=int)
@click.option("--to", "dest", type=click.Path(), help="Folder (or .zip) to create.")
@click.option("--zip", "as_zip", is_flag=True, help="Write a zip file instead of a folder.")
@as_option
@json_option
@click.pass_context
def export_command(
    ctx: click.Context,
    case_id: int,
    dest: str | None,
    as_zip: bool,
    actor: str | None,
    as_json: bool,
) -> None:
    """Export a case's raw .eml files with a manifest (sha256 of each) as evidence."""
    as_zip = as_zip or bool(dest and dest.endswith(".zip"))
    path = Path(dest or (f"case-{case_id}.zip" if as_zip else f"case-{case_id}"))
    who = staff_identity(actor)
    prefix = settings_of(ctx).reply.tag_prefix
    with store_session(ctx) as session:
        try:
            with session.begin():
                manifest = export_case(
                    session, case_id, path, as_zip=as_zip, actor=who, tag_prefix=prefix
                )
        except actions.CaseNotFoundError as e:
            raise click.ClickException(str(e)) from None
        except OSError as e:
            raise click.ClickException(f"cannot export to {path}: {e}") from None
    if as_json:
        echo_json({"path": str(path), "manifest": manifest})
        return
    click.echo(f"case {case_id} exported to {path}: {len(manifest['files'])} file(s)")
    for f in manifest["files"]:
        click.echo(f"  {f['sha256']}  {f['name']}")


@cases_group.command("reanalyze")
@config_option
@click.argument("case_id", type=int, required=False)
@click.option("--all", "all_cases", is_flag=True, help="Every case with an older analysis.")
@click.option("--force", is_flag=True, help="Also reports already at this analyser version.")
@click.option("--no-dns", "skip_dns", is_flag=True, help="Skip DKIM/ARC/SPF/DMARC checks.")
@as_option
@json_option
@click.pass_context
def reanalyze_command(
    ctx: click.Context,
    case_id: int | None,
    all_cases: bool,
    force: bool,
    skip_dns: bool,
    actor: str | None,
    as_json: bool,
) -> None:
    """Analyse stored raw reports again (after an upgrade); old results are kept."""
    if (case_id is None) == (not all_cases):
        raise click.UsageError("give a CASE_ID or --all (not both)")
    settings = settings_of(ctx)
    policy = settings.policy()
    verifier: Verifier = no_dns
    if settings.dns.enabled and not skip_dns:
        dns_verifier = verify.default_verifier(settings.dns)  # one resolver for the run
        verifier = functools.partial(
            verify.verify_analysis, dns_settings=settings.dns, verifier=dns_verifier
        )

    who = staff_identity(actor)
    results = []
    with store_session(ctx) as session:
        ids = [case_id] if case_id is not None else cases_to_reanalyze(session, force=force)
        session.rollback()  # end the read; each case is then its own transaction
        for cid in ids:
            try:
                with session.begin():
                    result = reanalyze_case(
                        session,
                        cid,
                        policy=policy,
                        verifier=verifier,
                        actor=who,
                        force=force or case_id is not None,
                    )
            except actions.CaseNotFoundError as e:
                raise click.ClickException(str(e)) from None
            results.append(result)
    out = [
        {
            "case": r.case_id,
            "reports": r.reports,
            "skipped": r.skipped,
            "errors": list(r.errors),
            "from": list(r.from_versions),
            "to": r.to_version,
        }
        for r in results
    ]
    if as_json:
        echo_json(out)
    else:
        for r in results:
            click.echo(
                f"case {r.case_id}: {r.reports} report(s) analysed again "
                f"({', '.join(r.from_versions) or '-'} -> {r.to_version})"
                + (f", {r.skipped} already current" if r.skipped else "")
            )
            for err in r.errors:
                click.echo(f"  failed: {err}", err=True)
        if not results:
            click.echo("nothing to analyse again")
    if any(r.errors for r in results):
        ctx.exit(1)


@cases_group.command("purge")
@config_option
@click.option(
    "--older-than",
    "days",
    type=click.IntRange(min=1),
    help="Days since closing (default: [retention] closed_days).",
)
@click.option("--dry-run", is_flag=True, help="Only say which cases would go.")
@as_option
@json_option
@click.pass_context
def purge_command(
    ctx: click.Context, days: int | None, dry_run: bool, actor: str | None, as_json: bool
) -> None:
    """Delete closed cases (with their raw reports) closed more than N days ago."""
    days = days or settings_of(ctx).retention.closed_days
    who = staff_identity(actor)
    with store_session(ctx) as session:
        if dry_run:
            ids = purgeable(session, days)
            session.rollback()
            out: dict[str, Any] = {"dry_run": True, "older_than_days": days, "case_ids": ids}
        else:
            with session.begin():
                row = purge(session, days, who)
                out = {
                    "dry_run": False,
                    "older_than_days": days,
                    "cutoff": row.cutoff.isoformat().replace("+00:00", "Z"),
                    "case_ids": row.case_ids,
                    "report_count": row.report_count,
                    "by": who,
                }
            log.info(
                "cases_purged",
                extra={"cases": len(out["case_ids"]), "older_than_days": days, "actor": who},
            )
    if as_json:
        echo_json(out)
        return
    ids = out["case_ids"]
    verb = "would purge" if dry_run else "purged"
    click.echo(
        f"{verb} {len(ids)} closed case(s) closed more than {days} day(s) ago"
        + (": " + ", ".join(f"#{i}" for i in ids) if ids else "")
    )
