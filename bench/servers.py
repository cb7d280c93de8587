"""Start and stop the servers under test: the two floors and the real `stopitd serve`."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from bench.common import ROOT, BenchError, free_port, stopitd_command, wait_for_banner

START_TIMEOUT = 60.0
STOP_TIMEOUT = 60.0
MAX_SERVER_SECONDS = 1800  # a floor stops by itself after this, whatever happens here


@dataclass
class Server:
    name: str
    port: int
    proc: subprocess.Popen[bytes]
    workdir: Path
    spool: Path | None = None  # the folder with new/ (floors: durable only)
    db_path: Path | None = None  # stopitd's SQLite store

    @property
    def pid(self) -> int:
        return self.proc.pid

    def alive(self) -> bool:
        return self.proc.poll() is None

    def log_tail(self, lines: int = 20) -> str:
        log = self.workdir / f"{self.name}.log"
        try:
            return "\n".join(log.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""

    def stop(self) -> int | None:
        """SIGTERM (stopitd drains on the first signal), SIGKILL if it hangs."""
        if self.alive():
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        return self.proc.returncode

    def backlog(self) -> int:
        """Messages spooled but not finished: entries in new/ and cur/."""
        if self.spool is None:
            return 0
        return sum(_entries(self.spool / d) for d in ("new", "cur"))

    def spooled(self) -> int:
        return _entries(self.spool / "new") if self.spool is not None else 0

    def reports(self) -> int:
        """Rows in stopitd's reports table (every accepted message becomes exactly one)."""
        if self.db_path is None or not self.db_path.exists():
            return 0
        conn = sqlite3.connect(f"file:{self.db_path}?mode=ro", uri=True, timeout=30)
        try:
            return int(conn.execute("SELECT count(*) FROM reports").fetchone()[0])
        except sqlite3.OperationalError:
            return 0
        finally:
            conn.close()

    def failed(self) -> int:
        if self.spool is None:
            return 0
        folder = self.spool / "failed"
        if not folder.is_dir():
            return 0
        return sum(1 for e in os.scandir(folder) if not e.name.endswith(".reason"))


def _entries(folder: Path) -> int:
    try:
        return sum(1 for e in os.scandir(folder) if not e.name.startswith("."))
    except FileNotFoundError:
        return 0


def _spawn(
    name: str, argv: list[str], workdir: Path, cwd: Path | None = None
) -> subprocess.Popen[bytes]:
    log = (workdir / f"{name}.log").open("wb")
    try:
        return subprocess.Popen(
            argv,
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            cwd=cwd or workdir,
        )
    finally:
        log.close()


def _started(server: Server) -> Server:
    try:
        wait_for_banner(server.port, START_TIMEOUT, alive=server.alive)
    except BenchError as e:
        server.stop()
        raise BenchError(f"{server.name}: {e}\n{server.log_tail()}") from None
    return server


def start_floor(mode: str, workdir: Path) -> Server:
    """``bare`` or ``durable`` (see bench.floors), in its own process."""
    workdir.mkdir(parents=True, exist_ok=True)
    port = free_port()
    argv = [sys.executable, "-m", "bench.floors", mode, "--port", str(port)]
    argv += ["--max-seconds", str(MAX_SERVER_SECONDS)]
    spool = None
    if mode == "durable":
        spool = workdir / "spool"
        argv += ["--spool", str(spool)]
    proc = _spawn(f"floor-{mode}", argv, workdir, cwd=ROOT)  # ROOT: `bench` importable
    return _started(Server(f"floor-{mode}", port, proc, workdir, spool=spool))


def serve_available() -> bool:
    """Whether this stopitd has the `serve` command yet (the runtime work may not be merged)."""
    probe = subprocess.run(
        [*stopitd_command(), "serve", "--help"], capture_output=True, text=True, timeout=120
    )
    return probe.returncode == 0


def stopitd_config(workdir: Path, port: int, max_message_size: int) -> Path:
    config = workdir / "stopitd.toml"
    config.write_text(
        "# written by bench/servers.py\n"
        "[smtp]\n"
        f'listen = "127.0.0.1:{port}"\n'
        'report_addresses = ["stopit@localhost"]\n'
        f"max_message_size = {max_message_size}\n"
        'hostname = "bench.localhost"\n'
        # every load comes from 127.0.0.1: the per-address cap (10) would refuse the
        # 50-session burst with 421, as it would for a real MTA
        "max_connections_per_ip = 200\n"
        "[spool]\n"
        'path = "spool"\n'
        "[database]\n"
        'url = "sqlite:///stopitd.db"\n'
        "[log]\n"
        'format = "json"\n'
        'level = "warning"\n'
        "[dns]\n"
        "enabled = false\n"
    )
    return config


def start_stopitd(workdir: Path, *, max_message_size: int = 26214400) -> Server:
    """`stopitd serve` (SMTP, spool, worker) on a freshly migrated SQLite store, DNS off."""
    workdir.mkdir(parents=True, exist_ok=True)
    port = free_port()
    config = stopitd_config(workdir, port, max_message_size)
    cmd = [*stopitd_command(), "--config", str(config)]
    upgrade = subprocess.run(
        [*cmd, "db", "upgrade"], capture_output=True, text=True, timeout=300, cwd=workdir
    )
    if upgrade.returncode != 0:
        raise BenchError(f"stopitd db upgrade failed:\n{upgrade.stdout}{upgrade.stderr}")
    proc = _spawn("stopitd", [*cmd, "serve"], workdir)
    server = Server(
        "stopitd", port, proc, workdir, spool=workdir / "spool", db_path=workdir / "stopitd.db"
    )
    return _started(server)
