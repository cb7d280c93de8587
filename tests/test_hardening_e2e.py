"""Hostile clients against the REAL daemon over loopback: floods, slowloris, TLS, privileges.

Each hostile client is a bounded loop that stops by itself; limits in the daemon's config are
set small so the limits are reached in seconds.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import os
import pwd
import shutil
import signal
import smtplib
import socket
import ssl
import stat
import subprocess
import sys
import sysconfig
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from sqlalchemy import select

from stopitd.store import db
from stopitd.store.queries import show_case
from stopitd.store.schema import Report
from tests import fuzz
from tests.daemon_helpers import (
    REPORT_ADDRESS,
    STOPITD,
    Daemon,
    original_message,
    queued_id,
    report_message,
    running_daemon,
    send,
    wait_until,
    write_config,
)

FLOOD_SMTP = (
    'listen = "127.0.0.1:{port}"\n'
    f'report_addresses = ["{REPORT_ADDRESS}"]\n'
    "max_message_size = 65536\n"
    'hostname = "stopit.test"\n'
    "max_connections = 60\n"
    "max_connections_per_ip = 10\n"
    "max_messages_per_connection = 2\n"
    "command_timeout = 2.0\n"
    "data_timeout = 4.0\n"
)


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise AssertionError(f"no VmRSS for pid {pid}")


def connect_from(source: str, port: int, timeout: float = 10) -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.settimeout(timeout)
    sock.bind((source, 0))
    sock.connect(("127.0.0.1", port))
    return sock


def first_reply(sock: socket.socket) -> bytes:
    """The first reply line, or b"" if the server closed without one."""
    data = b""
    with contextlib.suppress(OSError):
        while not data.endswith(b"\n"):
            chunk = sock.recv(512)
            if not chunk:
                break
            data += chunk
    return data


@pytest.fixture
def limited(tmp_path: Path, sqlite_url: str) -> Iterator[Daemon]:
    d = Daemon(tmp_path / "node", sqlite_url)
    d.config = write_config(d.root, d.port, sqlite_url, smtp=FLOOD_SMTP.format(port=d.port))
    try:
        d.start()
        yield d
    finally:
        d.close()


class Flood:
    """1 000 connections from 127.0.0.2, all held open until ``close``."""

    def __init__(self, port: int, count: int = 1000) -> None:
        self.port = port
        self.count = count
        self.socks: list[socket.socket] = []
        self.errors = 0
        self.started = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        for i in range(self.count):
            try:
                self.socks.append(connect_from("127.0.0.2", self.port))
            except OSError:
                self.errors += 1
            if i == 100:
                self.started.set()
        self.started.set()

    def replies(self) -> dict[str, int]:
        self.thread.join(120)
        assert not self.thread.is_alive(), "the flood did not finish connecting"
        out: dict[str, int] = {}
        for sock in self.socks:
            key = first_reply(sock)[:9].decode(errors="replace") or "(closed)"
            out[key] = out.get(key, 0) + 1
        return out

    def close(self) -> None:
        for sock in self.socks:
            sock.close()
        self.socks.clear()


def slowloris(port: int, source: str, prefix: bytes, payload: bytes, out: list[bytes]) -> None:
    """Send ``prefix`` at once, then ``payload`` one byte a second; record what came back."""
    sock = connect_from(source, port, timeout=2)
    received = b""
    try:
        received += first_reply(sock)
        for line in prefix.split(b"\r\n")[:-1]:
            sock.sendall(line + b"\r\n")
            received += first_reply(sock)
        for i in range(min(len(payload), 30)):  # bounded: 30 s at most
            try:
                sock.sendall(payload[i : i + 1])
            except OSError:
                break
            ready = b""
            with contextlib.suppress(TimeoutError, OSError):
                sock.settimeout(1.0)
                ready = sock.recv(512)
            if ready:
                received += ready
            if b"421" in received:
                break
        with contextlib.suppress(OSError):
            sock.settimeout(2)
            while chunk := sock.recv(512):
                received += chunk
    finally:
        sock.close()
        out.append(received)


HELD_SMTP = FLOOD_SMTP.replace("command_timeout = 2.0", "command_timeout = 300.0").replace(
    "data_timeout = 4.0", "data_timeout = 300.0"
)


@pytest.fixture
def holding(tmp_path: Path, sqlite_url: str) -> Iterator[Daemon]:
    """The flood limits, with timeouts so long that no held connection is let go during
    the test: whatever the daemon serves meanwhile is served beside them, not after."""
    d = Daemon(tmp_path / "node", sqlite_url)
    d.config = write_config(d.root, d.port, sqlite_url, smtp=HELD_SMTP.format(port=d.port))
    try:
        d.start()
        yield d
    finally:
        d.close()


def stalled_client(port: int, source: str, commands: list[bytes], partial: bytes) -> socket.socket:
    """A client that sends ``commands`` (reading each reply), then ``partial`` (part of a
    command line, or part of a message after DATA), and then stalls with the connection
    open."""
    sock = connect_from(source, port, timeout=60)
    assert first_reply(sock).startswith(b"220"), "no banner for the stalled client"
    for line in commands:
        sock.sendall(line + b"\r\n")
        reply = first_reply(sock)
        assert reply[:1] in (b"2", b"3"), (line, reply)
    sock.sendall(partial)
    return sock


def _timed_send(d: Daemon, n: int) -> tuple[float, str]:
    t0 = time.monotonic()
    code, reply = send(d, report_message(n))
    took = time.monotonic() - t0
    assert code == 250, reply
    return took, queued_id(reply)


@pytest.mark.timeout(600)  # 3 x 1 000 connections on a loaded 2-core machine
def test_flood_and_slowloris_do_not_stop_a_well_behaved_sender(holding: Daemon) -> None:
    """While 1 000 connections from one address (10 served and held, 990 refused) and two
    slowloris clients (one stalled mid-command, one mid-DATA) are all open, a well-behaved
    sender files its report. The held sessions time out only after 300 s, so the 250 can
    only come while they are still open if the good session was served beside them, not
    queued behind them: that is checked from the kernel's connection table right after
    the 250, with no timing bound (the latencies are printed for the docs)."""
    d = holding
    assert d.proc is not None
    baseline, first = _timed_send(d, 99)  # the same sender with nothing else going on
    wait_until(lambda: first in d.reports(), 60, "the baseline report's case")
    rss_start = rss_kib(d.proc.pid)
    rss_rounds = []
    durations = []
    for round_no in range(3):
        flood = Flood(d.port)
        flood.thread.start()
        stalled: list[socket.socket] = []
        try:
            flood.thread.join(120)
            assert not flood.thread.is_alive(), "the flood did not finish connecting"
            stalled.append(stalled_client(d.port, "127.0.0.3", [], b"EHLO slow.exa"))
            stalled.append(
                stalled_client(
                    d.port,
                    "127.0.0.4",
                    [
                        b"EHLO slow.example.org",
                        b"MAIL FROM:<a@b.example>",
                        b"RCPT TO:<stopit@example.edu>",
                        b"DATA",
                    ],
                    report_message(1)[:300],
                )
            )
            took, spool_id = _timed_send(d, 100 + round_no)
            durations.append(took)
            held = _established_from(d.port)
            assert held.get("127.0.0.2", 0) == 10, held  # the served flood sessions
            assert held.get("127.0.0.3", 0) == 1 and held.get("127.0.0.4", 0) == 1, held
            replies = flood.replies()
        finally:
            flood.close()
            for sock in stalled:
                sock.close()
        assert flood.errors == 0
        # exactly max_connections_per_ip were served; the rest were told why and closed
        assert replies.get("220 stopi", 0) == 10, replies
        assert replies.get("421 4.7.0", 0) == 990, replies
        wait_until(lambda sid=spool_id: sid in d.reports(), 60, "the good report's case")
        # every flood socket is closed on our side: wait until the daemon has let go
        wait_until(lambda: _open_connections(d.port) == 0, 60, "the daemon to close the flood")
        rss_rounds.append(rss_kib(d.proc.pid))
    # memory: bounded growth over three floods (KiB); a leak of the 990 refused per round
    # would show as steady growth from round to round
    assert rss_rounds[-1] - rss_rounds[0] < 8 * 1024, (rss_start, rss_rounds)
    assert rss_rounds[-1] - rss_start < 64 * 1024, (rss_start, rss_rounds)
    refused = d.events("connections_refused")
    assert refused and len(refused) < 20  # summarised, not one line per connection
    assert d.proc.poll() is None
    print(
        f"flood figures: 3 x 1000 connections from 127.0.0.2 + 2 stalled clients, good sender "
        f"replies in {[round(x * 1000) for x in durations]} ms (alone: {round(baseline * 1000)}"
        f" ms); RSS KiB start {rss_start}, after each round {rss_rounds}"
    )


def test_slowloris_clients_are_cut_off_with_421(limited: Daemon) -> None:
    """One byte a second: cut off after [smtp] command_timeout / data_timeout with a
    reason, then closed; the daemon still takes reports."""
    d = limited
    slow_results: list[bytes] = []
    slow = [
        threading.Thread(
            target=slowloris,
            args=(d.port, "127.0.0.3", b"", b"EHLO slow.example.org\r\n" * 3, slow_results),
        ),
        threading.Thread(
            target=slowloris,
            args=(
                d.port,
                "127.0.0.4",
                b"EHLO slow.example.org\r\nMAIL FROM:<a@b.example>\r\n"
                b"RCPT TO:<stopit@example.edu>\r\nDATA\r\n",
                report_message(1),
                slow_results,
            ),
        ),
    ]
    for t in slow:
        t.start()
    for t in slow:
        t.join(90)
    assert not any(t.is_alive() for t in slow), "a slowloris client did not stop"
    assert len(slow_results) == 2
    for result in slow_results:
        assert b"421 4.7.0" in result, result  # timed out with a reason, then closed
    code, reply = send(d, report_message(150))
    assert code == 250, reply
    assert d.proc is not None and d.proc.poll() is None


def _established_from(port: int) -> dict[str, int]:
    """Server-side ESTABLISHED connections to the daemon's port, by client IPv4 address."""
    out: dict[str, int] = {}
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        parts = line.split()
        local_port = int(parts[1].rsplit(":", 1)[1], 16)
        if local_port != port or parts[3] != "01":
            continue
        remote = socket.inet_ntoa(int(parts[2].split(":")[0], 16).to_bytes(4, "little"))
        out[remote] = out.get(remote, 0) + 1
    return out


def _open_connections(port: int) -> int:
    """Established TCP connections to the daemon's port (server side), from /proc."""
    count = 0
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        with contextlib.suppress(FileNotFoundError):
            for line in Path(table).read_text().splitlines()[1:]:
                parts = line.split()
                local_port = int(parts[1].rsplit(":", 1)[1], 16)
                if local_port == port and parts[3] == "01":  # ESTABLISHED
                    count += 1
    return count


def test_message_limit_per_connection(limited: Daemon) -> None:
    client = limited.smtp()
    try:
        for n in range(2):
            client.mail("victim@example.edu")
            client.rcpt(REPORT_ADDRESS)
            code, reply = client.data(report_message(200 + n))
            assert code == 250, reply
        code, reply = client.mail("victim@example.edu")
        assert code == 421 and reply.startswith(b"4.7.0"), (code, reply)
    finally:
        with contextlib.suppress(smtplib.SMTPException, OSError):
            client.close()
    code, reply = send(limited, report_message(202))  # a new connection is fine
    assert code == 250, reply


# --- STARTTLS -------------------------------------------------------------------------------


def make_certificate(root: Path, serial: int) -> tuple[Path, Path, bytes]:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "stopit.test")])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(serial)
        .not_valid_before(now - dt.timedelta(days=1))
        .not_valid_after(now + dt.timedelta(days=30))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName("stopit.test")]), False)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = root / "tls.crt", root / "tls.key"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert_path, key_path, cert.public_bytes(serialization.Encoding.DER)


def peer_certificate(port: int) -> bytes:
    client = smtplib.SMTP("127.0.0.1", port, timeout=30)
    try:
        client.ehlo("reporter.example.org")
        context = ssl.create_default_context()
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
        client.starttls(context=context)
        assert isinstance(client.sock, ssl.SSLSocket)
        der = client.sock.getpeercert(binary_form=True)
        assert der is not None
        return der
    finally:
        with contextlib.suppress(smtplib.SMTPException, OSError):
            client.quit()


def test_starttls_with_swaks_require_tls_and_reload_on_sighup(
    tmp_path: Path, sqlite_url: str
) -> None:
    swaks = shutil.which("swaks")
    assert swaks, "swaks is missing: apt-get install swaks (make test and .ci/run do this)"
    node = tmp_path / "node"
    node.mkdir()
    cert, key, first_der = make_certificate(node, 1001)
    smtp = (
        f'report_addresses = ["{REPORT_ADDRESS}"]\n'
        'hostname = "stopit.test"\n'
        f'tls_cert = "{cert.name}"\ntls_key = "{key.name}"\nrequire_tls = true\n'
    )
    d = Daemon(node, sqlite_url)
    d.config = write_config(
        d.root, d.port, sqlite_url, smtp=f'listen = "127.0.0.1:{d.port}"\n' + smtp
    )
    try:
        d.start()
        # without STARTTLS: refused before MAIL, with the enhanced code
        client = d.smtp()
        try:
            assert b"STARTTLS" in client.ehlo_resp if client.ehlo_resp else False
            code, reply = client.mail("victim@example.edu")
            assert code == 530 and reply.startswith(b"5.7.0"), (code, reply)
        finally:
            client.close()
        original = tmp_path / "offending.eml"
        original.write_bytes(original_message(5))
        out = subprocess.run(
            [swaks, "--to", REPORT_ADDRESS, "--from", "victim@example.edu",
             "--server", f"127.0.0.1:{d.port}", "--tls",
             "--attach-type", "message/rfc822", "--attach", f"@{original}"],
            capture_output=True, text=True, timeout=60, check=False,
        )  # fmt: skip
        assert out.returncode == 0, out.stdout + out.stderr
        assert "TLS started" in out.stdout, out.stdout
        replies = [line for line in out.stdout.splitlines() if "queued as" in line]
        assert len(replies) == 1 and "250 2.0.0" in replies[0], out.stdout
        spool_id = replies[0].rsplit(" ", 1)[1]
        wait_until(lambda: spool_id in d.reports(), 60, "the case filed over TLS")
        assert peer_certificate(d.port) == first_der
        # a renewed certificate is picked up on SIGHUP, without a restart
        _, _, second_der = make_certificate(node, 1002)
        d.signal(1)  # SIGHUP
        wait_until(lambda: bool(d.events("tls_reloaded")), 30, "the TLS reload")
        assert peer_certificate(d.port) == second_der
        # a broken pair keeps the previous certificate and the daemon running
        key.write_text("not a key")
        d.signal(1)
        wait_until(lambda: bool(d.events("tls_reload_failed")), 30, "the failed reload")
        assert peer_certificate(d.port) == second_der
        assert d.stop() == 0
    finally:
        d.close()


# --- flood grouping ---------------------------------------------------------------------------

# windows are aligned to the epoch: one of 10^9 s (2001-2033) is never crossed by a test run
GROUPING = "flood_reports = 5\nflood_window = 1000000000.0\n"


def _send_as(d: Daemon, reporter: str, message: bytes) -> str:
    client = d.smtp()
    try:
        client.mail(reporter)
        client.rcpt(REPORT_ADDRESS)
        code, reply = client.data(message)
    finally:
        with contextlib.suppress(smtplib.SMTPException, OSError):
            client.quit()
    assert code == 250, reply
    return queued_id(reply.decode())


def _cli_json(d: Daemon, *args: str) -> object:
    done = subprocess.run(
        [STOPITD, "--config", str(d.config), "cases", *args, "--json"],
        capture_output=True,
        text=True,
        check=True,
    )
    return json.loads(done.stdout)


@pytest.mark.postgres
@pytest.mark.timeout(600)  # two daemons and the CLI on a loaded 2-core machine
def test_a_flooding_reporter_fills_one_flood_case_while_others_get_their_own(
    tmp_path: Path, pg_url: str
) -> None:
    """Two real daemons on one PostgreSQL store, [intake] flood_reports = 5: one reporter
    sends 24 distinct reports over both nodes at once while another reporter files one.
    All 25 are stored; the flooder's first 5 open cases, the other 19 share one flood case
    (shown as such by `cases list --json` and `cases show`); the other reporter's report
    opens its own case."""
    flooder, good = "mallory@example.net", "ann@example.edu"
    with (
        running_daemon(tmp_path / "node-a", pg_url, intake=GROUPING) as a,
        running_daemon(tmp_path / "node-b", pg_url, intake=GROUPING) as b,
    ):
        jobs = [
            ((a, b)[n % 2], flooder, report_message(500 + n, reporter=flooder)) for n in range(24)
        ]
        jobs.insert(12, (b, good, report_message(900, reporter=good)))
        with ThreadPoolExecutor(max_workers=4) as pool:
            ids = list(pool.map(lambda j: (j[1], _send_as(*j)), jobs))
        wait_until(lambda: {i for _, i in ids} <= set(a.reports()), 120, "all 25 reports stored")
        assert len(a.reports()) == 25
        rows = _cli_json(a, "list", "--limit", "0")
        assert isinstance(rows, list)
        floods = [r for r in rows if r["flood"] == "reporter"]
        assert len(floods) == 1, rows
        assert (floods[0]["report_count"], floods[0]["reporter_count"]) == (19, 1)
        ordinary = [r for r in rows if r["flood"] is None]
        assert len(ordinary) == 6 and all(r["report_count"] == 1 for r in ordinary)
        (good_id,) = [i for who, i in ids if who == good]
        engine = db.make_engine(pg_url)
        try:
            with db.make_sessionmaker(engine)() as session:
                good_case = session.scalar(select(Report.case_id).where(Report.spool_id == good_id))
                assert good_case in {r["id"] for r in ordinary}
                mine = show_case(session, good_case)
        finally:
            engine.dispose()
        assert mine is not None and mine["report_count"] == 1
        assert mine["reports"][0]["reporter"] == good
        assert mine["reports"][0]["joined_by"] == "new"
        flood = _cli_json(b, "show", str(floods[0]["id"]))
        assert isinstance(flood, dict)
        assert {r["joined_by"] for r in flood["reports"]} == {"flood"}
        assert {r["reporter"] for r in flood["reports"]} == {flooder}
        assert flood["events"][0]["kind"] == "created"
        assert flood["events"][0]["detail"]["flood"] == "reporter"
        table = subprocess.run(
            [STOPITD, "--config", str(a.config), "cases", "list"],
            capture_output=True,
            text=True,
            check=True,
            env={**os.environ, "COLUMNS": "300"},
        ).stdout
        assert "FLOOD" in table
        # nothing about the flood leaks the reporter at info level
        assert flooder not in a.log_text() + b.log_text()


# --- hostile content over SMTP ---------------------------------------------------------------


def test_mutated_reports_each_end_as_a_case_or_quarantined(limited: Daemon) -> None:
    """~50 fuzzed reports over SMTP: every 250 becomes a report row or a failed/ entry with a
    reason; anything refused is refused with a reply; the daemon and its worker live on."""
    d = limited
    corpus = fuzz.load_corpus()
    accepted: list[str] = []
    refused: dict[int, int] = {}
    for n in range(50):
        _, raw, _ = fuzz.make_case(4242, n, corpus)
        client = d.smtp()
        try:
            client.mail("victim@example.edu")
            client.rcpt(REPORT_ADDRESS)
            code, reply = client.data(raw)
        except smtplib.SMTPResponseException as e:
            code, reply = e.smtp_code, e.smtp_error
        finally:
            with contextlib.suppress(smtplib.SMTPException, OSError):
                client.quit()
        if code == 250:
            accepted.append(queued_id(reply.decode()))
        else:
            assert code in (500, 552), (n, code, reply)  # the sender's fault, said so
            refused[code] = refused.get(code, 0) + 1
    assert len(accepted) >= 40, refused

    def settled() -> bool:
        stored = d.reports()
        failed = {p.name for p in d.spool.failed.iterdir()}
        return all(i in stored or f"{i}.reason" in failed for i in accepted)

    wait_until(settled, 300, "every accepted report to become a case or be quarantined")
    stored = d.reports()
    for spool_id in accepted:
        if spool_id not in stored:
            reason = (d.spool.failed / f"{spool_id}.reason").read_text()
            assert reason.strip(), spool_id
    assert d.proc is not None and d.proc.poll() is None
    assert not d.events("worker_died")
    code, reply = send(d, report_message(400))  # still taking reports
    assert code == 250, reply
    print(
        f"mutated over SMTP: {len(accepted)} accepted, "
        f"{sum(1 for i in accepted if i in stored)} cases, refused {refused}"
    )


# --- least privilege --------------------------------------------------------------------------


@contextlib.contextmanager
def throwaway_user() -> Iterator[pwd.struct_passwd]:
    assert os.geteuid() == 0, "this test needs root (CI runs the suite as root)"
    name = f"stopitd-t{uuid.uuid4().hex[:8]}"
    subprocess.run(
        ["useradd", "--system", "--no-create-home", "--shell", "/usr/sbin/nologin", name],
        check=True,
    )
    entry = pwd.getpwnam(name)
    try:
        yield entry
    finally:
        for pid in _pids_of(entry.pw_uid):  # only this test ran anything as this user
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        wait_until(lambda: not _pids_of(entry.pw_uid), 30, "the user's processes to end")
        subprocess.run(["userdel", name], check=True)


def _pids_of(uid: int) -> list[int]:
    pids = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            with contextlib.suppress(OSError):
                if entry.stat().st_uid == uid:
                    pids.append(int(entry.name))
    return pids


def world_readable_stopitd(base: Path) -> list[str]:
    """A `stopitd` command any user can run: a venv of the system's Python (this test's
    interpreter may sit under /root, which a service user cannot enter) that sees this
    checkout's installed packages."""
    version = f"{sys.version_info.major}.{sys.version_info.minor}"
    system_python = Path(f"/usr/bin/python{version}")
    assert system_python.exists(), (
        f"{system_python} is missing: the privilege test runs stopitd as a service user, "
        f"who needs a Python {version} outside /root (apt-get install python{version})"
    )
    venv = base / "venv"
    subprocess.run([str(system_python), "-m", "venv", "--without-pip", str(venv)], check=True)
    site_packages = Path(sysconfig.get_paths()["purelib"])
    pth = venv / "lib" / f"python{version}" / "site-packages" / "stopitd-test.pth"
    pth.write_text(f"import site; site.addsitedir({str(site_packages)!r})\n")
    return [str(venv / "bin" / "python"), "-c", "from stopitd.cli import main; main()"]


def proc_ids(pid: int) -> dict[str, list[int]]:
    out = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key in ("Uid", "Gid", "Groups"):
            out[key] = [int(v) for v in value.split()]
    return out


def test_started_as_root_binds_then_runs_as_the_service_user() -> None:
    with throwaway_user() as user, tempfile.TemporaryDirectory(prefix="stopitd-priv-") as tmp:
        base = Path(tmp)
        base.chmod(0o755)  # the service user must reach its state folder (as /var/lib)
        state = base / "state"
        state.mkdir()
        os.chown(state, user.pw_uid, user.pw_gid)
        url = f"sqlite:///{state / 'stopitd.db'}"
        command = world_readable_stopitd(base)
        d = Daemon(
            base / "etc",
            url,
            extra_config={"daemon": f'user = "{user.pw_name}"\n'},
            command=command,
        )
        d.config.write_text(
            d.config.read_text().replace('path = "spool"', f'path = "{state / "spool"}"')
        )
        d.config.chmod(0o644)
        # the admin creates the database as the service user (docs/install.md)
        up = subprocess.run(
            ["runuser", "-u", user.pw_name, "--", *command, "--config", str(d.config),
             "db", "upgrade"],
            capture_output=True, text=True, check=False,
        )  # fmt: skip
        assert up.returncode == 0, up.stderr
        os.chmod(d.notify_path, 0o666)  # systemd's notify socket is open to the service user
        try:
            d.start()
            assert d.proc is not None
            (dropped,) = d.events("privileges_dropped")
            assert dropped["uid"] == user.pw_uid
            ids = proc_ids(d.proc.pid)
            assert ids["Uid"] == [user.pw_uid] * 4 and ids["Gid"] == [user.pw_gid] * 4
            assert ids["Groups"] == []
            worker_pid = d.events("daemon_ready")[0]["worker_pid"]
            assert proc_ids(worker_pid)["Uid"] == [user.pw_uid] * 4
            code, reply = send(d, report_message(300))
            assert code == 250, reply
            spool_id = queued_id(reply)
            # Wait on the spool, not the store: this test runs as root, and a root reader
            # opening the SQLite file before the worker first has would create root-owned
            # -wal/-shm files that the service user's worker then cannot write.
            queue = [state / "spool" / "new", state / "spool" / "cur"]
            wait_until(lambda: not any(os.listdir(q) for q in queue), 60, "the spool to drain")
            assert spool_id in d.reports()
            for path in [state / "stopitd.db", *state.glob("stopitd.db-*")]:
                st = path.stat()
                assert stat.S_IMODE(st.st_mode) == 0o600, path
                assert st.st_uid == user.pw_uid, path
            for path in (state / "spool").rglob("*"):
                st = path.stat()
                assert st.st_uid == user.pw_uid, path
                want = 0o700 if path.is_dir() else 0o600
                assert stat.S_IMODE(st.st_mode) == want, (path, oct(st.st_mode))
            assert stat.S_IMODE((state / "spool").stat().st_mode) == 0o700
            assert d.stop() == 0
        finally:
            d.close()


def test_a_user_that_does_not_exist_refuses_to_start(tmp_path: Path, sqlite_url: str) -> None:
    d = Daemon(tmp_path / "node", sqlite_url, extra_config={"daemon": 'user = "no-such-user-x"\n'})
    try:
        proc = d.spawn()
        assert proc.wait(60) == 1
        assert "no such user" in d.events("startup_failed")[0]["error"]
    finally:
        d.close()


__all__ = ["running_daemon"]
