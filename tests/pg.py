"""A throwaway PostgreSQL server for the tests, from the installed binaries.

Runs as the `postgres` user (initdb refuses root) in a folder under /tmp, on a Unix socket
only (no TCP). `.ci/run` and `make test` install PostgreSQL where it is missing.
"""

from __future__ import annotations

import contextlib
import os
import pwd
import shutil
import subprocess
import tempfile
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import psycopg


def _bindir() -> Path:
    pg_config = shutil.which("pg_config")
    if pg_config:
        out = subprocess.run([pg_config, "--bindir"], capture_output=True, text=True, check=False)
        candidate = Path(out.stdout.strip())
        if (candidate / "initdb").is_file():
            return candidate
    for candidate in sorted(Path("/usr/lib/postgresql").glob("*/bin"), reverse=True):
        if (candidate / "initdb").is_file():
            return candidate
    raise RuntimeError(
        "PostgreSQL server binaries (initdb, pg_ctl) not found: "
        "install them with `apt-get install postgresql` (make test and .ci/run do this)"
    )


def _as_postgres() -> list[str]:
    if os.geteuid() != 0:
        return []
    try:
        pwd.getpwnam("postgres")
    except KeyError:
        raise RuntimeError(
            "running as root needs a `postgres` user for initdb: apt-get install postgresql"
        ) from None
    return ["runuser", "-u", "postgres", "--"]


@dataclass
class PgServer:
    """One server: `start()`, `stop()` (to test a store that is down), `url(db)`."""

    root: Path = field(default_factory=lambda: Path(tempfile.mkdtemp(prefix="stopitd-pg-")))

    def __post_init__(self) -> None:
        self.bindir = _bindir()
        self.data = self.root / "data"
        self.socket_dir = self.root / "sock"
        self.socket_dir.mkdir(parents=True, exist_ok=True)
        if os.geteuid() == 0:
            shutil.chown(self.root, "postgres", "postgres")
            shutil.chown(self.socket_dir, "postgres", "postgres")
        if (self.data / "PG_VERSION").is_file():
            return  # a kept server's folder (the case-store bench's --keep): start it again
        self._run(
            [
                str(self.bindir / "initdb"),
                "-A",
                "trust",
                "-U",
                "postgres",
                "-D",
                str(self.data),
                "--no-sync",
            ]
        )

    def _run(self, argv: list[str]) -> None:
        result = subprocess.run(_as_postgres() + argv, capture_output=True, text=True, check=False)
        if result.returncode != 0:
            raise RuntimeError(f"{' '.join(argv)} failed:\n{result.stdout}\n{result.stderr}")

    def start(self) -> None:
        opts = f"-k {self.socket_dir} -c listen_addresses='' -c fsync=off -c max_connections=200"
        self._run(
            [
                str(self.bindir / "pg_ctl"),
                "-D",
                str(self.data),
                "-o",
                opts,
                "-w",
                "-l",
                str(self.root / "server.log"),
                "start",
            ]
        )

    def stop(self) -> None:
        self._run([str(self.bindir / "pg_ctl"), "-D", str(self.data), "-m", "fast", "-w", "stop"])

    def destroy(self) -> None:
        with contextlib.suppress(RuntimeError):
            self.stop()
        shutil.rmtree(self.root, ignore_errors=True)

    def url(self, database: str = "postgres") -> str:
        return f"postgresql+psycopg://postgres@/{database}?host={self.socket_dir}"

    def admin(self) -> psycopg.Connection[tuple[object, ...]]:
        return psycopg.connect(
            host=str(self.socket_dir), user="postgres", dbname="postgres", autocommit=True
        )

    def create_database(self, template: str | None = None) -> str:
        name = "t_" + uuid.uuid4().hex[:12]
        with self.admin() as conn:
            suffix = f" TEMPLATE {template}" if template else ""
            conn.execute(f"CREATE DATABASE {name}{suffix}")  # type: ignore[arg-type]
        return name
