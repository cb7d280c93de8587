"""Mutation fuzzing of the whole analysis: ``python -m tests.fuzz --cases 100000`` (``make fuzz``).

Each case takes a real fixture (``fixtures/**/*.eml``), applies one to four seeded
mutations shaped like hostile or broken mail (truncation, bit flips, deleted or duplicated
MIME boundaries, wrong charsets and transfer encodings, NULs, 8-bit headers, absurd
lengths), then runs what the daemon runs: ``analyze`` -> ``conclude(Evidence.none())`` ->
JSON. Any exception is unexpected (odd mail must become findings). A case is reproducible
from its number and the seed; ``--save DIR`` writes each crashing input there, to become a
regression fixture under ``fixtures/fuzz/``.
"""

from __future__ import annotations

import argparse
import json
import random
import re
import sys
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from stopitd.analysis import analyze, conclude
from stopitd.analysis.model import Envelope, Evidence, analysis_to_json
from stopitd.analysis.policy import Policy

ROOT = Path(__file__).resolve().parent.parent
FIXTURES = ROOT / "fixtures"

Mutator = Callable[[random.Random, bytes], bytes]


def load_corpus() -> list[tuple[str, bytes]]:
    paths = sorted(FIXTURES.rglob("*.eml"))
    return [(str(p.relative_to(FIXTURES)), p.read_bytes()) for p in paths]


def _span(rng: random.Random, data: bytes) -> tuple[int, int]:
    if not data:
        return 0, 0
    a = rng.randrange(len(data))
    b = min(len(data), a + rng.randint(1, 256))
    return a, b


def truncate(rng: random.Random, data: bytes) -> bytes:
    return data[: rng.randrange(len(data) + 1)]


def bit_flips(rng: random.Random, data: bytes) -> bytes:
    if not data:
        return data
    buf = bytearray(data)
    for _ in range(rng.randint(1, 32)):
        i = rng.randrange(len(buf))
        buf[i] ^= 1 << rng.randrange(8)
    return bytes(buf)


_BOUNDARY_LINE = re.compile(rb"^--[^\r\n]*\r?\n", re.MULTILINE)


def boundary_chaos(rng: random.Random, data: bytes) -> bytes:
    """Delete, duplicate or truncate a boundary line (or the closing one)."""
    lines = list(_BOUNDARY_LINE.finditer(data))
    if not lines:
        return data + b"\r\n--\r\n"
    m = rng.choice(lines)
    line = m.group(0)
    choice = rng.randrange(4)
    if choice == 0:
        new = b""
    elif choice == 1:
        new = line * rng.randint(2, 50)
    elif choice == 2:
        new = line[: rng.randrange(len(line))]
    else:
        new = line.rstrip(b"\r\n") + b"--\r\n"
    return data[: m.start()] + new + data[m.end() :]


_CHARSETS = [
    b"utf-8",
    b"utf-16",
    b"utf-32",
    b"iso-2022-jp",
    b"x-unknown",
    b"",
    b"\xff\xfe",
    b"utf-7",
    b"gb18030",
    b"koi8-r",
    b"shift_jis",
    b"us-ascii",
    b"nonsense\x00",
]
_ENCODINGS = [
    b"base64",
    b"quoted-printable",
    b"7bit",
    b"8bit",
    b"binary",
    b"x-uuencode",
    b"uuencode",
    b"bogus",
    b"",
    b"base64; x=y",
]


def wrong_charset(rng: random.Random, data: bytes) -> bytes:
    cs = rng.choice(_CHARSETS)
    out, n = re.subn(rb"charset=\"?[^\s;\"]*\"?", b"charset=" + cs, data, count=rng.randint(1, 5))
    if n:
        return out
    return re.sub(rb"(?i)subject: ", b"Subject: =?" + cs + b"?B?////?= ", data, count=1)


def wrong_encoding(rng: random.Random, data: bytes) -> bytes:
    enc = rng.choice(_ENCODINGS)
    out, n = re.subn(
        rb"(?i)content-transfer-encoding:[^\r\n]*",
        b"Content-Transfer-Encoding: " + enc,
        data,
        count=rng.randint(1, 5),
    )
    if n:
        return out
    return re.sub(
        rb"(?i)(content-type:)", b"Content-Transfer-Encoding: " + enc + b"\r\n\\1", data, count=1
    )


def nuls(rng: random.Random, data: bytes) -> bytes:
    buf = bytearray(data)
    for _ in range(rng.randint(1, 16)):
        buf.insert(rng.randrange(len(buf) + 1), 0)
    return bytes(buf)


def eight_bit_headers(rng: random.Random, data: bytes) -> bytes:
    head, sep, body = data.partition(b"\r\n\r\n")
    junk = bytes(rng.randrange(128, 256) for _ in range(rng.randint(1, 64)))
    lines = head.split(b"\r\n")
    i = rng.randrange(len(lines))
    lines[i] = lines[i] + junk
    if rng.random() < 0.3:
        lines.insert(rng.randrange(len(lines) + 1), junk + b": " + junk)
    return b"\r\n".join(lines) + sep + body


def absurd_length(rng: random.Random, data: bytes) -> bytes:
    a, b = _span(rng, data)
    unit = data[a:b] or b"A"
    times = rng.choice([100, 1000, 10_000, 50_000]) // max(1, len(unit) // 16)
    kind = rng.randrange(4)
    if kind == 0:  # a huge header line
        return b"X-Long: " + b"a" * (times * 16) + b"\r\n" + data
    if kind == 1:  # many headers
        return (
            b"Received: from x (x [192.0.2.1]) by y; Mon, 1 Jan 2024 00:00:00 +0000\r\n"
            * min(times, 20_000)
            + data
        )
    if kind == 2:  # deep nesting
        depth = rng.randint(10, 200)
        head = b"".join(
            b'Content-Type: multipart/mixed; boundary="b%d"\r\n\r\n--b%d\r\n' % (i, i)
            for i in range(depth)
        )
        return b"MIME-Version: 1.0\r\n" + head + data
    return data[:a] + unit * min(times, 2000) + data[b:]


def splice(rng: random.Random, data: bytes) -> bytes:
    """Cut and paste a random region elsewhere (reorders headers and parts)."""
    a, b = _span(rng, data)
    chunk = data[a:b]
    rest = data[:a] + data[b:]
    i = rng.randrange(len(rest) + 1)
    return rest[:i] + chunk + rest[i:]


def line_ends(rng: random.Random, data: bytes) -> bytes:
    choice = rng.randrange(3)
    if choice == 0:
        return data.replace(b"\r\n", b"\n")
    if choice == 1:
        return data.replace(b"\r\n", b"\r")
    return data.replace(b"\n", b"\r\r\n")


MUTATORS: dict[str, Mutator] = {
    "truncate": truncate,
    "bit_flips": bit_flips,
    "boundary": boundary_chaos,
    "charset": wrong_charset,
    "encoding": wrong_encoding,
    "nuls": nuls,
    "8bit_headers": eight_bit_headers,
    "absurd_length": absurd_length,
    "splice": splice,
    "line_ends": line_ends,
}


def mutate(rng: random.Random, data: bytes) -> tuple[bytes, list[str]]:
    names = [rng.choice(list(MUTATORS)) for _ in range(rng.randint(1, 4))]
    for name in names:
        data = MUTATORS[name](rng, data)
    return data, names


def make_case(seed: int, n: int, corpus: list[tuple[str, bytes]]) -> tuple[str, bytes, list[str]]:
    rng = random.Random(f"{seed}:{n}")
    name, data = corpus[rng.randrange(len(corpus))]
    mutated, names = mutate(rng, data)
    return name, mutated, names


def run_analysis(raw: bytes, policy: Policy, *, as_original: bool) -> str:
    """What the worker runs (without DNS), ending in the JSON the store keeps."""
    result = analyze(raw, Envelope(), policy, as_original=as_original)
    result = conclude(result, Evidence.none(), policy)
    return json.dumps(analysis_to_json(result), ensure_ascii=False)


@dataclass
class Summary:
    cases: int = 0
    crashes: list[tuple[int, str, list[str], str]] = field(default_factory=list)
    seconds: float = 0.0
    slowest: tuple[float, int] = (0.0, -1)
    by_mutator: dict[str, int] = field(default_factory=dict)
    max_size: int = 0

    def line(self) -> str:
        return (
            f"fuzz: {self.cases} cases, {len(self.crashes)} unexpected exceptions, "
            f"{self.seconds:.1f}s ({self.cases / max(self.seconds, 1e-9):.0f} cases/s), "
            f"slowest case #{self.slowest[1]} {self.slowest[0] * 1000:.0f} ms, "
            f"largest input {self.max_size} bytes"
        )


def fuzz(
    cases: int, seed: int, *, start: int = 0, save: Path | None = None, verbose: bool = False
) -> Summary:
    corpus = load_corpus()
    policy = Policy()
    summary = Summary()
    began = time.perf_counter()
    for n in range(start, start + cases):
        name, raw, names = make_case(seed, n, corpus)
        for m in names:
            summary.by_mutator[m] = summary.by_mutator.get(m, 0) + 1
        summary.max_size = max(summary.max_size, len(raw))
        t0 = time.perf_counter()
        try:
            run_analysis(raw, policy, as_original=n % 5 == 0)
        except Exception:
            tb = traceback.format_exc()
            summary.crashes.append((n, name, names, tb))
            if verbose:
                print(f"case {n} ({name}, {names}):\n{tb}", file=sys.stderr)
            if save is not None:
                save.mkdir(parents=True, exist_ok=True)
                (save / f"seed{seed}-case{n}.eml").write_bytes(raw)
        took = time.perf_counter() - t0
        if took > summary.slowest[0]:
            summary.slowest = (took, n)
        summary.cases += 1
    summary.seconds = time.perf_counter() - began
    return summary


def _fuzz_chunk(args: tuple[int, int, int, Path | None]) -> Summary:
    cases, seed, start, save = args
    return fuzz(cases, seed, start=start, save=save)


def fuzz_parallel(
    cases: int, seed: int, jobs: int, *, start: int = 0, save: Path | None = None
) -> Summary:
    """The same cases as ``fuzz``, split over ``jobs`` processes (case numbers decide inputs)."""
    import multiprocessing

    step = 2000
    chunks = [
        (min(step, start + cases - n), seed, n, save) for n in range(start, start + cases, step)
    ]
    began = time.perf_counter()
    total = Summary()
    with multiprocessing.get_context("spawn").Pool(jobs) as pool:
        for (size, _, first, _), part in zip(chunks, pool.imap(_fuzz_chunk, chunks), strict=True):
            # one line per chunk, in case order: a run stopped early still says exactly
            # which cases passed
            print(
                f"chunk {first}..{first + size - 1}: {len(part.crashes)} unexpected, "
                f"{total.cases + part.cases} cases done, "
                f"{time.perf_counter() - began:.0f}s",
                file=sys.stderr,
                flush=True,
            )
            total.cases += part.cases
            total.crashes += part.crashes
            total.slowest = max(total.slowest, part.slowest)
            total.max_size = max(total.max_size, part.max_size)
            for k, v in part.by_mutator.items():
                total.by_mutator[k] = total.by_mutator.get(k, 0) + v
    total.crashes.sort()
    total.seconds = time.perf_counter() - began
    return total


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.fuzz", description=__doc__)
    parser.add_argument("--cases", type=int, default=100_000)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--start", type=int, default=0, help="first case number")
    parser.add_argument("--save", type=Path, help="write crashing inputs to this folder")
    parser.add_argument("-j", "--jobs", type=int, default=1, help="processes (cases split)")
    parser.add_argument("-v", "--verbose", action="store_true")
    args = parser.parse_args(argv)
    if args.jobs > 1:
        summary = fuzz_parallel(args.cases, args.seed, args.jobs, start=args.start, save=args.save)
    else:
        summary = fuzz(
            args.cases, args.seed, start=args.start, save=args.save, verbose=args.verbose
        )
    print(f"seed {args.seed}, cases {args.start}..{args.start + args.cases - 1}, jobs {args.jobs}")
    print(summary.line())
    print(
        "mutations applied: " + ", ".join(f"{k} {v}" for k, v in sorted(summary.by_mutator.items()))
    )
    seen: set[str] = set()
    for n, name, names, tb in summary.crashes:
        last = tb.strip().splitlines()[-1]
        key = last.split(":")[0] + tb.strip().splitlines()[-3]
        if key in seen:
            continue
        seen.add(key)
        print(f"--- case {n} from {name} via {names}:\n{tb}")
    return 1 if summary.crashes else 0


if __name__ == "__main__":
    sys.exit(main())
