"""`stopitd analyze --json` prints exactly one line per file, whatever the headers carry."""

from __future__ import annotations

import json
from pathlib import Path

from click.testing import CliRunner

from stopitd.cli import main as cli_main
from tests.conftest import ROOT


def test_unicode_line_breaks_in_headers_do_not_split_a_result(tmp_path: Path) -> None:
    # NEL, LINE SEPARATOR and PARAGRAPH SEPARATOR in an encoded Subject and a display name
    original = (
        "Received: from mail.example.net (mail.example.net [198.51.100.25])\r\n"
        "\tby mx.example.edu with ESMTPS id 4AB; Tue, 24 Nov 2026 21:14:03 +0000\r\n"
        "From: =?utf-8?b?" + "TWFsbG9yeeKAqA==" + "?= <m@example.net>\r\n"
        "To: victim@example.edu\r\n"
        "Subject: =?utf-8?q?one=C2=85two=E2=80=A8three=E2=80=A9four?=\r\n"
        "Date: Tue, 24 Nov 2026 21:14:00 +0000\r\n"
        "Message-ID: <nel-1@example.net>\r\n\r\nbody\r\n"
    ).encode()
    path = tmp_path / "nel.eml"
    path.write_bytes(original)
    fuzz = sorted(str(p) for p in (ROOT / "fixtures" / "fuzz").glob("*.eml"))
    files = [str(path), *fuzz]
    result = CliRunner().invoke(cli_main, ["analyze", "--original", "--json", "--no-dns", *files])
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()  # str.splitlines breaks on NEL, LS and PS too
    assert len(lines) == len(files)
    parsed = [json.loads(line) for line in lines]
    assert [p["file"] for p in parsed] == files
    subject = parsed[0]["originals"][0]["subject"]
    assert subject == "one\x85two\u2028three\u2029four"  # the text itself is kept exactly
