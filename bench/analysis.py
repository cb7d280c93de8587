"""Analysis: `stopitd analyze --original --json --no-dns` vs SpamAssassin's Received parse.

Both get the same list: every fixtures/**/*.eml, repeated to at least --messages entries.
stopitd's per-message figure is the same click command run in this process after a
warm-up (file reads, analysis, conclusion and JSON lines included; interpreter start-up
and imports not, as SpamAssassin's load is not in its figure); for context, one
`stopitd analyze` process over the whole list is timed too, start-up included, and its
output checked (one JSON object per file). Both per-message figures are given in wall time
and in the process's own CPU time (on a loaded machine wall time includes waiting for a
CPU; the load average is printed). SpamAssassin runs bench/sa_relays.pl: no
rules, no plugins, every file read before the clock starts, only the parse loop timed
(parse, PerMsgStatus, extract_message_metadata, which fills X-Spam-Relays-*).
Then pyinstrument profiles the same analyze command in this process, and the table lists
where the time goes (bench/out/analysis-profile.html has the whole tree).

With --instructions, instructions per message are counted instead, under valgrind's
callgrind (machine load does not change them): each side runs twice, with repeat k and
repeat 1, and the difference of the two totals divided by (k - 1) x files is its figure
(start-up, imports, file reads of SA and the warm-up cancel out). stopitd runs
bench/analysis_loop.py (the same in-process command, warm), SpamAssassin sa_relays.pl.

With --mail PATH (a file or a folder, searched recursively; may be given more than
once), both sides get those messages instead of the fixtures: the same figures on mail
this project does not have (a folder of your own .eml files, a maildir's cur/ folder).

    python -m bench.analysis [--messages 2000] [--no-profile] [--mail PATH ...]
    python -m bench.analysis --instructions [--repeat 5] [--files N] [--mail PATH ...]
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import math
import os
import re
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bench.common import (
    OUT_DIR,
    ROOT,
    BenchError,
    Row,
    fmt,
    progress,
    require_perl_module,
    require_tool,
    rows_json,
    run_entry_point,
    stopitd_command,
    verdict,
)
from bench.messages import fixture_files

RATIO_TARGET = 3.0
SA_DRIVER = Path(__file__).resolve().parent / "sa_relays.pl"
ANALYZE_ARGS = ["analyze", "--original", "--json", "--no-dns"]
# Frames that only drive the command (every sample passes through them): left out of the
# inclusive list so that it shows where the work is.
DRIVER_CODE = ("bench/", "click/", "stopitd/cli/__init__", "stopitd/cli/common", "<")


def mail_files(paths: list[str]) -> list[str]:
    """The messages under PATHS (files, or folders searched recursively; hidden names
    left out), sorted per folder, as absolute paths; an error if there are none."""
    found: list[str] = []
    for given in paths:
        path = Path(given).resolve()
        if path.is_file():
            found.append(str(path))
        elif path.is_dir():
            found.extend(
                str(p)
                for p in sorted(path.rglob("*"))
                if p.is_file()
                and not any(part.startswith(".") for part in p.relative_to(path).parts)
            )
        else:
            raise BenchError(f"--mail {given}: no such file or folder")
    if not found:
        raise BenchError(f"--mail {' '.join(paths)}: no files there")
    return found


def message_files(args: argparse.Namespace) -> list[str]:
    """The messages both sides get: --mail's, or every fixture (relative to the checkout)."""
    if args.mail:
        return mail_files(args.mail)
    return [str(p.relative_to(ROOT)) for p in fixture_files()]


def file_list(messages: int, unique: list[str]) -> tuple[list[str], int]:
    """UNIQUE repeated to >= MESSAGES entries; and the repeat."""
    files = list(unique)
    repeat = max(1, math.ceil(messages / len(files)))
    return files * repeat, repeat


def time_stopitd(files: list[str], extra: list[str], timeout: float) -> tuple[float, int]:
    """Wall seconds of one `stopitd analyze` over FILES, and the originals it found."""
    argv = [*stopitd_command(), *extra, *files]
    env = {**os.environ, "STOPITD_CONFIG": ""}
    t0 = time.perf_counter()
    done = subprocess.run(argv, capture_output=True, cwd=ROOT, timeout=timeout, env=env)
    seconds = time.perf_counter() - t0
    if done.returncode != 0:
        raise BenchError(f"stopitd analyze failed: {done.stderr.decode(errors='replace')[:800]}")
    lines = done.stdout.splitlines()
    if len(lines) != len(files):
        raise BenchError(f"stopitd analyze printed {len(lines)} results for {len(files)} files")
    originals = 0
    for line in lines:
        doc = json.loads(line)
        originals += len(doc["originals"])
    return seconds, originals


def what_files(args: argparse.Namespace) -> str:
    """What the messages are, for the table: "fixtures", or the --mail paths."""
    return "--mail " + " ".join(args.mail) if args.mail else "fixtures"


def target_row(metric: str, ratio: float, note: str = "") -> Row:
    """A SA / stopitd ratio against the target."""
    return Row(
        "analysis",
        metric,
        fmt(ratio, 2) + "x",
        f">= {RATIO_TARGET:.0f}x",
        verdict(ratio >= RATIO_TARGET),
        note=note,
    )


def run_text(
    argv: list[str], timeout: float, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """ARGV run in the checkout, its output captured as text."""
    return subprocess.run(argv, capture_output=True, text=True, cwd=ROOT, timeout=timeout, env=env)


def time_spamassassin(files: list[str], repeat: int, timeout: float) -> dict[str, Any]:
    perl = require_tool("perl", "perl")
    require_perl_module("Mail::SpamAssassin", "spamassassin")
    unique = files[: len(files) // repeat]
    done = run_text([perl, str(SA_DRIVER), str(repeat), *unique], timeout)
    if done.returncode != 0:
        raise BenchError(f"{SA_DRIVER.name} failed: {done.stderr[:800]}")
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    if result["messages"] != len(files):
        raise BenchError(f"SpamAssassin parsed {result['messages']} of {len(files)} messages")
    return result


# --- in process ---------------------------------------------------------------------------


def run_in_process(files: list[str]) -> str:
    """The analyze command over FILES in this process (imports done); what it printed."""
    from stopitd.cli import main as cli_main

    os.environ["STOPITD_CONFIG"] = ""
    out = io.StringIO()
    cwd = Path.cwd()
    os.chdir(ROOT)
    try:
        with contextlib.redirect_stdout(out):
            cli_main.main([*ANALYZE_ARGS, *files], standalone_mode=False)
    finally:
        os.chdir(cwd)
    return out.getvalue()


def time_in_process(files: list[str]) -> tuple[float, float]:
    """Wall and CPU seconds for the analyze command over FILES, warm; checks one result
    per file."""
    run_in_process(files[:1])  # warm: imports, first-call caches
    t0 = time.perf_counter()
    c0 = time.process_time()
    printed = run_in_process(files)
    cpu = time.process_time() - c0
    seconds = time.perf_counter() - t0
    if len(printed.splitlines()) != len(files):
        raise BenchError(f"analyze printed {len(printed.splitlines())} results for {len(files)}")
    return seconds, cpu


# --- by fixture folder ------------------------------------------------------------------

GROUP_MESSAGES = 400  # per folder: enough passes for a steady CPU-time figure


def folder_of(path: str) -> str:
    """The fixture folder a path (relative to the checkout) sits in: "received", ...;
    for other mail (--mail), the name of the folder it is in."""
    parts = Path(path).parts
    return parts[1] if len(parts) > 2 and parts[0] == "fixtures" else Path(path).parent.name


def by_folder(unique: list[str], timeout: float) -> tuple[list[Row], list[dict[str, Any]]]:
    """Both sides' CPU ms/message over each fixture folder on its own: the ratio by
    message shape (the trimmed test fixtures of forwarded/ and received/ against the
    full-size mail of delivered/)."""
    groups: dict[str, list[str]] = defaultdict(list)
    for path in unique:
        groups[folder_of(path)].append(path)
    rows: list[Row] = []
    found: list[dict[str, Any]] = []
    for name, paths in sorted(groups.items()):
        repeat = max(1, math.ceil(GROUP_MESSAGES / len(paths)))
        files = paths * repeat
        _, cpu = time_in_process(files)
        sa = time_spamassassin(files, repeat, timeout)
        ms = cpu / len(files) * 1000
        sa_ms = sa["cpu_seconds"] / len(files) * 1000
        size = sum(os.path.getsize(ROOT / p) for p in paths) / len(paths)
        found.append(
            {
                "folder": name,
                "files": len(paths),
                "mean_bytes": size,
                "stopitd_cpu_ms": ms,
                "spamassassin_cpu_ms": sa_ms,
                "ratio": sa_ms / ms,
            }
        )
        rows.append(
            Row(
                "analysis",
                f"SA / stopitd, CPU time, {name}/",
                fmt(sa_ms / ms, 2) + "x",
                note=f"{len(paths)} files of {size / 1024:.1f} KB on average: SA {fmt(sa_ms, 3)} "
                f"ms, stopitd {fmt(ms, 3)} ms per message",
            )
        )
    return rows, found


# --- instructions (callgrind) --------------------------------------------------------------

CALLGRIND_TOTAL = re.compile(r"^==\d+== Collected : (\d+)\s*$", re.MULTILINE)
# Hash seeds fixed, so that two runs of one side differ only by the repeated passes.
DETERMINISTIC_ENV = {"PYTHONHASHSEED": "0", "PERL_HASH_SEED": "0", "PERL_PERTURB_KEYS": "0"}


def callgrind_total(argv: list[str], timeout: float) -> int:
    """Instructions executed by ARGV (all its code, start-up included) under callgrind."""
    valgrind = require_tool("valgrind", "valgrind")
    env = {**os.environ, **DETERMINISTIC_ENV, "STOPITD_CONFIG": ""}
    with tempfile.TemporaryDirectory(prefix="stopitd-callgrind-") as tmp:
        out = f"--callgrind-out-file={tmp}/callgrind.out"
        done = run_text([valgrind, "--tool=callgrind", out, *argv], timeout, env)
    if done.returncode != 0:
        raise BenchError(f"callgrind run of {argv[:3]} failed: {done.stderr[-800:]}")
    found = CALLGRIND_TOTAL.search(done.stderr)
    if found is None:
        raise BenchError(f"callgrind printed no total for {argv[:3]}: {done.stderr[-400:]}")
    return int(found.group(1))


def per_message(
    side: str, argv_for: Callable[[int], list[str]], repeat: int, files: int, timeout: float
) -> dict[str, Any]:
    """Instructions per message of one side: runs with REPEAT and 1, the difference."""
    progress(f"analysis: callgrind, {side}, repeat {repeat} and 1")
    # One run outside callgrind first: it byte-compiles any changed module, so that the
    # two counted runs import alike (a .pyc written in one of them only would be counted).
    first = run_text(argv_for(1), timeout, {**os.environ, **DETERMINISTIC_ENV})
    if first.returncode != 0:
        raise BenchError(f"{side} failed: {first.stderr[-800:]}")
    many = callgrind_total(argv_for(repeat), timeout)
    one = callgrind_total(argv_for(1), timeout)
    if many <= one:
        raise BenchError(f"{side}: repeat {repeat} ran {many} instructions, repeat 1 {one}")
    return {
        "repeat": repeat,
        "instructions_repeat": many,
        "instructions_repeat_1": one,
        "per_message": (many - one) / ((repeat - 1) * files),
    }


def count_instructions(args: argparse.Namespace) -> tuple[list[Row], dict[str, Any]]:
    require_tool("valgrind", "valgrind")
    perl = require_tool("perl", "perl")
    require_perl_module("Mail::SpamAssassin", "spamassassin")
    if args.repeat < 2:
        raise BenchError("--repeat must be at least 2 (the figure is repeat k minus repeat 1)")
    files = message_files(args)
    if args.files:
        files = files[: args.files]
    n = len(files)
    progress(f"analysis: instructions per message, {n} files, repeat {args.repeat} - 1")
    stopitd = per_message(
        "stopitd",
        lambda k: [sys.executable, "-m", "bench.analysis_loop", str(k), *files],
        args.repeat,
        n,
        args.timeout,
    )
    sa = per_message(
        "SpamAssassin",
        lambda k: [perl, str(SA_DRIVER), str(k), *files],
        args.repeat,
        n,
        args.timeout,
    )
    ratio = sa["per_message"] / stopitd["per_message"]
    how = f"callgrind, (repeat {args.repeat} - repeat 1) / ({args.repeat - 1} x {n} files)"
    rows = [
        Row("analysis", f"{what_files(args)} (instructions)", str(n), note=how),
        Row(
            "analysis",
            "SpamAssassin Received parse, instructions/msg",
            f"{sa['per_message'] / 1e6:.3f} M",
            note="sa_relays.pl: parse, PerMsgStatus, extract_message_metadata",
        ),
        Row(
            "analysis",
            "stopitd analyze --original, instructions/msg",
            f"{stopitd['per_message'] / 1e6:.3f} M",
            note="the command in-process, warm: read, analyse, conclude, JSON",
        ),
        target_row("SA / stopitd, by instructions", ratio),
    ]
    data = {
        "args": vars(args),
        "mode": "instructions",
        "files": files,
        "stopitd": stopitd,
        "spamassassin": sa,
        "instruction_ratio": ratio,
        "rows": rows_json(rows),
    }
    return rows, data


# --- profile ------------------------------------------------------------------------------


def profile(files: list[str]) -> dict[str, Any]:
    """pyinstrument over the analyze command in this process; the top of the profile."""
    from pyinstrument import Profiler

    profiler = Profiler(interval=0.0005)
    profiler.start()
    try:
        run_in_process(files)
    finally:
        profiler.stop()
    session = profiler.last_session
    if session is None:
        raise BenchError("pyinstrument recorded nothing")
    OUT_DIR.mkdir(parents=True, exist_ok=True)
    (OUT_DIR / "analysis-profile.txt").write_text(profiler.output_text(show_all=False))
    (OUT_DIR / "analysis-profile.html").write_text(profiler.output_html())
    root = session.root_frame()
    if root is None:
        raise BenchError("pyinstrument recorded no frames")
    return {
        "seconds": root.time,
        "self_time": _top_self(root),
        "by_module": _by_module(root),
    }


def _where(frame: Any) -> str:
    path = str(frame.file_path or "")
    for marker in ("/src/stopitd/", "/site-packages/"):
        at = path.find(marker)
        if at >= 0:
            short = path[at + len(marker) :]
            return ("stopitd/" + short) if marker == "/src/stopitd/" else short
    stdlib = re.search(r"/lib/python3\.\d+/(.*)$", path)
    if stdlib:
        return stdlib.group(1)
    return frame.file_path_short or path


def _walk(frame: Any, ancestors: tuple[str, ...], visit: Any) -> None:
    visit(frame, ancestors)
    here = _where(frame)
    for child in frame.children:
        _walk(child, (*ancestors, here), visit)


def _top_self(root: Any, n: int = 12) -> list[dict[str, Any]]:
    """Functions by the time spent in their own code (children taken away)."""
    acc: dict[str, float] = defaultdict(float)

    def visit(frame: Any, _anc: tuple[str, ...]) -> None:
        if frame.is_synthetic:
            return
        own = frame.time - sum(c.time for c in frame.children if not c.is_synthetic)
        acc[f"{frame.function} ({_where(frame)}:{frame.line_no})"] += own

    _walk(root, (), visit)
    total = root.time or 1.0
    top = sorted(acc.items(), key=lambda kv: -kv[1])[:n]
    return [{"function": k, "seconds": v, "share": v / total} for k, v in top]


def _by_module(root: Any, n: int = 15) -> list[dict[str, Any]]:
    """Inclusive time per source file, each call chain counted once per file."""
    acc: dict[str, float] = defaultdict(float)

    def visit(frame: Any, ancestors: tuple[str, ...]) -> None:
        if frame.is_synthetic:
            return
        where = _where(frame)
        if where not in ancestors:
            acc[where] += frame.time

    _walk(root, (), visit)
    total = root.time or 1.0
    kept = [kv for kv in acc.items() if not kv[0].startswith(DRIVER_CODE)]
    top = sorted(kept, key=lambda kv: -kv[1])[:n]
    return [{"module": k, "seconds": v, "share": v / total} for k, v in top]


# --- the run --------------------------------------------------------------------------------


def run(args: argparse.Namespace) -> tuple[list[Row], dict[str, Any]]:
    if args.instructions:
        return count_instructions(args)
    require_tool("perl", "perl")
    require_perl_module("Mail::SpamAssassin", "spamassassin")
    files, repeat = file_list(args.messages, message_files(args))
    n = len(files)
    unique = n // repeat
    progress(f"analysis: {unique} fixtures x {repeat} = {n} messages")
    startup_s, _ = time_stopitd(files[:1], ANALYZE_ARGS, args.timeout)
    whole_s, originals = time_stopitd(files, ANALYZE_ARGS, args.timeout)
    report_args = [a for a in ANALYZE_ARGS if a != "--original"]
    report_s, report_originals = time_stopitd(files, report_args, args.timeout)
    load_before = os.getloadavg()[0]
    warm_s, warm_cpu = time_in_process(files)
    sa = time_spamassassin(files, repeat, args.timeout)
    load_after = os.getloadavg()[0]
    sa_ms = sa["seconds"] / n * 1000
    sa_cpu_ms = sa["cpu_seconds"] / n * 1000
    warm_ms = warm_s / n * 1000
    warm_cpu_ms = warm_cpu / n * 1000
    whole_ms = whole_s / n * 1000
    report_ms = report_s / n * 1000
    ratio = sa_ms / warm_ms
    cpu_ratio = sa_cpu_ms / warm_cpu_ms
    rows = [
        Row("analysis", f"messages ({what_files(args)} x repeat)", f"{n} ({unique} x {repeat})"),
        Row(
            "analysis",
            "SpamAssassin Received parse, ms/msg",
            fmt(sa_ms, 3),
            note=f"parse loop only, no rules; {sa['relays']} relays",
        ),
        Row(
            "analysis",
            "stopitd analyze --original, ms/msg",
            fmt(warm_ms, 3),
            note="the command in-process, warm: read, analyse, conclude, JSON",
        ),
        target_row("SA / stopitd, per message", ratio),
        target_row(
            "SA / stopitd, per message, CPU time",
            cpu_ratio,
            note=f"each process's own CPU time: SA {fmt(sa_cpu_ms, 3)} ms, stopitd "
            f"{fmt(warm_cpu_ms, 3)} ms per message (wall time counts waits on a busy machine)",
        ),
        Row(
            "analysis",
            "load average (1 min) before / after the timed runs",
            f"{load_before:.1f} / {load_after:.1f}",
            note=f"{os.cpu_count()} CPUs; above that, wall figures include waiting for a CPU",
        ),
        Row(
            "analysis",
            "stopitd analyze --original, one process, ms/msg",
            fmt(whole_ms, 3),
            note=f"{fmt(whole_s, 2)} s for {n} msgs; start-up alone {fmt(startup_s, 2)} s",
        ),
        Row(
            "analysis",
            "SA / stopitd, one process",
            fmt(sa_ms / whole_ms, 2) + "x",
            note="context: stopitd's start-up included, SA's not",
        ),
        Row(
            "analysis",
            "stopitd analyze (report mode), one process, ms/msg",
            fmt(report_ms, 3),
            note=f"forwards searched; {report_originals} originals in {n} files",
        ),
    ]
    progress("analysis: by fixture folder")
    folder_rows, folders = by_folder(files[:unique], args.timeout)
    rows.extend(folder_rows)
    prof: dict[str, Any] | None = None
    if args.profile:
        progress("analysis: profiling with pyinstrument")
        prof = profile(files)
        for item in prof["by_module"][:8]:
            rows.append(
                Row("analysis", "profile, inclusive", f"{item['share']:.0%}", note=item["module"])
            )
        for item in prof["self_time"][:8]:
            rows.append(
                Row("analysis", "profile, self time", f"{item['share']:.0%}", note=item["function"])
            )
    data = {
        "args": vars(args),
        "messages": n,
        "unique_files": unique,
        "repeat": repeat,
        "stopitd": {
            "in_process_seconds": warm_s,
            "ms_per_message": warm_ms,
            "in_process_cpu_seconds": warm_cpu,
            "cpu_ms_per_message": warm_cpu_ms,
            "startup_seconds": startup_s,
            "one_process_seconds": whole_s,
            "one_process_ms_per_message": whole_ms,
            "report_mode_one_process_seconds": report_s,
            "originals": originals,
            "report_mode_originals": report_originals,
        },
        "spamassassin": {**sa, "ms_per_message": sa_ms, "cpu_ms_per_message": sa_cpu_ms},
        "ratio": ratio,
        "cpu_ratio": cpu_ratio,
        "load_average": [load_before, load_after],
        "by_folder": folders,
        "profile": prof,
        "rows": rows_json(rows),
    }
    return rows, data


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--messages", type=int, default=2000, help="at least this many")
    parser.add_argument("--timeout", type=float, default=600, help="per process, seconds")
    parser.add_argument("--no-profile", dest="profile", action="store_false")
    parser.add_argument(
        "--instructions",
        action="store_true",
        help="count instructions per message under valgrind's callgrind (both sides) "
        "instead of timing",
    )
    parser.add_argument(
        "--repeat", type=int, default=5, help="with --instructions: passes k (minus 1 pass)"
    )
    parser.add_argument(
        "--files", type=int, default=0, help="with --instructions: the first N fixtures only"
    )
    parser.add_argument(
        "--mail",
        action="append",
        default=[],
        metavar="PATH",
        help="measure these messages instead of the fixtures: a file, or a folder searched "
        "recursively (may be given more than once)",
    )


def main() -> None:
    run_entry_point("analysis", __doc__, "stopitd analysis vs SpamAssassin", add_arguments, run)


if __name__ == "__main__":
    main()
