"""The two floors stopitd's intake is held to, each a server process of its own.

``bare``: aiosmtpd answering 250 as soon as DATA ends (what the SMTP layer alone costs).
``durable``: aiosmtpd writing each message maildir-style (``tmp/``, fsync the file, rename
into ``new/``, fsync ``new/``) and only then answering 250: the least any server that never
loses an acknowledged message has to do. ``durable-group``: the same, with the directory
fsyncs shared between concurrent writers by stopitd's ``spool.DirSync`` (group commit), so
the bench isolates what group commit alone is worth. The write runs in a thread pool (the
same size as stopitd's spool pool), so concurrent sessions overlap their fsyncs as
stopitd's do; without it the floor would serialise every fsync on the event loop and be
easy to beat.

Run as ``python -m bench.floors MODE --port P [--spool DIR]``; prints ``READY`` once bound,
stops on SIGTERM/SIGINT, and by itself after ``--max-seconds``.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import sys
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from aiosmtpd.smtp import SMTP

from stopitd.spool import DirSync

SPOOL_THREADS = 32
MAX_SIZE = 26214400


class BareHandler:
    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        return "250 2.0.0 OK"


class DurableHandler:
    def __init__(self, spool: Path, executor: ThreadPoolExecutor, *, group: bool) -> None:
        self.tmp = spool / "tmp"
        self.new = spool / "new"
        for d in (self.tmp, self.new):
            d.mkdir(parents=True, exist_ok=True)
        self.executor = executor
        self.dir_sync = DirSync(self.new) if group else None

    def put(self, data: bytes) -> str:
        name = uuid.uuid4().hex
        tmp = self.tmp / name
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view) :]
            os.fsync(fd)
        finally:
            os.close(fd)
        os.rename(tmp, self.new / name)
        if self.dir_sync is not None:
            self.dir_sync.sync()
            return name
        dfd = os.open(self.new, os.O_RDONLY | os.O_DIRECTORY)
        try:
            os.fsync(dfd)
        finally:
            os.close(dfd)
        return name

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        loop = asyncio.get_running_loop()
        name = await loop.run_in_executor(self.executor, self.put, envelope.original_content)
        return f"250 2.0.0 queued as {name}"


async def serve(mode: str, port: int, spool: Path | None, max_seconds: float) -> None:
    loop = asyncio.get_running_loop()
    executor = ThreadPoolExecutor(max_workers=SPOOL_THREADS)
    handler: Any
    if mode == "bare":
        handler = BareHandler()
    else:
        if spool is None:
            raise SystemExit("durable needs --spool DIR")
        handler = DurableHandler(spool, executor, group=mode == "durable-group")
    server = await loop.create_server(
        lambda: SMTP(
            handler,
            hostname="floor.localhost",
            decode_data=False,
            data_size_limit=MAX_SIZE,
            ident=f"bench-{mode}",
        ),
        host="127.0.0.1",
        port=port,
        backlog=1024,
    )
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    print("READY", flush=True)
    try:
        await asyncio.wait_for(stop.wait(), timeout=max_seconds)
    except TimeoutError:
        print(f"stopping after {max_seconds:.0f} s", file=sys.stderr)
    server.close()
    await server.wait_closed()
    executor.shutdown(wait=True)


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.floors")
    parser.add_argument("mode", choices=("bare", "durable", "durable-group"))
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--spool", type=Path)
    parser.add_argument("--max-seconds", type=float, default=1800)
    args = parser.parse_args()
    asyncio.run(serve(args.mode, args.port, args.spool, args.max_seconds))


if __name__ == "__main__":
    main()
