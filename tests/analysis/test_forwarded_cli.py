"""`stopitd analyze --json` as staff run it: the installed console script, JSON Lines."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from .reports import FORWARDED

SCRIPT = Path(sys.executable).parent / "stopitd"
ORIGINAL_KEYS = {"how", "grade", "message_id", "from", "to", "subject", "date", "findings"}
REPORT_KEYS = {"message_id", "date", "from", "to", "subject", "findings", "attachments",
               "auto_submitted", "in_reply_to", "sha256", "size"}


def run(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    assert SCRIPT.exists(), (
        f"{SCRIPT} is missing: install the project into this venv (pip install -e '.[dev]')"
    )
    return subprocess.run(
        [str(SCRIPT), "analyze", *args],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=cwd,
        env={"PATH": "/usr/bin:/bin", "STOPITD_CONFIG": "", "HOME": str(cwd)},
        check=False,
    )


def test_json_lines_one_per_file_with_documented_keys(tmp_path: Path) -> None:
    files = [
        FORWARDED / "nested-forward-of-forward.eml",
        tmp_path / "does-not-exist.eml",
        FORWARDED / "gmail-inline.eml",
        FORWARDED / "no-original-screenshot.eml",
    ]
    proc = run("--json", "--no-dns", *map(str, files), cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert len(lines) == len(files)
    objs = [json.loads(line) for line in lines]
    assert [o["file"] for o in objs] == [str(f) for f in files]
    for obj in objs:
        assert obj["schema_version"] == 1
        assert obj["report"].keys() >= REPORT_KEYS
        for original in obj["originals"]:
            assert original.keys() >= ORIGINAL_KEYS
            assert all({"code", "text"} <= f.keys() for f in original["findings"])
    nested, missing, inline, nothing = objs
    assert [o["how"] for o in nested["originals"]] == ["attachment", "attachment"]
    assert nested["originals"][1]["message_id"] == (
        "CAJx7Qm1R8Tq4pZ0vK2wN5sYt3uE9hB6dL1cF@mail.gmail.com"
    )
    assert nested["originals"][1]["found_in"] == 0
    assert missing["originals"] == []
    assert [f["code"] for f in missing["report"]["findings"]] == ["unreadable"]
    assert missing["report"]["findings"][0]["severity"] == "error"
    assert inline["originals"][0]["grade"] == "inline-summary"
    assert [f["code"] for f in nothing["report"]["findings"]] == ["no-original"]


def test_original_flag_treats_the_file_as_the_message(tmp_path: Path) -> None:
    path = FORWARDED / "resent-redirect.eml"
    proc = run("--json", "--no-dns", "--original", str(path), cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    (obj,) = [json.loads(line) for line in proc.stdout.splitlines()]
    assert [o["how"] for o in obj["originals"]] == ["direct"]


def test_readable_summary_names_how_each_original_was_found(tmp_path: Path) -> None:
    proc = run("--no-dns", str(FORWARDED / "arf-feedback-report.eml"), cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert "arf" in proc.stdout
    assert "Feedback-Type" in proc.stdout and "abuse" in proc.stdout
