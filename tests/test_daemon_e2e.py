"""The real daemon process over real loopback SMTP, with a real migrated store."""

from __future__ import annotations

import base64
import contextlib
import hashlib
import json
import os
import shutil
import signal
import smtplib
import socket
import subprocess
import threading
from pathlib import Path

import pytest

from stopitd.spool import parse_name
from tests.daemon_helpers import (
    MAX_SIZE,
    REPORT_ADDRESS,
    STOPITD,
    Daemon,
    daemon,
    original_message,
    queued_id,
    report_message,
    running_daemon,
    send,
    small_tmpfs,
    wait_until,
)
from tests.pg import PgServer

__all__ = ["daemon"]  # the fixture, imported for pytest


def cases_json(d: Daemon) -> list[dict[str, object]]:
    out = subprocess.run(
        [STOPITD, "--config", str(d.config), "cases", "list", "--json"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert out.returncode == 0, out.stderr
    rows = json.loads(out.stdout)
    assert isinstance(rows, list)
    return rows


def test_a_report_is_accepted_and_becomes_a_case(tmp_path: Path, store_url: str) -> None:
    with running_daemon(tmp_path / "node", store_url) as d:
        _report_becomes_a_case(d)


def _report_becomes_a_case(daemon: Daemon) -> None:
    message = report_message(1)
    code, reply = send(daemon, message)
    assert code == 250, reply
    spool_id = queued_id(reply)
    wait_until(lambda: spool_id in daemon.reports(), 60, "the case")
    assert daemon.raw_report(spool_id) == message  # the bytes exactly as sent
    rows = cases_json(daemon)
    assert len(rows) == 1
    assert rows[0]["subject"] == "you again (1)"
    assert rows[0]["report_count"] == 1
    daemon.wait_drained()
    assert os.listdir(daemon.spool.new) == [] and os.listdir(daemon.spool.tmp) == []
    ready = daemon.events("daemon_ready")
    assert len(ready) == 1 and f"127.0.0.1:{daemon.port}" in ready[0]["summary"]
    assert REPORT_ADDRESS in ready[0]["summary"]
    assert [e["spool_id"] for e in daemon.events("report_saved")] == [spool_id]


def test_swaks_forward_as_attachment_is_filed(daemon: Daemon, tmp_path: Path) -> None:
    """The README's command: swaks attaching the offending message as message/rfc822."""
    swaks = shutil.which("swaks")
    assert swaks, "swaks is missing: apt-get install swaks (make test and .ci/run do this)"
    offending = tmp_path / "offending.eml"
    offending.write_bytes(original_message(31))
    out = subprocess.run(
        [
            swaks,
            "--to",
            "STOPIT@example.edu",
            "--from",
            "victim@example.edu",
            "--server",
            f"127.0.0.1:{daemon.port}",
            "--attach-type",
            "message/rfc822",
            "--attach",
            f"@{offending}",
        ],
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
    assert out.returncode == 0, out.stdout + out.stderr
    queued = [line for line in out.stdout.splitlines() if "250 2.0.0 queued as " in line]
    assert len(queued) == 1, out.stdout
    spool_id = queued[0].rsplit(" ", 1)[1]
    wait_until(lambda: spool_id in daemon.reports(), 60, "the case")
    raw = daemon.raw_report(spool_id)
    # swaks sends the attachment base64-encoded: the stored report is what swaks sent
    part = raw[raw.index(b"Content-Type: message/rfc822") :]
    body = part[part.index(b"\r\n\r\n") + 4 : part.index(b"\r\n--")]
    assert base64.b64decode(body) == original_message(31)


def test_watchdog_pings_when_systemd_asks(tmp_path: Path, sqlite_url: str) -> None:
    d = Daemon(
        tmp_path / "node",
        sqlite_url,
        extra_env={"WATCHDOG_USEC": "200000"},
        extra_config={"log": 'format = "json"\nlevel = "debug"\n'},
    )
    try:
        d.start()
        d.wait_notify("WATCHDOG=1", 10)
        d.wait_notify("WATCHDOG=1", 10)
        # nobody reads the notify socket from here on: its queue fills up, and the daemon
        # must neither block on it nor fail to stop
        wait_until(lambda: bool(d.events("sd_notify_dropped")), 30, "a full notify queue")
        code, reply = send(d, report_message(95))
        assert code == 250, reply
        assert d.stop() == 0
    finally:
        d.close()


def test_a_dead_worker_is_restarted_and_nothing_is_lost(daemon: Daemon) -> None:
    worker_pid = daemon.events("daemon_ready")[0]["worker_pid"]
    os.kill(worker_pid, signal.SIGKILL)
    wait_until(lambda: bool(daemon.events("worker_died")), 30, "the daemon to notice")
    code, reply = send(daemon, report_message(40))  # intake never depended on the worker
    assert code == 250, reply
    spool_id = queued_id(reply)
    wait_until(lambda: spool_id in daemon.reports(), 60, "the case from the new worker")
    assert len(daemon.events("worker_started")) == 2


def test_recipient_policy_and_size(daemon: Daemon) -> None:
    client = daemon.smtp()
    try:
        assert client.has_extn("size")
        assert client.esmtp_features["size"] == str(MAX_SIZE)
        client.mail("someone@example.org")
        code, text = client.rcpt("victim@example.edu")  # never a relay
        assert (code, text[:5]) == (550, b"5.1.1")
        code, text = client.rcpt("friend@elsewhere.example")
        assert code == 550
        code, text = client.rcpt("STOPIT@Example.Edu")  # case-insensitive
        assert code == 250, text
        code, text = client.rcpt("abuse-reports@example.edu")
        assert code == 250, text
        client.rset()
        # declared size too big: refused at MAIL with our enhanced code
        code, text = client.mail("someone@example.org", [f"SIZE={MAX_SIZE + 1}"])
        assert (code, text[:5]) == (552, b"5.3.4"), text
        client.rset()
        # undeclared, then too much data
        client.mail("someone@example.org")
        client.rcpt(REPORT_ADDRESS)
        big = report_message(2) + (b"X" * 900 + b"\r\n") * (MAX_SIZE // 900 + 2)
        code, text = client.data(big)
        assert (code, text[:5]) == (552, b"5.3.4"), text
    finally:
        client.quit()
    assert os.listdir(daemon.spool.new) == []
    assert daemon.reports() == {}


def test_null_sender_report_is_accepted(daemon: Daemon) -> None:
    """ISP feedback loops send from the null reverse-path."""
    client = daemon.smtp()
    try:
        assert client.mail("")[0] == 250  # MAIL FROM:<>
        assert client.rcpt(REPORT_ADDRESS)[0] == 250
        code, reply = client.data(report_message(90))
    finally:
        client.quit()
    assert code == 250, reply
    spool_id = queued_id(reply.decode())
    wait_until(lambda: spool_id in daemon.reports(), 60, "the case")


def test_unwritable_spool_answers_451_and_leaves_nothing(daemon: Daemon) -> None:
    tmp = daemon.spool.tmp
    shutil.rmtree(tmp)
    tmp.write_text("a regular file where the tmp folder should be (ENOTDIR)\n")
    code, reply = send(daemon, report_message(3))
    assert (code, reply[:5]) == (451, "4.3.0"), reply
    assert os.listdir(daemon.spool.new) == [] and os.listdir(daemon.spool.cur) == []
    failures = daemon.events("spool_write_failed")
    assert len(failures) == 1 and failures[0]["errno"] == 20
    # the daemon keeps running; once the folder is back, intake resumes by itself
    tmp.unlink()
    tmp.mkdir(mode=0o700)
    code, reply = send(daemon, report_message(4))
    assert code == 250, reply
    spool_id = queued_id(reply)
    wait_until(lambda: spool_id in daemon.reports(), 60, "the case")
    assert len(daemon.reports()) == 1


def unstuff(data: bytes) -> bytes:
    lines = data.split(b"\r\n")
    return b"\r\n".join(line[1:] if line.startswith(b".") else line for line in lines)


def test_full_disk_answers_4xx_then_resumes_when_space_returns(
    tmp_path: Path, sqlite_url: str
) -> None:
    """The spool on a small real filesystem: 452 while it is full, nothing half-written,
    250 again once space returns, and exactly one case per 250."""
    node = tmp_path / "node"
    with small_tmpfs(node / "spool", "1m") as mount, running_daemon(node, sqlite_url) as d:
        code, reply = send(d, report_message(200))
        assert code == 250, reply
        acked = [queued_id(reply)]
        ballast = mount / "ballast"
        with contextlib.suppress(OSError), ballast.open("wb", buffering=0) as fh:
            while True:  # fill the filesystem to the last block
                fh.write(b"\0" * 4096)
        code, reply = send(d, report_message(201))
        assert (code, reply[:5]) == (452, "4.3.1"), reply
        assert os.listdir(d.spool.tmp) == []  # the partial file is gone
        assert len(daemon_events_errno(d)) == 1
        ballast.unlink()  # space returns: intake resumes by itself
        code, reply = send(d, report_message(202))
        assert code == 250, reply
        acked.append(queued_id(reply))
        d.wait_drained()
        wait_until(lambda: set(acked) <= set(d.reports()), 60, "the cases")
        assert set(d.reports()) == set(acked)
        assert d.proc is not None and d.proc.poll() is None  # it never died


def daemon_events_errno(d: Daemon) -> list[int]:
    return [e["errno"] for e in d.events("spool_write_failed") if e["errno"] == 28]


def _send_secret_reports(daemon: Daemon) -> list[str]:
    """Three reports from distinct reporters and one refused recipient; what must not leak."""
    secrets = []
    for n in range(3):
        reporter = f"reporter{n}@victims.example"
        code, reply = send_from(daemon, reporter, report_message(60 + n, reporter=reporter))
        assert code == 250, reply
        secrets += [reporter, f"you again ({60 + n})", f"troll{60 + n}", "Please make this stop"]
    code, _ = send(daemon, report_message(70), rcpt="someone-else@example.org")
    assert code == 550
    secrets.append("someone-else@example.org")
    daemon.wait_drained()
    wait_until(lambda: len(daemon.events("report_saved")) == 3, 60, "three cases")
    assert daemon.stop() == 0
    return secrets


def test_info_logs_never_carry_addresses_subjects_or_bodies(daemon: Daemon) -> None:
    secrets = _send_secret_reports(daemon)
    log = daemon.log_text().lower()
    for secret in secrets:
        assert secret.lower() not in log, secret


def test_debug_logs_may_carry_addresses(tmp_path: Path, sqlite_url: str) -> None:
    """The same run at debug level: the details are there (so the info test can fail)."""
    debug = {"log": 'format = "json"\nlevel = "debug"\n'}
    with running_daemon(tmp_path / "node", sqlite_url, **debug) as d:
        _send_secret_reports(d)
        log = d.log_text().lower()
    assert "reporter0@victims.example" in log
    assert "someone-else@example.org" in log


def send_from(daemon: Daemon, mail_from: str, message: bytes) -> tuple[int, str]:
    client = daemon.smtp()
    try:
        client.mail(mail_from)
        client.rcpt(REPORT_ADDRESS)
        code, reply = client.data(message)
        return code, reply.decode()
    finally:
        client.quit()


def test_smtp_smuggling_does_not_split_a_message(daemon: Daemon) -> None:
    """Bare-LF end-of-data lookalikes are data: one message, one 250, bytes kept."""
    smuggled = (
        b"MAIL FROM:<ceo@example.edu>\r\n"
        b"RCPT TO:<stopit@example.edu>\r\n"
        b"DATA\r\n"
        b"From: ceo@example.edu\r\n"
        b"Subject: smuggled\r\n"
        b"\r\n"
        b"I was smuggled.\r\n"
    )
    for terminator in (b"\n.\r\n", b"\r\n.\n", b"\n.\n", b"\r.\r\n"):
        body = b"Subject: first\r\n\r\nfirst message" + terminator + smuggled + b".\r\n"
        with socket.create_connection(("127.0.0.1", daemon.port), timeout=30) as sock:
            stream = sock.makefile("rb")
            assert stream.readline().startswith(b"220")
            sock.sendall(
                b"EHLO attacker.example\r\nMAIL FROM:<a@attacker.example>\r\n"
                b"RCPT TO:<stopit@example.edu>\r\nDATA\r\n"
            )
            replies = []
            while not replies or not replies[-1].startswith(b"354"):
                replies.append(stream.readline())
            sock.sendall(body + b"QUIT\r\n")
            rest = stream.read()
        lines = rest.split(b"\r\n")
        queued = [line for line in lines if line.startswith(b"250 2.0.0 queued as ")]
        assert len(queued) == 1, rest
        assert lines[1].startswith(b"221"), rest  # then QUIT, nothing in between
        spool_id = queued[0].decode().rsplit(" ", 1)[1]
        wait_until(lambda s=spool_id: s in daemon.reports(), 60, "the case")
        raw = daemon.raw_report(spool_id)
        # the bytes as sent, after RFC 5321 §4.5.2 dot-unstuffing of CRLF-delimited lines
        assert raw == unstuff(b"Subject: first\r\n\r\nfirst message" + terminator + smuggled)
    assert len(daemon.reports()) == 4


def test_sigterm_finishes_the_message_in_hand_and_exits_0(daemon: Daemon) -> None:
    client = daemon.smtp()
    client.mail("victim@example.edu")
    client.rcpt(REPORT_ADDRESS)
    client.putcmd("data")
    code, _ = client.getreply()
    assert code == 354
    message = report_message(5)
    half = len(message) // 2
    client.send(message[:half])
    daemon.signal(signal.SIGTERM)
    daemon.wait_notify("STOPPING=1")
    with pytest.raises(OSError):  # no longer accepting
        socket.create_connection(("127.0.0.1", daemon.port), timeout=5).close()
    client.send(message[half:] + b".\r\n")
    code, reply = client.getreply()
    assert code == 250, reply
    spool_id = queued_id(reply.decode())
    assert daemon.proc is not None
    assert daemon.proc.wait(60) == 0
    assert daemon.events("daemon_stopped")[0]["drained"] is True
    # it is durable: after a restart it becomes a case
    daemon.start()
    wait_until(lambda: spool_id in daemon.reports(), 60, "the case after restart")


def test_second_signal_exits_at_once(daemon: Daemon) -> None:
    client = daemon.smtp()
    client.mail("victim@example.edu")
    client.rcpt(REPORT_ADDRESS)
    client.putcmd("data")
    assert client.getreply()[0] == 354
    client.send(b"Subject: never finished\r\n\r\n")
    daemon.signal(signal.SIGTERM)
    daemon.wait_notify("STOPPING=1")
    daemon.signal(signal.SIGTERM)
    assert daemon.proc is not None
    assert daemon.proc.wait(30) == 128 + signal.SIGTERM
    client.close()


def test_a_second_daemon_on_the_same_spool_or_port_refuses(daemon: Daemon) -> None:
    same_spool = Daemon(daemon.root / "second", daemon.url)
    try:
        same_spool.config.write_text(
            daemon.config.read_text()
            .replace(str(daemon.port), str(same_spool.port))
            .replace('path = "spool"', f'path = "{daemon.spool.root}"')
        )
        proc = same_spool.spawn()
        assert proc.wait(60) == 1
        assert "in use by another stopitd" in same_spool.events("startup_failed")[0]["error"]
    finally:
        same_spool.close()
    same_port = Daemon(daemon.root / "third", daemon.url)
    try:
        same_port.config.write_text(
            same_port.config.read_text().replace(str(same_port.port), str(daemon.port))
        )
        proc = same_port.spawn()
        assert proc.wait(60) == 1
        assert same_port.events("listen_failed")
    finally:
        same_port.close()
    code, reply = send(daemon, report_message(80))  # the first one is unaffected
    assert code == 250, reply


def test_schema_behind_refuses_to_start(tmp_path: Path) -> None:
    empty = tmp_path / "never-migrated.db"
    d = Daemon(tmp_path / "node", f"sqlite:///{empty}")
    try:
        proc = d.spawn()
        assert proc.wait(60) != 0
        assert "stopitd db upgrade" in d.log_text()
        assert d.events("schema_behind")
        assert not d.spool.root.exists() or os.listdir(d.spool.new) == []
    finally:
        d.close()


def _alive(pid: int) -> bool:
    """Running (a zombie waiting for its reaper does not count)."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except FileNotFoundError:
        return False
    return "\nState:\tZ" not in status


def _burst_then_kill(d: Daemon, total: int, kill_after: int) -> tuple[dict[str, str], set[str]]:
    """Send ``total`` reports over 4 connections; SIGKILL the daemon after ``kill_after``
    250s. Returns {spool id: sha256} of acknowledged reports and the sha256 of all sent."""
    acked: dict[str, str] = {}
    sent: set[str] = set()
    lock = threading.Lock()
    enough = threading.Event()

    def sender(start: int) -> None:
        client: smtplib.SMTP | None = None
        try:
            client = d.smtp()
            for n in range(start, total, 4):
                message = report_message(n)
                digest = hashlib.sha256(message).hexdigest()
                with lock:
                    sent.add(digest)
                client.mail("victim@example.edu")
                client.rcpt(REPORT_ADDRESS)
                code, reply = client.data(message)
                if code != 250:
                    return
                with lock:
                    acked[queued_id(reply.decode())] = digest
                    if len(acked) >= kill_after:
                        enough.set()
        except (smtplib.SMTPException, OSError):
            return  # the daemon died under us: expected
        finally:
            if client is not None:
                client.close()

    threads = [threading.Thread(target=sender, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    assert enough.wait(120), "the burst did not reach the kill point"
    d.kill()
    for t in threads:
        t.join(60)
    return acked, sent


def test_sigkill_mid_burst_then_restart_loses_nothing_and_duplicates_nothing(
    tmp_path: Path, store_url: str
) -> None:
    with running_daemon(tmp_path / "node", store_url) as d:
        worker_pid = d.events("daemon_ready")[0]["worker_pid"]
        acked, sent = _burst_then_kill(d, total=200, kill_after=80)
        assert len(acked) >= 80
        wait_until(lambda: not _alive(worker_pid), 30, "the worker to die with the daemon")
        d.start()
        d.wait_drained(180)
        stored = d.reports()
        st = d.spool.status()
        assert st.failed == 0, st.failed_entries
        missing = set(acked) - set(stored)
        assert not missing, f"{len(missing)} acknowledged reports were lost"
        for spool_id, digest in acked.items():
            assert stored[spool_id] == digest
        # none twice, none beyond what was sent (a message fsynced just before the kill may
        # be stored although its 250 was lost)
        assert len(set(stored.values())) == len(stored)
        assert set(stored.values()) <= sent
        assert all(parse_name(s) is not None for s in stored)
        assert len(stored) <= len(acked) + 4  # at most one unacknowledged per connection


@pytest.mark.postgres
def test_store_down_delays_cases_but_loses_none(tmp_path: Path) -> None:
    pg = PgServer()
    try:
        pg.start()
        name = pg.create_database()
        url = pg.url(name)
        from stopitd.store import db

        db.upgrade(url)
        with running_daemon(tmp_path / "node", url) as d:
            code, reply = send(d, report_message(100))
            assert code == 250
            first = queued_id(reply)
            wait_until(lambda: first in d.reports(), 60, "the first case")
            pg.stop()
            acked = []
            for n in range(101, 121):
                code, reply = send(d, report_message(n))
                assert code == 250, reply  # intake does not depend on the store
                acked.append(queued_id(reply))
            wait_until(lambda: d.spool.status().store_down_since is not None, 60, "outage")
            status = subprocess.run(
                [STOPITD, "--config", str(d.config), "spool", "status", "--json"],
                capture_output=True,
                text=True,
                check=True,
            )
            shown = json.loads(status.stdout)
            assert shown["store"]["down"] is True
            assert shown["new"] + shown["cur"] == 20
            pg.start()
            wait_until(lambda: set(acked) <= set(d.reports()), 120, "all cases after outage")
            d.wait_drained()
            assert len(d.reports()) == 21
            assert len(d.events("store_unavailable")) == 1  # once per outage, not per message
            assert len(d.events("store_recovered")) == 1
            assert d.spool.status().store_down_since is None
            assert d.spool.status().failed == 0
    finally:
        pg.destroy()
