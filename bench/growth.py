"""Growth: hostile shapes through `stopitd.analysis.analyze`, and the Received-count curve.

Each case runs in a child process of its own (so a blow-up is bounded by --timeout and
cannot take the bench down), builds its message, and times ``analyze`` in-process, then
``conclude`` with no evidence and the JSON rendering, as `stopitd analyze --no-dns` would.

Cases: 10 000 Received headers; a 1 MB header line (a Subject, and a Received); 200 levels
of nested message/rfc822; 2 000 attachments. The curve: 1k / 10k / 100k Received headers
with ``limits.max_headers`` raised so that every header is parsed (the default, 20 000,
would cut the 100k message short and flatten the curve); 10x more headers should cost at
most ~10x the time.

    python -m bench.growth [--scale 1.0]     (--scale 0.01 for a quick run)
"""

from __future__ import annotations

import argparse
import base64
import itertools
import json
import os
import subprocess
import sys
import time
from collections import Counter
from dataclasses import replace
from typing import Any

from bench.common import (
    ROOT,
    BenchError,
    Row,
    fmt,
    print_table,
    proc_status_kb,
    progress,
    rows_json,
    shown,
    verdict,
)
from bench.common import write_json as write_out

SECONDS_TARGET = 10.0  # "finishes analyze in seconds"
CURVE_TARGET = 12.0  # "10x more headers costs at most ~10x" (20 % allowance for noise)

HEAD = (
    b"From: Someone <someone@example.net>\r\n"
    b"To: victim@example.edu\r\n"
    b"Subject: growth\r\n"
    b"Date: Mon, 23 Nov 2026 21:14:09 -0500\r\n"
    b"Message-ID: <growth@example.net>\r\n"
    b"MIME-Version: 1.0\r\n"
)
BODY = b"Content-Type: text/plain; charset=UTF-8\r\n\r\nhello\r\n"


def received(i: int) -> bytes:
    return (
        f"Received: from mail{i}.example.net (mail{i}.example.net "
        f"[198.51.{i // 250 % 250}.{i % 250 + 1}])\r\n"
        f"\tby mx{i}.example.org (Postfix) with ESMTPS id 4Ck{i:08d}\r\n"
        f"\tfor <victim@example.edu>; Mon, 23 Nov 2026 21:14:09 -0500\r\n"
    ).encode()


def many_received(n: int) -> bytes:
    return b"".join(received(i) for i in range(n)) + HEAD + BODY


def long_subject(size: int) -> bytes:
    words = b"harass " * (size // 7)
    return received(1) + b"Subject: " + words + b"\r\n" + HEAD.replace(b"Subject", b"X-S") + BODY


def long_received(size: int) -> bytes:
    words = b"from host.example.net " * (size // 22)
    return b"Received: " + words + b"\r\n" + received(1) + HEAD + BODY


def nested(levels: int) -> bytes:
    """A forward of a forward of ... LEVELS deep: each level a note plus message/rfc822."""
    inner = received(0) + HEAD + BODY
    for i in range(levels):
        b = f"level-{i + 1}".encode()
        inner = (
            received(i + 1)
            + HEAD.replace(b"growth", b"Fwd: " + b)
            + b'Content-Type: multipart/mixed; boundary="'
            + b
            + b'"\r\n\r\n'
            + b"--"
            + b
            + b"\r\nContent-Type: text/plain\r\n\r\nsee attached\r\n"
            + b"--"
            + b
            + b"\r\nContent-Type: message/rfc822\r\n\r\n"
            + inner
            + b"\r\n--"
            + b
            + b"--\r\n"
        )
    return inner


def attachments(count: int) -> bytes:
    """A report: a note, the original as message/rfc822, then COUNT small attachments."""
    b = b"bench-boundary-2000"
    blob = base64.b64encode(bytes(range(256)) * 3)
    parts = [
        b"--" + b + b"\r\nContent-Type: text/plain\r\n\r\nPlease look at the attached.\r\n",
        b"--" + b + b"\r\nContent-Type: message/rfc822\r\n\r\n" + received(7) + HEAD + BODY,
    ]
    for i in range(count):
        parts.append(
            b"--" + b + b"\r\n"
            b'Content-Type: image/png; name="shot' + str(i).encode() + b'.png"\r\n'
            b"Content-Transfer-Encoding: base64\r\n\r\n" + blob + b"\r\n"
        )
    head = HEAD.replace(b"MIME-Version", b"X-M") + b"MIME-Version: 1.0\r\n"
    head += b'Content-Type: multipart/mixed; boundary="' + b + b'"\r\n\r\n'
    return received(9) + head + b"".join(parts) + b"--" + b + b"--\r\n"


BUILDERS = {
    "received": (many_received, True),
    "long-subject": (long_subject, True),
    "long-received": (long_received, True),
    "nested": (nested, False),
    "attachments": (attachments, False),
}


def one(case: str, size: int, raise_limits: bool) -> dict[str, Any]:
    """Build and analyse one message in this process; figures as a dict."""
    from stopitd.analysis import analyze, conclude
    from stopitd.analysis.model import Envelope, Evidence, analysis_to_json
    from stopitd.analysis.policy import Limits, Policy

    build, as_original = BUILDERS[case]
    raw = build(size)
    policy = Policy()
    if raise_limits:
        policy = Policy(limits=replace(Limits(), max_headers=10 * size + 100))
    t0 = time.perf_counter()
    result = analyze(raw, Envelope(), policy, as_original=as_original)
    t1 = time.perf_counter()
    result = conclude(result, Evidence.none(), policy)
    t2 = time.perf_counter()
    text = json.dumps(analysis_to_json(result))
    t3 = time.perf_counter()
    codes = Counter(f.code for f in result.report.findings)
    for o in result.originals:
        codes.update(f.code for f in o.findings)
    return {
        "case": case,
        "size": size,
        "bytes": len(raw),
        "analyze_s": t1 - t0,
        "conclude_s": t2 - t1,
        "json_s": t3 - t2,
        "originals": len(result.originals),
        "hops": sum(len(o.hops) for o in result.originals),
        "findings": dict(codes),
        "json_bytes": len(text),
        # VmHWM, not ru_maxrss: the latter survives exec, so it would show the parent's peak
        "maxrss_mb": (proc_status_kb(os.getpid(), "VmHWM") or 0) / 1024,
    }


def run_case(case: str, size: int, raise_limits: bool, timeout: float) -> dict[str, Any]:
    argv = [sys.executable, "-m", "bench.growth", "--one", case, "--size", str(size)]
    if raise_limits:
        argv.append("--raise-limits")
    try:
        done = subprocess.run(argv, capture_output=True, text=True, cwd=ROOT, timeout=timeout)
    except subprocess.TimeoutExpired:
        return {"case": case, "size": size, "error": f"did not finish within {timeout:.0f} s"}
    if done.returncode != 0:
        return {"case": case, "size": size, "error": done.stderr.strip()[-800:]}
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def _scaled(n: int, scale: float) -> int:
    return max(1, round(n * scale))


def run(args: argparse.Namespace) -> tuple[list[Row], dict[str, Any]]:
    s = args.scale
    cases = [
        ("received", _scaled(10_000, s), "Received headers"),
        ("long-subject", _scaled(1 << 20, s), "bytes in one Subject line"),
        ("long-received", _scaled(1 << 20, s), "bytes in one Received line"),
        ("nested", _scaled(200, s), "nested message/rfc822 levels"),
        ("attachments", _scaled(2000, s), "attachments"),
    ]
    rows: list[Row] = []
    results: list[dict[str, Any]] = []
    failures = []
    for case, size, what in cases:
        progress(f"growth: {case} ({size} {what})")
        r = run_case(case, size, False, args.timeout)
        results.append(r)
        metric = f"analyze, {size:,} {what}"
        if "error" in r:
            failures.append(f"{case}: {r['error']}")
            rows.append(
                Row(
                    "growth",
                    metric,
                    "FAILED",
                    f"< {SECONDS_TARGET:.0f} s",
                    "NOT MET",
                    r["error"].splitlines()[-1][:80],
                )
            )
            continue
        note = (
            f"{r['hops']} hops, {r['originals']} originals, peak RSS {fmt(r['maxrss_mb'])} MB; "
            f"then JSON {fmt(r['json_s'], 3)} s"
        )
        limits = [c for c in r["findings"] if "limit" in c or "depth" in c or "too" in c]
        if limits:
            note += "; findings: " + ", ".join(sorted(limits))
        rows.append(
            Row(
                "growth",
                metric,
                f"{fmt(r['analyze_s'], 3)} s",
                f"< {SECONDS_TARGET:.0f} s",
                verdict(r["analyze_s"] < SECONDS_TARGET),
                note,
            )
        )
    curve: list[dict[str, Any]] = []
    sizes = [_scaled(n, s) for n in (1_000, 10_000, 100_000)]
    for size in sizes:
        progress(f"growth: curve, {size} Received headers")
        r = run_case("received", size, True, args.timeout)
        curve.append(r)
        if "error" in r:
            failures.append(f"curve {size}: {r['error']}")
    ok = [c for c in curve if "error" not in c]
    if len(ok) == len(curve):
        points = " / ".join(f"{c['size']:,}: {fmt(c['analyze_s'], 3)} s" for c in curve)
        rows.append(Row("growth", "curve, Received headers (limit raised)", points))
        for a, b in itertools.pairwise(curve):
            ratio = b["analyze_s"] / max(a["analyze_s"], 1e-9)
            rows.append(
                Row(
                    "growth",
                    f"curve: time({b['size']:,}) / time({a['size']:,})",
                    fmt(ratio, 1) + "x",
                    "<= ~10x",
                    verdict(ratio <= CURVE_TARGET),
                    f"{b['hops']:,} hops",
                )
            )
    else:
        rows.append(Row("growth", "curve, Received headers", "FAILED", "<= ~10x", "NOT MET"))
    data = {
        "args": vars(args),
        "cases": results,
        "curve": curve,
        "failures": failures,
        "rows": rows_json(rows),
    }
    return rows, data


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--scale", type=float, default=1.0, help="shrink every case (quick runs)")
    parser.add_argument("--timeout", type=float, default=300, help="per case, seconds")


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.growth", description=__doc__)
    add_arguments(parser)
    parser.add_argument("--one", choices=sorted(BUILDERS), help=argparse.SUPPRESS)
    parser.add_argument("--size", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--raise-limits", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:
        print(json.dumps(one(args.one, args.size, args.raise_limits)))
        return
    try:
        rows, data = run(args)
    except BenchError as e:
        raise SystemExit(f"bench.growth: {e}") from None
    path = write_out("growth", data)
    print_table(f"stopitd analysis growth (JSON: {shown(path)})", rows)


if __name__ == "__main__":
    main()
