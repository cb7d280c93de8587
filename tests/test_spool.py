"""The spool on a real folder: durable put, claim/finish, requeue, attempt cap, retry, faults."""

from __future__ import annotations

import contextlib
import os
import resource
import signal
import threading
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from stopitd.analysis.model import Envelope
from stopitd.errors import SpoolError
from stopitd.spool import (
    DirSync,
    Spool,
    SpoolWriteError,
    decode_entry,
    new_id,
    parse_name,
)

RAW = (
    b"Return-Path: <reporter@example.org>\r\n"
    b"From: Reporter <reporter@example.org>\r\n"
    b"To: stopit@example.edu\r\n"
    b"Subject: Fwd: harassment\r\n"
    b"\r\n"
    b"See attached.\r\n"
    b"\n\r\n.\n\x00\xff binary tail kept verbatim\r\n"
)
ENVELOPE = Envelope(
    mail_from="reporter@example.org",
    rcpt_tos=("stopit@example.edu",),
    peer="127.0.0.1",
    helo="client.example.org",
    received_at=datetime(2026, 11, 25, 10, 0, 0, 123456, tzinfo=UTC),
)


@pytest.fixture
def spool(tmp_path: Path) -> Spool:
    s = Spool(tmp_path / "spool")
    s.create()
    return s


def names(folder: Path) -> list[str]:
    return sorted(os.listdir(folder))


def test_ids_are_uuid7_unique_and_time_ordered() -> None:
    ids = [new_id() for _ in range(20_000)]
    assert len(set(ids)) == len(ids)
    assert ids == sorted(ids)
    for text in ids[:50]:
        parsed = uuid.UUID(text)
        assert parsed.version == 7
        assert parsed.variant == uuid.RFC_4122
        assert str(parsed) == text
    now_ms = int(datetime.now(UTC).timestamp() * 1000)
    assert abs(int(ids[-1].replace("-", "")[:12], 16) - now_ms) < 60_000


def test_put_writes_envelope_line_then_raw_bytes_verbatim(spool: Spool) -> None:
    spool_id = spool.put(RAW, ENVELOPE)
    assert names(spool.new) == [spool_id]
    assert names(spool.tmp) == []
    data = (spool.new / spool_id).read_bytes()
    line, _, raw = data.partition(b"\n")
    assert raw == RAW
    assert b'"v":1' in line
    envelope, raw2 = decode_entry(data)
    assert raw2 == RAW
    assert envelope == ENVELOPE
    assert (spool.new / spool_id).stat().st_mode & 0o777 == 0o600
    assert spool.new.stat().st_mode & 0o777 == 0o700


def test_claim_read_finish(spool: Spool) -> None:
    first = spool.put(RAW, ENVELOPE)
    second = spool.put(b"Subject: two\r\n\r\nx\r\n", ENVELOPE)
    assert spool.pending() == [first, second]
    entry = spool.claim(first)
    assert entry is not None and entry.id == first and entry.attempts == 0
    assert names(spool.cur) == [first]
    assert spool.claim(first) is None  # already claimed
    assert spool.read(entry) == (ENVELOPE, RAW)
    spool.finish(entry)
    assert names(spool.cur) == []
    assert spool.pending() == [second]


def test_release_keeps_the_attempt_count(spool: Spool) -> None:
    spool_id = spool.put(RAW, ENVELOPE)
    entry = spool.claim(spool_id)
    assert entry is not None
    assert spool.fail_attempt(entry, "boom", max_attempts=5) is False
    assert spool.pending() == [f"{spool_id}.1"]
    entry = spool.claim(f"{spool_id}.1")
    assert entry is not None and entry.attempts == 1
    spool.release(entry)
    assert spool.pending() == [f"{spool_id}.1"]


def test_attempt_cap_moves_to_failed_with_reason_then_retry(spool: Spool) -> None:
    spool_id = spool.put(RAW, ENVELOPE)
    moved = False
    for attempt in range(3):
        name = spool.pending()[0]
        entry = spool.claim(name)
        assert entry is not None and entry.attempts == attempt
        moved = spool.fail_attempt(entry, f"analysis failed: ValueError {attempt}", 3)
    assert moved
    assert spool.pending() == []
    assert names(spool.failed) == [f"{spool_id}.3", f"{spool_id}.reason"]
    status = spool.status()
    assert (status.new, status.cur, status.failed) == (0, 0, 1)
    assert status.failed_entries[0].id == spool_id
    assert status.failed_entries[0].attempts == 3
    assert "ValueError 2" in status.failed_entries[0].reason

    assert spool.retry(spool_id) == [spool_id]
    assert names(spool.failed) == []
    assert spool.pending() == [spool_id]  # a fresh attempt count
    entry = spool.claim(spool_id)
    assert entry is not None and spool.read(entry) == (ENVELOPE, RAW)


def test_retry_unknown_id_is_an_error(spool: Spool) -> None:
    with pytest.raises(SpoolError, match="no failed spool entry"):
        spool.retry(new_id())


def test_recover_requeues_cur_leftovers_counting_an_attempt(spool: Spool) -> None:
    a = spool.put(RAW, ENVELOPE)
    b = spool.put(RAW, ENVELOPE)
    assert spool.claim(a) is not None
    assert spool.claim(b) is not None
    # b was already interrupted twice before
    os.rename(spool.cur / b, spool.cur / f"{b}.2")
    result = spool.recover(max_attempts=3)
    assert (result.requeued, result.failed) == (1, 1)
    assert spool.pending() == [f"{a}.1"]
    assert names(spool.failed) == [f"{b}.3", f"{b}.reason"]
    assert "interrupted 3 times" in (spool.failed / f"{b}.reason").read_text()


def test_corrupt_entry_quarantine(spool: Spool) -> None:
    spool_id = new_id()
    (spool.new / spool_id).write_bytes(b"not json\nbody")
    entry = spool.claim(spool_id)
    assert entry is not None
    with pytest.raises(SpoolError, match="not JSON"):
        spool.read(entry)
    spool.quarantine(entry, "unreadable")
    assert names(spool.failed) == [f"{spool_id}.1", f"{spool_id}.reason"]


def test_stray_files_are_ignored(spool: Spool) -> None:
    (spool.new / "README").write_text("x")
    (spool.new / ".hidden").write_text("x")
    assert spool.pending() == []
    assert parse_name("README") is None
    assert spool.status().new == 0


def test_unwritable_tmp_is_enotdir_and_leaves_nothing(spool: Spool) -> None:
    spool.tmp.rmdir()
    spool.tmp.write_text("a regular file where the tmp folder should be")
    with pytest.raises(SpoolWriteError) as err:
        spool.put(RAW, ENVELOPE)
    assert err.value.errno == 20  # ENOTDIR
    assert not err.value.disk_full
    assert names(spool.new) == []


@contextlib.contextmanager
def small_file_limit(limit: int = 4096) -> Iterator[int]:
    """RLIMIT_FSIZE for this process: writes past it fail with EFBIG (a real write fault).

    Held only around the write under test: pytest's own output may go to a file (CI), and
    its writes must not meet the limit.
    """
    soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
    old_handler = signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    resource.setrlimit(resource.RLIMIT_FSIZE, (limit, hard))
    try:
        yield limit
    finally:
        resource.setrlimit(resource.RLIMIT_FSIZE, (soft, hard))
        signal.signal(signal.SIGXFSZ, old_handler)


def test_write_failure_midway_removes_the_partial_file(spool: Spool) -> None:
    big = b"X" * (4096 * 4)
    with pytest.raises(SpoolWriteError) as err, small_file_limit():
        spool.put(big, ENVELOPE)
    assert err.value.errno == 27  # EFBIG
    assert names(spool.tmp) == []
    assert names(spool.new) == []
    with small_file_limit():
        assert spool.put(b"small\r\n", ENVELOPE)  # the spool still works afterwards


def test_concurrent_puts_share_dir_fsyncs_and_all_land(spool: Spool) -> None:
    ids: list[str] = []
    lock = threading.Lock()

    def put_many() -> None:
        for _ in range(25):
            spool_id = spool.put(RAW, ENVELOPE)
            with lock:
                ids.append(spool_id)

    threads = [threading.Thread(target=put_many) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(set(ids)) == 200
    assert spool.pending() == sorted(ids)


def test_group_commit_writers_waiting_share_the_next_fsync(tmp_path: Path) -> None:
    """Three writers, one fsync in flight: the two that arrive meanwhile share one more."""
    started = threading.Event()
    release = threading.Event()
    calls: list[int] = []

    def slow_fsync(path: Path) -> None:
        calls.append(len(calls))
        if len(calls) == 1:
            started.set()
            assert release.wait(30)
        fd = os.open(path, os.O_RDONLY)
        os.fsync(fd)
        os.close(fd)

    sync = DirSync(tmp_path, fsync=slow_fsync)
    first = threading.Thread(target=sync.sync)
    first.start()
    assert started.wait(30)
    late = [threading.Thread(target=sync.sync) for _ in range(2)]
    for t in late:
        t.start()
    with sync._cond:  # wait (lock released) until both late writers hold a ticket
        while sync._requested < 3:
            sync._cond.wait(0.01)
    release.set()
    for t in [first, *late]:
        t.join(30)
    assert len(calls) == 2
    assert sync._done == 3


def test_sequential_writers_each_get_their_own_fsync(tmp_path: Path) -> None:
    sync = DirSync(tmp_path)
    sync.sync()
    sync.sync()
    assert sync.fsyncs == 2


def test_lock_is_exclusive(spool: Spool) -> None:
    # flock locks are per open file description: a second open conflicts
    with (
        spool.lock(".daemon.lock", wait=False),
        pytest.raises(SpoolError, match="in use"),
        spool.lock(".daemon.lock", wait=False),
    ):
        pass


def test_store_down_marker_in_status(spool: Spool) -> None:
    since = datetime(2026, 11, 25, 11, 0, tzinfo=UTC)
    spool.mark_store_down(since, "OperationalError: connection refused")
    status = spool.status()
    assert status.store_down_since == since
    assert "connection refused" in status.store_down_error
    spool.clear_store_down()
    assert spool.status().store_down_since is None


def test_spool_cli_status_and_retry(tmp_path: Path) -> None:
    """`stopitd spool status|retry`, run as an admin runs them."""
    import json
    import subprocess
    import sys

    stopitd = str(Path(sys.executable).parent / "stopitd")
    cfg = tmp_path / "stopitd.toml"
    cfg.write_text('[spool]\npath = "spool"\n')
    spool = Spool(tmp_path / "spool")
    spool.create()
    waiting = spool.put(RAW, ENVELOPE)
    stuck = spool.put(RAW, ENVELOPE)
    entry = spool.claim(stuck)
    assert entry is not None
    spool.fail_attempt(entry, "saving failed: ValueError: a bug\n\ntraceback...", 1)

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        env = {**os.environ, "COLUMNS": "200"}
        return subprocess.run(
            [stopitd, "--config", str(cfg), "spool", *args],
            capture_output=True,
            text=True,
            check=False,
            env=env,
        )

    shown = run("status", "--json")
    assert shown.returncode == 0, shown.stderr
    data = json.loads(shown.stdout)
    assert (data["new"], data["cur"], data["failed"]) == (1, 0, 1)
    assert data["failed_entries"] == [
        {"id": stuck, "attempts": 1, "reason": "saving failed: ValueError: a bug"}
    ]
    assert data["oldest_new"] == "2026-11-25T10:00:00Z"
    assert data["store"]["down"] is False

    text = run("status")
    assert text.returncode == 0, text.stderr
    assert "waiting: 1" in text.stdout and "failed: 1" in text.stdout
    assert stuck in text.stdout and "ValueError: a bug" in text.stdout

    unknown = run("retry", "01a21272-0000-7000-8000-000000000000")
    assert unknown.returncode != 0 and "no failed spool entry" in unknown.stderr

    retried = run("retry", stuck)
    assert retried.returncode == 0, retried.stderr
    assert f"requeued {stuck}" in retried.stdout
    assert spool.pending() == sorted([waiting, stuck])
    assert spool.status().failed == 0
