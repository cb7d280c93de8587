"""Every benchmark entry point runs end to end at a tiny size and prints its table.

No timing is asserted here (figures come from `make bench`, see docs/performance.md):
these prove that the servers start, the loads are accepted and stored, SpamAssassin and
stopitd both parse the fixtures, and each part writes its table and JSON.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from bench.common import FIXTURES, ROOT, BenchError, require_tool
from bench.servers import serve_available

pytestmark = pytest.mark.timeout(600)


@pytest.fixture(autouse=True)
def out_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Each run writes its JSON to its own folder: the suite runs tests in parallel."""
    monkeypatch.setenv("STOPITD_BENCH_OUT", str(tmp_path))
    return tmp_path


def run_bench(*argv: str) -> str:
    done = subprocess.run(
        [sys.executable, "-m", *argv],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=540,
        env={**os.environ, "COLUMNS": "200"},
    )
    assert done.returncode == 0, f"{' '.join(argv)} failed:\n{done.stdout}\n{done.stderr}"
    return done.stdout


def cells(line: str) -> list[str]:
    return [c.strip() for c in line.split("|")]


def row(table: str, metric: str) -> str:
    """The table line whose metric column starts with METRIC."""
    for line in table.splitlines():
        found = cells(line)
        if len(found) > 3 and found[2].startswith(metric):
            return line
    raise AssertionError(f"no row {metric!r} in:\n{table}")


def value(line: str) -> str:
    return cells(line)[3]


def number(text: str) -> float:
    m = re.search(r"[\d,]+(\.\d+)?", text)
    assert m, f"no number in {text!r}"
    return float(m.group(0).replace(",", ""))


def out_path() -> Path:
    return Path(os.environ["STOPITD_BENCH_OUT"])


def load(name: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((out_path() / f"{name}.json").read_text())
    return data


def test_missing_tool_names_its_debian_package() -> None:
    with pytest.raises(BenchError, match=r"install the Debian package 'postfix'"):
        require_tool("smtp-source-that-is-not-installed", "postfix")


def test_intake_runs_all_servers_and_loses_nothing() -> None:
    out = run_bench(
        "bench.intake",
        "--messages", "60", "--single", "10", "--latency", "20", "--sessions", "5",
    )  # fmt: skip
    for server in ("bare", "durable", "durable-group"):
        assert number(value(row(out, f"msgs/s, 5 sessions: {server}"))) > 0
        assert number(value(row(out, f"msgs/s, 1 session: {server}"))) > 0
    assert number(value(row(out, "msgs/s, 5 sessions: durable-group / durable"))) > 0
    data = load("intake")
    assert data["runs"]["durable"]["stored"] == 50 + 60 + 10 + 2 * 20
    assert data["runs"]["durable-group"]["stored"] == 50 + 60 + 10 + 2 * 20
    # the 10 one-session messages went in 5 interleaved rounds (the default) to each server
    assert len(data["runs"]["durable"]["single_rounds_seconds"]) == 5
    assert len(data["runs"]["bare"]["single_rounds_seconds"]) == 5
    stopitd = value(row(out, "msgs/s, 5 sessions: stopitd"))
    if serve_available():
        assert number(stopitd) > 0
        assert data["runs"]["stopitd"]["stored"] == 50 + 60 + 10 + 2 * 20
        assert number(value(row(out, "cases/s end to end"))) > 0
        assert data["runs"]["stopitd"]["samples"], "the backlog curve has no samples"
    else:
        assert stopitd == "pending"


def test_analysis_compares_with_spamassassin_and_profiles() -> None:
    out = run_bench("bench.analysis", "--messages", "40")
    assert number(value(row(out, "SpamAssassin Received parse, ms/msg"))) > 0
    assert number(value(row(out, "stopitd analyze --original, ms/msg"))) > 0
    assert "x" in value(row(out, "SA / stopitd, per message"))
    row(out, "profile, self time")
    data = load("analysis")
    assert data["messages"] >= 40
    assert data["spamassassin"]["relays"] > 0, "SpamAssassin parsed no relay at all"
    assert data["stopitd"]["originals"] == data["messages"]
    assert (out_path() / "analysis-profile.html").is_file()


def test_analysis_measures_mail_given_with_mail(tmp_path: Path) -> None:
    """`--mail FOLDER`: both sides get the messages there (hidden files left out), not
    the fixtures; a path that does not exist is an error naming it."""
    mail = tmp_path / "my-mail"
    (mail / "cur").mkdir(parents=True)
    (mail / "cur" / "1.eml").write_bytes(
        (FIXTURES / "delivered" / "gmail-to-m365.eml").read_bytes()
    )
    (mail / "2.eml").write_bytes((FIXTURES / "received" / "icloud-to-gmail.eml").read_bytes())
    (mail / ".index").write_bytes(b"not mail")
    out = run_bench("bench.analysis", "--messages", "6", "--no-profile", "--mail", str(mail))
    assert "--mail" in row(out, "messages (")
    data = load("analysis")
    assert (data["unique_files"], data["messages"]) == (2, 6)
    assert data["stopitd"]["originals"] == 6
    assert data["spamassassin"]["relays"] > 0
    assert sorted(g["folder"] for g in data["by_folder"]) == ["cur", "my-mail"]
    missing = subprocess.run(
        [sys.executable, "-m", "bench.analysis", "--mail", str(tmp_path / "nowhere")],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert missing.returncode != 0
    assert "nowhere: no such file or folder" in missing.stdout + missing.stderr


def test_growth_runs_every_case_and_the_curve() -> None:
    out = run_bench("bench.growth", "--scale", "0.01")
    metrics = [c[2] for c in map(cells, out.splitlines()) if len(c) > 3]
    for what in ("Received headers", "Subject line", "Received line", "levels", "attachments"):
        assert any(m.startswith("analyze, ") and m.endswith(what) for m in metrics), what
    for case in load("growth")["cases"]:
        assert "error" not in case, case
    row(out, "curve, Received headers")
    assert len(load("growth")["curve"]) == 3


def test_memory_measures_the_listener() -> None:
    out = run_bench("bench.memory", "--clients", "3", "--max-size", "1048576", "--with-floor")
    assert number(value(row(out, "peak RSS, listener process: floor-durable"))) > 0
    stopitd = value(row(out, "peak RSS, listener process: stopitd"))
    if serve_available():
        assert number(stopitd) > 0
        runs = {r["name"]: r for r in load("memory")["runs"]}
        assert runs["stopitd"]["accepted"] == 3
    else:
        assert stopitd == "pending"


def test_make_bench_entry_point_prints_one_table() -> None:
    out = run_bench("bench", "--quick", "--only", "growth,analysis")
    assert out.count("stopitd benchmarks (quick)") == 1
    row(out, "SA / stopitd, per message")
    row(out, "curve, Received headers")


def test_analysis_counts_instructions_of_both_sides() -> None:
    """`--instructions` at a tiny size: callgrind counts both sides, the ratio is printed."""
    require_tool("valgrind", "valgrind")
    out = run_bench("bench.analysis", "--instructions", "--files", "2", "--repeat", "2")
    assert number(value(row(out, "SpamAssassin Received parse, instructions/msg"))) > 0
    assert number(value(row(out, "stopitd analyze --original, instructions/msg"))) > 0
    assert "x" in value(row(out, "SA / stopitd, by instructions"))
    data = load("analysis")
    assert data["mode"] == "instructions"
    assert len(data["files"]) == 2
    for side in ("stopitd", "spamassassin"):
        figures = data[side]
        assert figures["instructions_repeat"] > figures["instructions_repeat_1"] > 0
        assert figures["per_message"] > 0
    assert data["instruction_ratio"] > 0


def test_instructions_without_valgrind_names_its_debian_package(tmp_path: Path) -> None:
    """valgrind not on PATH (nor in /sbin): the run stops with the package to install."""
    done = subprocess.run(
        [sys.executable, "-m", "bench.analysis", "--instructions", "--files", "1"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "PATH": str(tmp_path)},
    )
    assert done.returncode != 0
    assert "valgrind is missing: install the Debian package 'valgrind'" in done.stderr
