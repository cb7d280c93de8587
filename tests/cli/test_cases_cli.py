"""The staff CLI, run as staff run it: the installed `stopitd` command."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from tests.store.test_cases import _save

STOPITD = str(Path(sys.executable).parent / "stopitd")


def _config(tmp_path: Path, url: str) -> Path:
    path = tmp_path / "stopitd.toml"
    path.write_text(f'[database]\nurl = "{url}"\n[spool]\npath = "spool"\n')
    return path


def run(*args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "COLUMNS": "200"}  # a wide terminal, so rich does not wrap
    return subprocess.run([STOPITD, *args], capture_output=True, text=True, check=False, env=env)


def test_cases_list_and_show_json(tmp_path: Path, store_url: str) -> None:
    case_id = _save(store_url, "019ab5f0-0000-7000-8000-0000000000c1")
    cfg = str(_config(tmp_path, store_url))
    listed = run("cases", "list", "--json", "--config", cfg)
    assert listed.returncode == 0, listed.stderr
    rows = json.loads(listed.stdout)
    assert len(rows) == 1
    row = rows[0]
    for key in (
        "id",
        "tag",
        "status",
        "subject",
        "created",
        "report_count",
        "reporter_count",
        "source",
        "related",
    ):
        assert key in row
    assert row["id"] == case_id and row["report_count"] == 1 and row["reporter_count"] == 1
    assert set(row["source"]) >= {"relay_ip", "origin_ip", "mode"}

    shown = run("--config", cfg, "cases", "show", str(case_id), "--json")
    assert shown.returncode == 0, shown.stderr
    case = json.loads(shown.stdout)
    assert case["originals"][0]["how"] == "attachment"
    assert case["reports"][0]["reporter"] == "jdoe@example.edu"
    assert {"notes", "events"} <= set(case)


def test_cases_readable_output_names_the_case(tmp_path: Path, sqlite_url: str) -> None:
    case_id = _save(sqlite_url, "019ab5f0-0000-7000-8000-0000000000c2")
    cfg = str(_config(tmp_path, sqlite_url))
    listed = run("cases", "list", "--config", cfg)
    assert listed.returncode == 0, listed.stderr
    assert "you know what you did" in listed.stdout
    shown = run("cases", "show", str(case_id), "--config", cfg)
    assert shown.returncode == 0, shown.stderr
    assert "k.harlow.1987@gmail.com" in shown.stdout
    assert "209.85.221.54" in shown.stdout


def test_missing_case_and_unmigrated_store_are_clear_errors(tmp_path: Path) -> None:
    cfg = str(_config(tmp_path, f"sqlite:///{tmp_path}/new.db"))
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
