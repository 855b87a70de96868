"""Blocking clients for the side-by-side checks: raw websocket frames, HTTP requests, SockJS over XHR.

Everything here reports what came over the wire as it came (text frames, close payloads, status
lines, content types), so the same traffic can be compared between two servers byte for byte.
Standard library only (Python 3.8+), so the checks can run from any environment next to either server.
"""

from __future__ import annotations

import base64
import http.client
import os
import socket
import struct
import time
from typing import Any
from urllib.parse import urlsplit

from ..rawws import mask_frame as client_frame
from ..rawws import parse_frame

TEXT, BINARY, CLOSE, PING, PONG = 0x1, 0x2, 0x8, 0x9, 0xA


class WS:
    """A websocket client that shows every server frame: ("text", str), ("close", payload bytes),
    ("eof", None) when the socket ends without a close frame, ("timeout", None)."""

    def __init__(self, base: str, path: str = "/connection/websocket", headers: dict[str, str] | None = None,
                 timeout: float = 5.0) -> None:
        u = urlsplit(base)
        self.sock = socket.create_connection((u.hostname, u.port), timeout=timeout)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        key = base64.b64encode(os.urandom(16)).decode()
        lines = [f"GET {path} HTTP/1.1", f"Host: {u.hostname}:{u.port}", "Upgrade: websocket", "Connection: Upgrade",
                 f"Sec-WebSocket-Key: {key}", "Sec-WebSocket-Version: 13"]
        lines += [f"{k}: {v}" for k, v in (headers or {}).items()]
        self.sock.sendall(("\r\n".join(lines) + "\r\n\r\n").encode())
        buf = b""
        while b"\r\n\r\n" not in buf:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise ConnectionError(f"closed during handshake: {buf!r}")
            buf += chunk
        head, self.buf = buf.split(b"\r\n\r\n", 1)
        lines = head.decode("latin-1").split("\r\n")
        self.status = lines[0].split(" ", 2)[1]
        self.headers = {k.strip().lower(): v.strip() for k, _, v in (line.partition(":") for line in lines[1:])}
        if self.status != "101":
            raise ConnectionError(lines[0])
        self.ended = False

    def send(self, text: str | bytes, opcode: int = TEXT) -> None:
        self.sock.sendall(client_frame(opcode, text.encode() if isinstance(text, str) else text))

    def _fill(self, deadline: float) -> bool:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            return False
        self.sock.settimeout(remaining)
        try:
            chunk = self.sock.recv(65536)
        except TimeoutError:
            return False
        except OSError:
            chunk = b""
        if not chunk:
            raise EOFError
        self.buf += chunk
        return True

    def recv(self, timeout: float = 3.0) -> tuple[str, Any]:
        """The next frame as (kind, value); pings are answered and skipped."""
        if self.ended:
            return ("eof", None)
        deadline = time.monotonic() + timeout
        try:
            while True:
                frame = self._parse()
                if frame is None:
                    if not self._fill(deadline):
                        return ("timeout", None)
                    continue
                opcode, payload = frame
                if opcode == PING:
                    self.send(payload, PONG)
                    continue
                if opcode == TEXT:
                    return ("text", payload.decode("utf-8"))
                if opcode == CLOSE:
                    self.ended = True
                    try:
                        self.sock.sendall(client_frame(CLOSE, payload[:2]))
                    except OSError:
                        pass
                    return ("close", payload)
                return ("binary", payload)
        except EOFError:
            self.ended = True
            return ("eof", None)

    def _parse(self) -> tuple[int, bytes] | None:
        parsed = parse_frame(self.buf)
        if parsed is None:
            return None
        opcode, payload, used = parsed
        self.buf = self.buf[used:]
        return opcode, payload

    def texts(self, quiet: float = 0.3, limit: float = 5.0) -> list[Any]:
        """Every frame until nothing arrives for `quiet` seconds (or the connection ends)."""
        out: list[Any] = []
        end = time.monotonic() + limit
        while time.monotonic() < end:
            kind, value = self.recv(quiet)
            if kind == "timeout":
                break
            out.append(value if kind == "text" else describe(kind, value))
            if kind in ("close", "eof"):
                break
        return out

    def until_reply(self, timeout: float = 3.0) -> list[Any]:
        """Frames up to and including the next reply array (a text frame starting with `[` or SockJS `a["[`)."""
        out: list[Any] = []
        end = time.monotonic() + timeout
        while True:
            kind, value = self.recv(max(end - time.monotonic(), 0.01))
            if kind != "text":
                out.append(describe(kind, value))
                return out
            out.append(value)
            if value.startswith("[") or value.startswith('a["['):
                return out

    def close(self) -> None:
        try:
            if not self.ended:
                self.sock.sendall(client_frame(CLOSE, struct.pack("!H", 1000)))
        except OSError:
            pass
        self.sock.close()


def describe(kind: str, value: Any) -> str:
    """A non-text event as one comparable string."""
    if kind == "close":
        if not value:
            return "<close: no status>"
        code = struct.unpack("!H", value[:2])[0]
        return f"<close: {code} {value[2:].decode('utf-8', 'replace')!r}>"
    return f"<{kind}>"


class HTTP:
    """One request per connection; the answer as (status, content type, body text, headers)."""

    def __init__(self, base: str) -> None:
        u = urlsplit(base)
        self.host, self.port = u.hostname, u.port

    def request(self, method: str, path: str, body: bytes | str | None = None,
                headers: dict[str, str] | None = None, timeout: float = 5.0) -> tuple[int, str, str, dict[str, str]]:
        conn = http.client.HTTPConnection(self.host, self.port, timeout=timeout)
        try:
            conn.request(method, path, body=body.encode() if isinstance(body, str) else body, headers=headers or {})
            resp = conn.getresponse()
            data = resp.read()
            hdrs = {k.lower(): v for k, v in resp.getheaders()}
            return resp.status, hdrs.get("content-type", ""), data.decode("utf-8", "replace"), hdrs
        except (ConnectionError, http.client.RemoteDisconnected) as exc:
            return 0, "", f"<no answer: {type(exc).__name__}>", {}
        finally:
            conn.close()

    def stream(self, path: str, until: int, timeout: float = 3.0, headers: dict[str, str] | None = None) -> tuple[int, str, bytes]:
        """POST and read the body as it arrives until `until` bytes (or the end, or `timeout`)."""
        conn = http.client.HTTPConnection(self.host, self.port, timeout=timeout)
        try:
            conn.request("POST", path, body=b"", headers=headers or {})
            resp = conn.getresponse()
            data = b""
            end = time.monotonic() + timeout
            while len(data) < until and time.monotonic() < end:
                try:
                    chunk = resp.read1(65536)
                except TimeoutError:
                    break
                if not chunk:
                    break
                data += chunk
            return resp.status, resp.getheader("content-type", ""), data
        finally:
            conn.close()
