"""The staff CLI, run as staff run it: the installed `stopitd` command, on both databases."""

from __future__ import annotations

import getpass
import hashlib
import json
import os
import subprocess
import sys
import zipfile
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from click.testing import CliRunner
from sqlalchemy import select, update

from stopitd.cli import main as cli_main
from stopitd.store import db
from stopitd.store.cases import save_report
from stopitd.store.schema import Case, Purge, Report
from tests.store.reports import analysis_of, envelope, report, save

STOPITD = str(Path(sys.executable).parent / "stopitd")


def _config(tmp_path: Path, url: str) -> str:
    path = tmp_path / "stopitd.toml"
    path.write_text(f'[database]\nurl = "{url}"\n[spool]\npath = "spool"\n[dns]\nenabled = false\n')
    return str(path)


def run(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    """`stopitd ARGS` as staff type it: the installed command's own argument parsing and
    exit status, run in this process (a fresh interpreter per call cost most of the suite's
    time); `test_the_installed_command_runs` proves the real executable works the same."""
    previous = Path.cwd()
    if cwd is not None:
        os.chdir(cwd)
    try:
        result = CliRunner().invoke(cli_main, list(args), env={"COLUMNS": "200"})
    finally:
        os.chdir(previous)
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        raise result.exception
    return subprocess.CompletedProcess(
        [STOPITD, *args], result.exit_code, result.stdout, result.stderr
    )


def run_installed(*args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "COLUMNS": "200"}  # a wide terminal, so rich does not wrap
    return subprocess.run([STOPITD, *args], capture_output=True, text=True, check=False, env=env)


def ok(*args: str, cwd: Path | None = None) -> str:
    out = run(*args, cwd=cwd)
    assert out.returncode == 0, f"stopitd {' '.join(args)} failed:\n{out.stderr}"
    return out.stdout


def js(*args: str) -> Any:
    return json.loads(ok(*args, "--json"))


def test_cases_list_and_show_json(tmp_path: Path, store_url: str) -> None:
    case_id = save(store_url, "019ab5f0-0000-7000-8000-0000000000c1", report(1))
    cfg = _config(tmp_path, store_url)
    rows = js("cases", "list", "--config", cfg)
    assert len(rows) == 1
    row = rows[0]
    for key in ("id", "tag", "status", "subject", "created", "report_count", "reporter_count"):
        assert key in row
    assert row["id"] == case_id and row["report_count"] == 1 and row["reporter_count"] == 1
    assert set(row["source"]) >= {"relay_ip", "origin_ip", "mode"}
    assert row["related"] == []

    case = json.loads(ok("--config", cfg, "cases", "show", str(case_id), "--json"))
    assert case["originals"][0]["how"] == "attachment"
    assert case["originals"][0]["hops"][0]["ip"] == "198.51.100.25"
    assert case["reports"][0]["reporter"] == "jdoe@example.edu"
    assert {"notes", "events", "identities"} <= set(case)


def test_the_installed_command_runs(tmp_path: Path, store_url: str) -> None:
    """The other tests run the click command in-process; this one runs the installed
    executable (its own interpreter, entry point and exit codes) and checks it agrees."""
    case_id = save(store_url, "019ab5f0-0000-7000-8000-0000000000c2", report(1))
    cfg = _config(tmp_path, store_url)
    installed = run_installed("--config", cfg, "cases", "show", str(case_id), "--json")
    assert installed.returncode == 0, installed.stderr
    assert json.loads(installed.stdout) == json.loads(
        ok("--config", cfg, "cases", "show", str(case_id), "--json")
    )
    missing = run_installed("--config", cfg, "cases", "show", "999")
    assert missing.returncode != 0 and "no case 999" in missing.stderr


def test_list_filters(tmp_path: Path, store_url: str) -> None:
    a = save(store_url, "s-a", report(1, sender="pest@harass.example", relay="185.220.101.7"))
    b = save(store_url, "s-b", report(2, sender="other@mail.example", relay="2a02:418::7"))
    c = save(store_url, "s-c", report(3, sender="third@mail.example", relay="192.0.2.9"))
    cfg = _config(tmp_path, store_url)
    ok("cases", "route", str(a), "dean-of-students", "--as", "alice", "--config", cfg)
    ok("cases", "assign", str(b), "bob", "--config", cfg)
    ok("cases", "close", str(c), "--config", cfg)

    def ids(*flt: str) -> list[int]:
        return [r["id"] for r in js("cases", "list", *flt, "--config", cfg)]

    assert ids() == [c, b, a]
    assert ids("--status", "closed") == [c]
    assert ids("--status", "new") == [b, a]
    assert ids("--office", "dean-of-students") == [a]
    assert ids("--assignee", "bob") == [b]
    assert ids("--ip", "185.220.101.0/24") == [a]
    assert ids("--ip", "2a02:418::7") == [b]
    assert ids("--domain", "mail.example") == [c, b]
    assert ids("--text", "PEST@") == [a]
    assert ids("--text", "you know what") == [c, b, a]
    assert ids("--since", "2999-01-01") == []
    assert ids("--until", "2999-01-01", "--limit", "2") == [c, b]
    bad = run("cases", "list", "--ip", "not-an-ip", "--config", cfg)
    assert bad.returncode == 2 and "not an IP address or CIDR" in bad.stderr

    table = ok("cases", "list", "--config", cfg)
    assert "dean-of-students" in table and "pest@harass.example" in table
    assert "3 case(s)" in table


def test_staff_actions_are_logged_with_who(tmp_path: Path, store_url: str) -> None:
    case_id = save(store_url, "s-1", report(1))
    cfg = _config(tmp_path, store_url)
    n = str(case_id)
    assert "assigned to carol" in ok(
        "cases", "assign", n, "carol", "--as", "alice", "--config", cfg
    )
    assert "already assigned" in ok("cases", "assign", n, "carol", "--config", cfg)
    ok("cases", "route", n, "title-ix", "--as", "alice", "--config", cfg)
    ok("cases", "status", n, "waiting", "--reason", "asked the reporter", "--config", cfg)
    ok("cases", "note", n, "Called the reporter; she is safe.", "--as", "carol", "--config", cfg)
    ok("cases", "close", n, "--as", "carol", "--reason", "sender stopped", "--config", cfg)
    assert "is closed already" in ok("cases", "close", n, "--config", cfg)
    result = js("cases", "reopen", n, "--as", "dan", "--config", cfg)
    assert result["changed"] is True
    case = result["case"]
    assert (case["status"], case["assignee"], case["office"]) == ("open", "carol", "title-ix")
    assert case["notes"] == [
        {
            "at": case["notes"][0]["at"],
            "author": "carol",
            "text": "Called the reporter; she is safe.",
        }
    ]
    log = [(e["actor"], e["kind"]) for e in case["events"]]
    me = getpass.getuser()
    assert log == [
        ("stopitd", "created"),
        ("alice", "assigned"),
        ("alice", "routed"),
        (me, "status_changed"),
        ("carol", "note_added"),
        ("carol", "closed"),
        ("dan", "reopened"),
    ]
    assert case["events"][3]["detail"] == {
        "from": "new",
        "to": "waiting",
        "reason": "asked the reporter",
    }
    shown = ok("cases", "show", n, "--config", cfg)
    assert "Called the reporter" in shown and "dan: reopened" in shown
    missing = run("cases", "assign", "999", "x", "--config", cfg)
    assert missing.returncode == 1 and "no case 999" in missing.stderr


def test_related_shows_what_is_shared_and_whether_a_notice_worked(
    tmp_path: Path, store_url: str
) -> None:
    a = save(store_url, "s-1", report(1, sender="pest@harass.example"))
    b = save(store_url, "s-2", report(2, sender="pest@harass.example", relay="185.220.101.7"))
    c = save(store_url, "s-3", report(3, sender="x@other.example", relay="185.220.101.9"))
    cfg = _config(tmp_path, store_url)
    rows = js("cases", "related", str(b), "--config", cfg)
    assert [r["id"] for r in rows] == [c, a]
    assert {"kind": "from_address", "value": "pest@harass.example"} in rows[1]["shared"]
    # only the /24 is shared (the analysis may name the hand-off as relay and origin both)
    assert {s["value"] for s in rows[0]["shared"]} == {"185.220.101.0/24"}
    assert {"kind": "relay_prefix", "value": "185.220.101.0/24"} in rows[0]["shared"]
    assert rows[1]["notice_sent"] is None and rows[1]["reported_after_notice"] is False
    table = ok("cases", "related", str(b), "--config", cfg)
    assert "from_address pest@harass.example" in table
    assert json.loads(ok("cases", "list", "--json", "--config", cfg))[1]["related"] == [c, a]


def test_export_folder_and_zip_carry_raw_bytes_and_sha256(tmp_path: Path, store_url: str) -> None:
    raw = report(1)
    case_id = save(store_url, "s-1", raw)
    save(store_url, "s-2", report(1, reporter="ann@example.edu"), "ann@example.edu")
    cfg = _config(tmp_path, store_url)
    folder = tmp_path / "out" / "case"
    out = js("cases", "export", str(case_id), "--to", str(folder), "--as", "eve", "--config", cfg)
    names = [f["name"] for f in out["manifest"]["files"]]
    assert names == [
        "report-1.eml",
        "report-1-original-1.eml",
        "report-2.eml",
        "report-2-original-1.eml",
        "case.json",
    ]
    assert (folder / "report-1.eml").read_bytes() == raw
    manifest = json.loads((folder / "manifest.json").read_text())
    for f in manifest["files"]:
        assert hashlib.sha256((folder / f["name"]).read_bytes()).hexdigest() == f["sha256"]
    original = (folder / "report-1-original-1.eml").read_bytes()
    assert original.startswith(b"Return-Path: <k.harlow.1987@gmail.com>")
    again = run("cases", "export", str(case_id), "--to", str(folder), "--config", cfg)
    assert again.returncode == 1 and "exists already" in again.stderr

    ok("cases", "export", str(case_id), "--zip", "--config", cfg, cwd=tmp_path)
    with zipfile.ZipFile(tmp_path / f"case-{case_id}.zip") as zf:
        zmanifest = json.loads(zf.read("manifest.json"))
        for f in zmanifest["files"]:
            assert hashlib.sha256(zf.read(f["name"])).hexdigest() == f["sha256"]
        assert zf.read("report-1.eml") == raw
    events = js("cases", "show", str(case_id), "--config", cfg)["events"]
    assert next((e["actor"], e["kind"]) for e in events if e["kind"] == "exported") == (
        "eve",
        "exported",
    )


def test_reanalyze_keeps_the_old_result(tmp_path: Path, store_url: str) -> None:
    raw = report(1)
    old = replace(analysis_of(raw), analyzer_version="0.0.9")
    engine = db.make_engine(store_url)
    with db.make_sessionmaker(engine)() as session, session.begin():
        case_id = save_report(session, spool_id="s-old", envelope=envelope(), raw=raw, analysis=old)
    engine.dispose()
    current = save(store_url, "s-new", report(2))
    cfg = _config(tmp_path, store_url)

    out = js("cases", "reanalyze", "--all", "--no-dns", "--as", "ops", "--config", cfg)
    assert [(r["case"], r["reports"], r["from"]) for r in out] == [(case_id, 1, ["0.0.9"])]
    case = js("cases", "show", str(case_id), "--config", cfg)
    analyses = case["reports"][0]["analyses"]
    assert [(a["analyzer_version"], a["current"]) for a in analyses] == [
        ("0.0.9", False),
        (out[0]["to"], True),
    ]
    assert case["reports"][0]["analyzer_version"] == out[0]["to"]
    assert len(case["originals"]) == 1  # only the current analysis's originals
    assert case["events"][-1]["kind"] == "reanalyzed" and case["events"][-1]["actor"] == "ops"
    assert "nothing to analyse again" in ok("cases", "reanalyze", "--all", "--config", cfg)
    one = js("cases", "reanalyze", str(current), "--no-dns", "--config", cfg)
    assert one[0]["reports"] == 1  # naming a case re-runs it even at the same version
    assert run("cases", "reanalyze", "--config", cfg).returncode == 2


def test_purge_removes_only_old_closed_cases_and_leaves_a_summary(
    tmp_path: Path, store_url: str
) -> None:
    old = save(store_url, "s-1", report(1))
    recent = save(store_url, "s-2", report(2))
    still_open = save(store_url, "s-3", report(3))
    cfg = _config(tmp_path, store_url)
    ok("cases", "close", str(old), "--config", cfg)
    ok("cases", "close", str(recent), "--config", cfg)
    engine = db.make_engine(store_url)
    with db.make_sessionmaker(engine)() as session, session.begin():
        long_ago = datetime.now(UTC) - timedelta(days=400)
        session.execute(update(Case).where(Case.id == old).values(closed_at=long_ago))
        session.execute(update(Case).where(Case.id == still_open).values(created_at=long_ago))
    dry = js("cases", "purge", "--dry-run", "--config", cfg)
    assert dry["case_ids"] == [old]
    out = js("cases", "purge", "--as", "retention-cron", "--config", cfg)  # config: 365 days
    assert (out["case_ids"], out["report_count"]) == ([old], 1)
    assert [r["id"] for r in js("cases", "list", "--config", cfg)] == [recent, still_open]
    with db.make_sessionmaker(engine)() as session:
        assert session.scalars(select(Report.spool_id)).all() == ["s-2", "s-3"]
        purge = session.scalars(select(Purge)).one()
        assert (purge.actor, purge.case_ids, purge.older_than_days) == (
            "retention-cron",
            [old],
            365,
        )
    engine.dispose()
    # the purged case's number is never handed out again
    assert save(store_url, "s-4", report(4)) > still_open
    assert "purged 0 closed case(s)" in ok("cases", "purge", "--older-than", "1", "--config", cfg)


def test_sources_top_and_stats(tmp_path: Path, store_url: str) -> None:
    for n in range(3):
        save(store_url, f"p-{n}", report(n, sender="pest@harass.example", relay="185.220.101.7"))
    save(
        store_url,
        "dup",
        report(0, reporter="ann@example.edu", sender="pest@harass.example", relay="185.220.101.7"),
        "ann@example.edu",
    )
    other = save(store_url, "o-1", report(9, sender="x@other.example"))
    cfg = _config(tmp_path, store_url)
    top = js("sources", "top", "--by", "from_address", "--config", cfg)
    assert [(r["value"], r["cases"], r["reports"]) for r in top] == [
        ("pest@harass.example", 3, 4),
        ("x@other.example", 1, 1),
    ]
    assert js("sources", "top", "--by", "relay_ip", "--limit", "1", "--config", cfg)[0] == {
        **js("sources", "top", "--by", "relay_ip", "--config", cfg)[0],
        "value": "185.220.101.7",
        "cases": 3,
    }
    assert "pest@harass.example" in ok("sources", "top", "--by", "from_address", "--config", cfg)
    ok("cases", "close", str(other), "--config", cfg)
    ok("cases", "route", str(other), "police-liaison", "--config", cfg)
    stats = js("stats", "--config", cfg)
    assert stats["total"] == 4
    assert stats["by_status"] == {"new": 3, "closed": 1}
    assert stats["by_mode"] == {"handoff": 4}
    assert stats["by_office"] == {"": 3, "police-liaison": 1}
    monday = datetime.now(UTC).date() - timedelta(days=datetime.now(UTC).weekday())
    assert stats["by_week"] == {monday.isoformat(): 4}
    assert js("stats", "--since", "2999-01-01", "--config", cfg)["total"] == 0
    text = ok("stats", "--config", cfg)
    assert "police-liaison" in text and "4 case(s)" in text


def test_missing_case_and_unmigrated_store_are_clear_errors(tmp_path: Path) -> None:
    cfg = _config(tmp_path, f"sqlite:///{tmp_path}/new.db")
    out = run("cases", "list", "--config", cfg)
    assert out.returncode != 0
    assert "stopitd db upgrade" in out.stderr
    assert run("db", "upgrade", "--config", cfg).returncode == 0
    assert run("db", "current", "--config", cfg).returncode == 0
    missing = run("cases", "show", "999", "--config", cfg)
    assert missing.returncode != 0 and "no case 999" in missing.stderr


def test_check_config_reports_the_bad_key(tmp_path: Path) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text('[smtp]\nlisten = "127.0.0.1:2525"\nreport_adresses = ["a@b"]\n')
    out = run("check-config", "--config", str(bad))
    assert out.returncode != 0
    assert "smtp.report_adresses" in out.stderr
    good = run("check-config", "--config", "config/stopitd.example.toml")
    assert good.returncode == 0, good.stderr
    assert 'listen = "127.0.0.1:2525"' in good.stdout
    assert 'tag_prefix = "stopit"' in good.stdout
