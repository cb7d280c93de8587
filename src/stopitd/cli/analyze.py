"""`stopitd analyze`: run the whole analysis on files, without a daemon or a database."""

from __future__ import annotations

import os
import sys

import click
from rich.console import Console

from stopitd import verify
from stopitd.analysis import analyze as run_analysis
from stopitd.analysis import conclude
from stopitd.analysis.jsontext import analysis_json_text
from stopitd.analysis.model import (
    Analysis,
    Envelope,
    Evidence,
    Finding,
    ReportInfo,
    Severity,
)
from stopitd.analysis.policy import Policy
from stopitd.cli.common import config_option, state
from stopitd.config import Settings
from stopitd.render.analysis import render_analysis

# Frozen values, the same for every file: built once, not per file.
_NO_ENVELOPE = Envelope()
_NO_EVIDENCE = Evidence.none()


def _unreadable(path: str, reason: str) -> Analysis:
    return Analysis(
        report=ReportInfo(findings=(Finding("unreadable", Severity.ERROR, f"{path}: {reason}"),)),
        originals=(),
    )


# The largest file read by one ``os.read`` (bigger ones, and oddities such as a directory
# whose end lseek puts at 2**63 - 1, take the file object's way).
_ONE_READ = 1 << 30


def _read(path: str) -> bytes:
    if path == "-":
        return sys.stdin.buffer.read()
    # A regular file: its size by lseek, then one read. A file object (open, its checks,
    # readall's loop, the with-statement) costs some 5 K instructions more per message.
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except OSError:
        fd = -1  # the file object below raises the same error
    if fd >= 0:
        try:
            size = os.lseek(fd, 0, os.SEEK_END)
            if 0 <= size < _ONE_READ:
                os.lseek(fd, 0, os.SEEK_SET)
                data = os.read(fd, size + 1)
                if len(data) == size:  # whole; a short read takes the file object
                    return data
        except OSError:
            pass  # not seekable (a pipe) or not readable so: the file object's way
        finally:
            os.close(fd)
    with open(path, "rb", buffering=0) as f:  # a raw file: no buffer object for one read
        return f.readall()


def analyze_file(
    path: str,
    settings: Settings,
    *,
    as_original: bool,
    dns: bool,
    policy: Policy | None = None,
) -> Analysis:
    """One file to one Analysis; never raises for a bad file (the batch goes on).

    ``policy`` is ``settings.policy()``, passed in by a caller that analyses many files.
    """
    try:
        raw = _read(path)
    except OSError as e:
        return _unreadable(path, e.strerror or str(e))
    if policy is None:
        policy = settings.policy()
    try:
        result = run_analysis(raw, _NO_ENVELOPE, policy, as_original=as_original)
    except Exception as e:  # a bug in the analysis must not stop the batch
        return _unreadable(path, f"analysis failed: {type(e).__name__}: {e}")
    evidence = _NO_EVIDENCE
    if dns:
        evidence = verify.verify_analysis(result, settings.dns)
    return conclude(result, evidence, policy)


@click.command("analyze")
@config_option
@click.argument("files", nargs=-1, required=True)
@click.option(
    "--original",
    "as_original",
    is_flag=True,
    help="Each file is the offending message itself, not a report forwarding it.",
)
@click.option("--json", "as_json", is_flag=True, help="One JSON object per file per line.")
@click.option("--no-dns", is_flag=True, help="Skip DKIM/ARC/SPF/DMARC verification.")
@click.pass_context
def analyze(
    ctx: click.Context, files: tuple[str, ...], as_original: bool, as_json: bool, no_dns: bool
) -> None:
    """Analyse report files (or originals with --original) and print what was found."""
    st = state(ctx)
    settings = st.settings() if st.config_path or _has_config() else Settings()
    dns = settings.dns.enabled and not no_dns
    console = Console()
    policy = settings.policy()
    for path in files:
        result = analyze_file(path, settings, as_original=as_original, dns=dns, policy=policy)
        if as_json:
            # one write per line, no flush: click.echo's per-call checks cost more than a
            # whole small analysis
            sys.stdout.write(json_line(analysis_json_text(result, path)))
        else:
            console.print(render_analysis(path, result))


# Characters that JSON may leave raw inside strings but that many line readers (Python's
# str.splitlines, some editors and log shippers) take as line ends: a hostile header can
# carry them, and each must not split one result into several "lines".
_LINE_BREAKERS = (("\x85", "\\u0085"), ("\u2028", "\\u2028"), ("\u2029", "\\u2029"))


def json_line(text: str) -> str:
    """Compact JSON text as one line (UTF-8 kept readable, Unicode line breaks escaped)."""
    # rare: each searched and replaced in C (str.translate with this table would look every
    # character of the line up in a dict, several times the cost of the three replaces)
    for char, escaped in _LINE_BREAKERS:
        if char in text:
            text = text.replace(char, escaped)
    return text + "\n"


def _has_config() -> bool:
    from stopitd import config

    return config.discover(None) is not None
