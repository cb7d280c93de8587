"""A real DNS server on 127.0.0.1 for the tests (UDP and TCP on one port), zone in a dict.

The zone maps a name to ``{type: [values]}``: TXT values are text (split into 255-byte
strings on the wire, as real zones do with long DKIM keys), A/AAAA addresses, MX
``(preference, exchange)``, PTR names. A name that is absent is NXDOMAIN; a present name
without the type is NODATA. ``silent = True`` makes it swallow every query (a dead
resolver, for timeouts). Answers bigger than the client's UDP size are truncated (TC) so
the client retries over TCP, like a real server.
"""

from __future__ import annotations

import selectors
import socket
import struct
import threading
from collections.abc import Iterable
from typing import Any

from dnslib import AAAA, MX, PTR, QTYPE, RCODE, RR, TXT, A, DNSRecord

Zone = dict[str, dict[str, list[Any]]]


def _key(name: str) -> str:
    return name.lower().rstrip(".")


def split_txt(text: str | bytes) -> list[bytes]:
    data = text.encode() if isinstance(text, str) else text
    return [data[i : i + 255] for i in range(0, len(data), 255)] or [b""]


class DnsTestServer:
    def __init__(self, zone: Zone | None = None) -> None:
        self.zone: Zone = {}
        for name, types in (zone or {}).items():
            for rtype, values in types.items():
                for v in values:
                    self.add(name, rtype, v)
        self.silent = False
        self.queries: list[tuple[str, str]] = []
        self.tcp_queries = 0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._udp: socket.socket | None = None
        self._tcp: socket.socket | None = None
        self.port = 0

    # --- zone ---------------------------------------------------------------------
    def add(self, name: str, rtype: str, value: Any) -> None:
        self.zone.setdefault(_key(name), {}).setdefault(rtype.upper(), []).append(value)

    def remove(self, name: str, rtype: str | None = None) -> None:
        if rtype is None:
            self.zone.pop(_key(name), None)
        else:
            self.zone.get(_key(name), {}).pop(rtype.upper(), None)

    @property
    def nameserver(self) -> str:
        """The "HOST:PORT" for ``[dns] nameservers``."""
        return f"127.0.0.1:{self.port}"

    # --- answering ----------------------------------------------------------------
    def _rdata(self, rtype: str, value: Any) -> Any:
        if rtype == "TXT":
            return TXT(split_txt(value))
        if rtype == "A":
            return A(value)
        if rtype == "AAAA":
            return AAAA(value)
        if rtype == "MX":
            pref, exchange = value
            return MX(exchange, pref)
        if rtype == "PTR":
            return PTR(value)
        raise ValueError(f"unsupported type {rtype}")

    def answer(self, data: bytes) -> DNSRecord:
        request = DNSRecord.parse(data)
        reply = request.reply()
        q = request.q
        name, rtype = _key(str(q.qname)), QTYPE[q.qtype]
        self.queries.append((name, rtype))
        types = self.zone.get(name)
        if types is None:
            reply.header.rcode = RCODE.NXDOMAIN
            return reply
        for value in types.get(rtype, []):
            reply.add_answer(RR(q.qname, q.qtype, rdata=self._rdata(rtype, value), ttl=300))
        return reply

    def _udp_limit(self, request: DNSRecord) -> int:
        for rr in request.ar:
            if rr.rtype == QTYPE.OPT:
                return max(512, int(rr.rclass))
        return 512

    # --- serving ------------------------------------------------------------------
    def start(self) -> DnsTestServer:
        for _ in range(20):
            udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            udp.bind(("127.0.0.1", 0))
            port = udp.getsockname()[1]
            tcp = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            tcp.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                tcp.bind(("127.0.0.1", port))
            except OSError:
                udp.close()
                tcp.close()
                continue
            tcp.listen(16)
            self._udp, self._tcp, self.port = udp, tcp, port
            break
        else:
            raise RuntimeError("could not bind UDP and TCP on one loopback port")
        self._thread = threading.Thread(target=self._serve, name="dns-test-server", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
        for s in (self._udp, self._tcp):
            if s is not None:
                s.close()

    def __enter__(self) -> DnsTestServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _serve(self) -> None:
        assert self._udp is not None and self._tcp is not None
        sel = selectors.DefaultSelector()
        sel.register(self._udp, selectors.EVENT_READ, "udp")
        sel.register(self._tcp, selectors.EVENT_READ, "tcp")
        while not self._stop.is_set():
            for key, _ in sel.select(timeout=0.05):
                try:
                    if key.data == "udp":
                        self._on_udp()
                    else:
                        self._on_tcp()
                except (OSError, ValueError, struct.error):
                    continue  # a broken packet must not stop the server
        sel.close()

    def _on_udp(self) -> None:
        assert self._udp is not None
        data, peer = self._udp.recvfrom(65535)
        if self.silent:
            return
        request = DNSRecord.parse(data)
        reply = self.answer(data)
        packed = reply.pack()
        if len(packed) > self._udp_limit(request):
            reply.rr = []
            reply.header.tc = 1
            packed = reply.pack()
        self._udp.sendto(packed, peer)

    def _on_tcp(self) -> None:
        assert self._tcp is not None
        conn, _ = self._tcp.accept()
        with conn:
            conn.settimeout(2)
            for data in _tcp_messages(conn):
                if self.silent:
                    return
                self.tcp_queries += 1
                packed = self.answer(data).pack()
                conn.sendall(struct.pack("!H", len(packed)) + packed)
                return  # one query per connection, as dnspython asks


def _tcp_messages(conn: socket.socket) -> Iterable[bytes]:
    buf = b""
    while True:
        try:
            chunk = conn.recv(65535)
        except OSError:
            return
        if not chunk:
            return
        buf += chunk
        while len(buf) >= 2:
            (length,) = struct.unpack("!H", buf[:2])
            if len(buf) < 2 + length:
                break
            yield buf[2 : 2 + length]
            buf = buf[2 + length :]
