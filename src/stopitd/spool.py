"""The durable queue: a maildir-like folder (``tmp/ new/ cur/ failed/``) that *is* the queue.

One entry is one file: a versioned JSON envelope line, then the raw message bytes verbatim.
``put`` writes ``tmp/ID``, fsyncs it, renames it into ``new/`` and fsyncs ``new/`` before it
returns the id, so the id is only ever acknowledged (SMTP 250) for bytes that are durable.

The worker claims an entry by renaming it ``new/ -> cur/`` and ``finish``es it by unlinking.
The number of failed attempts lives in the file name (``ID`` for none, ``ID.N`` after N), so
no side database and no pickle is needed: ``recover`` (at worker start) moves every
``cur/`` leftover back to ``new/`` with one more attempt, and an entry that reached
``max_attempts`` goes to ``failed/`` beside an ``ID.reason`` text file.

Ids are UUIDv7 text: globally unique (several nodes may share one store) and time-ordered,
so sorting file names is arrival order.
"""

from __future__ import annotations

import contextlib
import errno as errno_codes
import fcntl
import json
import os
import secrets
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from stopitd.analysis.model import Envelope
from stopitd.errors import SpoolError

ENVELOPE_VERSION = 1
_ENVELOPE_READ = 65536  # an envelope line is far shorter (it holds a few addresses)
SUBDIRS = ("tmp", "new", "cur", "failed")
REASON_SUFFIX = ".reason"
STORE_DOWN_MARKER = ".store-down"
DAEMON_LOCK = ".daemon.lock"
WORKER_LOCK = ".worker.lock"


class SpoolWriteError(SpoolError):
    """``put`` failed; nothing of the message is left behind. ``errno`` says why."""

    def __init__(self, message: str, errno: int | None) -> None:
        super().__init__(message)
        self.errno = errno

    @property
    def disk_full(self) -> bool:
        return self.errno in (errno_codes.ENOSPC, errno_codes.EDQUOT)


# --- ids ---------------------------------------------------------------------------------

_id_lock = threading.Lock()
_last_ms = 0
_last_seq = 0


def new_id() -> str:
    """A UUIDv7 (RFC 9562) as text: 48-bit Unix ms, a 12-bit counter within the ms, random.

    The counter (rand_a used as a monotonic sequence, RFC 9562 §6.2 method 1) keeps ids
    from one process strictly increasing even within one millisecond.
    """
    global _last_ms, _last_seq
    with _id_lock:
        ms = time.time_ns() // 1_000_000
        if ms > _last_ms:
            _last_ms, _last_seq = ms, secrets.randbits(8)  # leave room to count up
        else:
            _last_seq += 1
            if _last_seq > 0xFFF:  # 4096 ids in one ms: borrow the next ms
                _last_ms, _last_seq = _last_ms + 1, 0
        ms, seq = _last_ms, _last_seq
    value = (ms & 0xFFFF_FFFF_FFFF) << 80
    value |= 0x7 << 76
    value |= seq << 64
    value |= 0b10 << 62
    value |= secrets.randbits(62)
    h = f"{value:032x}"
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


def _valid_id(text: str) -> bool:
    parts = text.split("-")
    if [len(p) for p in parts] != [8, 4, 4, 4, 12]:
        return False
    return all(c in "0123456789abcdef" for c in text.replace("-", ""))


# --- entries -------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Entry:
    """A claimed spool entry (its file sits in ``cur/``)."""

    id: str
    attempts: int  # failed attempts before this one
    path: Path


@dataclass(frozen=True, slots=True)
class FailedEntry:
    id: str
    attempts: int
    reason: str


@dataclass(frozen=True, slots=True)
class SpoolStatus:
    new: int
    cur: int
    failed: int
    tmp: int
    oldest_new: datetime | None  # arrival time of the oldest waiting entry
    store_down_since: datetime | None  # set by the worker while the case store is down
    store_down_error: str
    failed_entries: tuple[FailedEntry, ...]


@dataclass(frozen=True, slots=True)
class Recovered:
    requeued: int
    failed: int


def entry_name(spool_id: str, attempts: int) -> str:
    return spool_id if attempts == 0 else f"{spool_id}.{attempts}"


def parse_name(name: str) -> tuple[str, int] | None:
    """``ID`` or ``ID.N`` -> (id, N); anything else (reason files, strays) -> None."""
    spool_id, _, suffix = name.partition(".")
    if not _valid_id(spool_id):
        return None
    if not suffix:
        return spool_id, 0
    if suffix.isdigit():
        return spool_id, int(suffix)
    return None


def _iso(value: datetime) -> str:
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def encode_envelope(envelope: Envelope, spool_id: str) -> bytes:
    received = envelope.received_at or datetime.now(UTC)
    data = {
        "v": ENVELOPE_VERSION,
        "id": spool_id,
        "mail_from": envelope.mail_from,
        "rcpt_tos": list(envelope.rcpt_tos),
        "peer": envelope.peer,
        "helo": envelope.helo,
        "received_at": _iso(received),
    }
    # ensure_ascii: the line never contains a raw newline or undecodable byte
    return json.dumps(data, separators=(",", ":"), ensure_ascii=True).encode("ascii") + b"\n"


def decode_entry(data: bytes) -> tuple[Envelope, bytes]:
    """Split a spool file into its envelope and the raw message; SpoolError if malformed."""
    line, sep, raw = data.partition(b"\n")
    if not sep:
        raise SpoolError("spool entry has no envelope line")
    try:
        head: Any = json.loads(line)
    except ValueError as e:
        raise SpoolError(f"spool entry envelope is not JSON: {e}") from None
    if not isinstance(head, dict) or head.get("v") != ENVELOPE_VERSION:
        raise SpoolError(f"spool entry envelope has unsupported version {head!r:.60}")
    try:
        received = datetime.fromisoformat(str(head["received_at"]).replace("Z", "+00:00"))
        envelope = Envelope(
            mail_from=str(head["mail_from"]),
            rcpt_tos=tuple(str(r) for r in head["rcpt_tos"]),
            peer=str(head["peer"]),
            helo=str(head["helo"]),
            received_at=received,
        )
    except (KeyError, TypeError, ValueError) as e:
        raise SpoolError(f"spool entry envelope is incomplete: {e!r}") from None
    return envelope, raw


# --- durability of directory entries ------------------------------------------------------------


class DirSync:
    """fsync of one directory, shared by concurrent writers (group commit).

    A writer calls ``sync()`` after its rename. If an fsync that *started after* that
    rename completes, the rename is durable and the writer need not fsync again; so while
    one fsync runs, every writer that renamed meanwhile waits for the next one, and a
    burst of N messages costs about two directory fsyncs instead of N.
    """

    def __init__(self, path: Path, fsync: Callable[[Path], None] | None = None) -> None:
        self._path = path
        self._fsync = fsync or _fsync_dir
        self.fsyncs = 0  # how many directory fsyncs ran (for tests and benchmarks)
        self._cond = threading.Condition()
        self._requested = 0  # tickets handed out (one per rename)
        self._done = 0  # every ticket <= this is durable
        self._running = False

    def sync(self) -> None:
        with self._cond:
            self._requested += 1
            ticket = self._requested
            while self._running and self._done < ticket:
                self._cond.wait()
            if self._done >= ticket:
                return
            self._running = True
            target = self._requested  # all these renames happened before our fsync starts
        ok = False
        try:
            self._fsync(self._path)
            ok = True
        finally:
            with self._cond:
                self._running = False
                self.fsyncs += 1
                if ok:
                    self._done = max(self._done, target)
                self._cond.notify_all()


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class SpoolWriter:
    """One entry being written to ``tmp/``: ``write`` bytes as they arrive, then ``commit``
    (fsync, rename into ``new/``, fsync ``new/``) or ``abort``. Any failure removes the file
    and raises SpoolWriteError, so nothing half-written is ever left or acknowledged.

    ``write`` is meant for the event loop (page-cache writes); ``commit`` blocks on fsync
    and belongs in a thread.
    """

    def __init__(self, spool: Spool, spool_id: str, fd: int, tmp_path: Path) -> None:
        self.id = spool_id
        self.size = 0  # message bytes written so far
        self._spool = spool
        self._fd: int | None = fd
        self._tmp_path = tmp_path

    @property
    def open(self) -> bool:
        return self._fd is not None

    def write(self, data: bytes) -> None:
        if self._fd is None:
            raise SpoolWriteError("cannot spool message (write): entry already closed", None)
        try:
            _write_all(self._fd, data)
        except OSError as e:
            self.abort()
            raise SpoolWriteError(
                f"cannot spool message (write): {e.strerror or e}", e.errno
            ) from None
        self.size += len(data)

    def commit(self) -> str:
        """Make the entry durable and return its id (only then may SMTP say 250)."""
        fd = self._fd
        if fd is None:
            raise SpoolWriteError("cannot spool message (commit): entry already closed", None)
        self._fd = None
        try:
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
        except OSError as e:
            with contextlib.suppress(OSError):
                os.unlink(self._tmp_path)
            raise SpoolWriteError(
                f"cannot spool message (fsync): {e.strerror or e}", e.errno
            ) from None
        self._spool._committed(self.id, self._tmp_path)
        return self.id

    def abort(self) -> None:
        """Drop the entry: close and remove the ``tmp/`` file (idempotent)."""
        fd, self._fd = self._fd, None
        if fd is not None:
            with contextlib.suppress(OSError):
                os.close(fd)
            with contextlib.suppress(OSError):
                os.unlink(self._tmp_path)


class Spool:
    def __init__(self, root: Path) -> None:
        self.root = root
        self.tmp = root / "tmp"
        self.new = root / "new"
        self.cur = root / "cur"
        self.failed = root / "failed"
        self._new_sync = DirSync(self.new)
        self.puts = 0  # messages made durable by this object (for the shutdown summary)

    # --- setup ---------------------------------------------------------------------------

    def create(self) -> None:
        """Make the folders (0700) if they are missing."""
        try:
            self.root.mkdir(mode=0o700, parents=True, exist_ok=True)
            for sub in SUBDIRS:
                (self.root / sub).mkdir(mode=0o700, exist_ok=True)
        except OSError as e:
            raise SpoolError(f"cannot create spool folder {e.filename}: {e.strerror}") from None

    @contextlib.contextmanager
    def lock(self, name: str, *, wait: bool) -> Iterator[None]:
        """An flock on ``root/name``, held for the block (released by the kernel on death)."""
        fd = os.open(self.root / name, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | (0 if wait else fcntl.LOCK_NB))
            except BlockingIOError:
                raise SpoolError(
                    f"spool {self.root} is in use by another stopitd process ({name})"
                ) from None
            yield
        finally:
            os.close(fd)

    # --- intake ----------------------------------------------------------------------------

    def put(self, raw: bytes, envelope: Envelope) -> str:
        """Write one message durably and return its id; SpoolError (nothing left) on failure."""
        writer = self.begin(envelope)
        writer.write(raw)
        return writer.commit()

    def begin(self, envelope: Envelope) -> SpoolWriter:
        """Start an entry in ``tmp/`` (envelope line written); the message bytes follow.

        SMTP intake streams DATA through this as it arrives, so a message is never held
        whole in memory. SpoolWriteError (nothing left behind) if the file cannot be made.
        """
        spool_id = new_id()
        tmp_path = self.tmp / spool_id
        try:
            fd = os.open(tmp_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
        except OSError as e:
            raise SpoolWriteError(
                f"cannot spool message (open): {e.strerror or e}", e.errno
            ) from None
        writer = SpoolWriter(self, spool_id, fd, tmp_path)
        writer.write(encode_envelope(envelope, spool_id))
        writer.size = 0  # message bytes only
        return writer

    def _committed(self, spool_id: str, tmp_path: Path) -> None:
        """Rename a written, fsynced ``tmp/`` file into ``new/`` and make the rename durable."""
        new_path = self.new / spool_id
        stage = "rename"
        try:
            os.rename(tmp_path, new_path)
            stage = "sync"
            self._new_sync.sync()
        except OSError as e:
            with contextlib.suppress(OSError):
                os.unlink(tmp_path)
            if stage == "sync":  # not durable: withdraw it (the client gets 4xx and retries)
                with contextlib.suppress(OSError):
                    os.unlink(new_path)
            raise SpoolWriteError(
                f"cannot spool message ({stage}): {e.strerror or e}", e.errno
            ) from None
        self.puts += 1  # under the GIL; only a statistic

    @property
    def dir_fsyncs(self) -> int:
        """Directory fsyncs so far: fewer than ``puts`` when group commit shared them."""
        return self._new_sync.fsyncs

    # --- worker side -------------------------------------------------------------------

    def pending(self) -> list[str]:
        """Names in ``new/``, oldest first (one directory listing; the worker streams it)."""
        try:
            names = os.listdir(self.new)
        except OSError as e:
            raise SpoolError(f"cannot list {self.new}: {e.strerror}") from None
        return sorted(n for n in names if parse_name(n) is not None)

    def claim(self, name: str) -> Entry | None:
        """Move ``new/name`` to ``cur/``; None when it is gone (claimed or retried away)."""
        parsed = parse_name(name)
        if parsed is None:
            return None
        try:
            os.rename(self.new / name, self.cur / name)
        except FileNotFoundError:
            return None
        except OSError as e:
            raise SpoolError(f"cannot claim {name}: {e.strerror}") from None
        return Entry(id=parsed[0], attempts=parsed[1], path=self.cur / name)

    def read(self, entry: Entry) -> tuple[Envelope, bytes]:
        """The envelope and the raw message. The message is read straight into one
        ``bytes``: read whole and then split, a max-size report was briefly held twice."""
        try:
            with open(entry.path, "rb", buffering=0) as fh:
                head = fh.read(_ENVELOPE_READ)
                end = head.find(b"\n")
                if end < 0:  # no line end in the first read: split it the simple way
                    return decode_entry(head + fh.readall())
                fh.seek(end + 1)
                raw = fh.readall()
        except OSError as e:
            raise SpoolError(f"cannot read {entry.path}: {e.strerror}") from None
        envelope, _ = decode_entry(head[: end + 1])
        return envelope, raw

    def finish(self, entry: Entry) -> None:
        """The entry is saved: remove it (a crash before this only repeats an idempotent save)."""
        with contextlib.suppress(FileNotFoundError):
            os.unlink(entry.path)

    def release(self, entry: Entry) -> None:
        """Put a claimed entry back unchanged (the store is down: not the entry's fault)."""
        os.rename(entry.path, self.new / entry.path.name)

    def fail_attempt(self, entry: Entry, reason: str, max_attempts: int) -> bool:
        """Count one failed attempt; True when it reached the cap and went to ``failed/``."""
        attempts = entry.attempts + 1
        if attempts >= max_attempts:
            self._to_failed(entry.path, entry.id, attempts, reason)
            return True
        os.rename(entry.path, self.new / entry_name(entry.id, attempts))
        return False

    def quarantine(self, entry: Entry, reason: str) -> None:
        """Straight to ``failed/`` (the entry itself is unreadable: retrying cannot help)."""
        self._to_failed(entry.path, entry.id, entry.attempts + 1, reason)

    def _to_failed(self, path: Path, spool_id: str, attempts: int, reason: str) -> None:
        reason_path = self.failed / (spool_id + REASON_SUFFIX)
        tmp_reason = self.failed / f".{spool_id}.reason.tmp"
        tmp_reason.write_text(reason.rstrip("\n") + "\n", encoding="utf-8")
        os.rename(tmp_reason, reason_path)
        os.rename(path, self.failed / entry_name(spool_id, attempts))
        _fsync_dir(self.failed)

    def recover(self, max_attempts: int) -> Recovered:
        """At worker start: ``cur/`` leftovers back to ``new/`` (one attempt more), or failed.

        Call only while no worker is running (hold the worker lock).
        """
        requeued = failed = 0
        for name in sorted(os.listdir(self.cur)):
            parsed = parse_name(name)
            if parsed is None:
                continue
            spool_id, attempts = parsed
            entry = Entry(spool_id, attempts, self.cur / name)
            reason = (
                f"interrupted {attempts + 1} times: the worker stopped (crash, kill or power "
                "loss) while processing this entry"
            )
            if self.fail_attempt(entry, reason, max_attempts):
                failed += 1
            else:
                requeued += 1
        if requeued or failed:
            _fsync_dir(self.new)
            _fsync_dir(self.cur)
        return Recovered(requeued=requeued, failed=failed)

    def clean_tmp(self) -> int:
        """Remove ``tmp/`` leftovers (never acknowledged). Only before SMTP intake starts."""
        removed = 0
        for name in os.listdir(self.tmp):
            with contextlib.suppress(FileNotFoundError):
                os.unlink(self.tmp / name)
                removed += 1
        return removed

    # --- store outage marker (for `stopitd spool status`) -----------------------------------

    def mark_store_down(self, since: datetime, error: str) -> None:
        data = json.dumps({"since": _iso(since), "error": error[:500]})
        tmp = self.root / (STORE_DOWN_MARKER + ".tmp")
        tmp.write_text(data, encoding="utf-8")
        os.rename(tmp, self.root / STORE_DOWN_MARKER)

    def clear_store_down(self) -> None:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.root / STORE_DOWN_MARKER)

    # --- admin ---------------------------------------------------------------------------

    def status(self) -> SpoolStatus:
        counts: dict[str, list[str]] = {}
        for sub in SUBDIRS:
            try:
                counts[sub] = os.listdir(self.root / sub)
            except FileNotFoundError:
                counts[sub] = []
            except OSError as e:
                raise SpoolError(f"cannot list {self.root / sub}: {e.strerror}") from None
        waiting = sorted(n for n in counts["new"] if parse_name(n) is not None)
        oldest = None
        if waiting:
            with contextlib.suppress(OSError, ValueError):
                envelope, _ = decode_entry(_read_first_line(self.new / waiting[0]))
                oldest = envelope.received_at
        failed: list[FailedEntry] = []
        for name in sorted(counts["failed"]):
            parsed = parse_name(name)
            if parsed is None:
                continue
            reason_path = self.failed / (parsed[0] + REASON_SUFFIX)
            try:
                reason = reason_path.read_text(encoding="utf-8", errors="replace").strip()
            except OSError:
                reason = "(no reason file)"
            failed.append(FailedEntry(parsed[0], parsed[1], reason))
        down_since, down_error = None, ""
        try:
            marker = json.loads((self.root / STORE_DOWN_MARKER).read_text(encoding="utf-8"))
            down_since = datetime.fromisoformat(marker["since"].replace("Z", "+00:00"))
            down_error = str(marker.get("error", ""))
        except (OSError, ValueError, KeyError, TypeError):
            pass
        return SpoolStatus(
            new=len(waiting),
            cur=sum(1 for n in counts["cur"] if parse_name(n) is not None),
            failed=len(failed),
            tmp=len(counts["tmp"]),
            oldest_new=oldest,
            store_down_since=down_since,
            store_down_error=down_error,
            failed_entries=tuple(failed),
        )

    def retry(self, spool_id: str | None = None) -> list[str]:
        """Move failed entries (all, or one id) back to ``new/`` with a fresh attempt count."""
        moved: list[str] = []
        found = False
        for name in sorted(os.listdir(self.failed)):
            parsed = parse_name(name)
            if parsed is None or (spool_id is not None and parsed[0] != spool_id):
                continue
            found = True
            os.rename(self.failed / name, self.new / parsed[0])
            with contextlib.suppress(FileNotFoundError):
                os.unlink(self.failed / (parsed[0] + REASON_SUFFIX))
            moved.append(parsed[0])
        if spool_id is not None and not found:
            raise SpoolError(f"no failed spool entry {spool_id}")
        if moved:
            _fsync_dir(self.new)
        return moved


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        written = os.write(fd, view)
        if written <= 0:  # pragma: no cover - os.write raises instead
            raise OSError(errno_codes.EIO, "short write")
        view = view[written:]


def _read_first_line(path: Path) -> bytes:
    with path.open("rb") as fh:
        return fh.readline(65536) + b"\n"
