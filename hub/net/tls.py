"""TLS for every listener: a server context from PEM files (TLS 1.2 at least), checked at start, reloaded
on SIGHUP, and one place (`tls_handler`) that wraps each accepted connection in a `trio.SSLStream`."""

from __future__ import annotations

import logging
import ssl
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import trio

log = logging.getLogger("hub.net.tls")

MIN_VERSION = ssl.TLSVersion.TLSv1_2
ALPN = ["http/1.1"]


class TLSFileError(Exception):
    """A certificate or key that cannot be used; `key` is "tls_cert" or "tls_key", str() the problem."""

    def __init__(self, key: str, problem: str) -> None:
        super().__init__(problem)
        self.key = key


def _read(path: str, key: str) -> bytes:
    try:
        return Path(path).read_bytes()
    except FileNotFoundError:
        raise TLSFileError(key, f"file not found: {path}") from None
    except IsADirectoryError:
        raise TLSFileError(key, f"is a directory: {path}") from None
    except OSError as exc:
        raise TLSFileError(key, f"cannot read {path}: {exc.strerror}") from None


def server_context(cert: str, key: str) -> ssl.SSLContext:
    """A server context for the PEM certificate chain `cert` and private key `key`; TLSFileError names the
    file at fault (missing, unreadable, not PEM of that kind, key not matching the certificate)."""
    from cryptography import x509
    from cryptography.hazmat.primitives.serialization import load_pem_private_key

    cert_pem, key_pem = _read(cert, "tls_cert"), _read(key, "tls_key")
    try:
        x509.load_pem_x509_certificates(cert_pem)
    except ValueError:
        raise TLSFileError("tls_cert", f"not a PEM certificate: {cert}") from None
    try:
        load_pem_private_key(key_pem, password=None)
    except (ValueError, TypeError):
        raise TLSFileError("tls_key", f"not an unencrypted PEM private key: {key}") from None
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.minimum_version = MIN_VERSION
    context.set_alpn_protocols(ALPN)
    try:
        context.load_cert_chain(cert, key)
    except ssl.SSLError as exc:
        raise TLSFileError("tls_key", f"does not match the certificate ({exc.reason or exc})") from None
    return context


class ServerTLS:
    """A listener's TLS settings and current context; `reload()` makes new handshakes use the files as they
    are now (connections already open keep theirs)."""

    def __init__(self, cert: str, key: str) -> None:
        self.cert, self.key = cert, key
        self.context = server_context(cert, key)

    def reload(self, cert: str | None = None, key: str | None = None) -> None:
        """Load the files again (or new paths) into the same context, so a server holding it (hypercorn)
        uses them too; checked first: on error the old certificate stays and TLSFileError is raised."""
        cert, key = cert or self.cert, key or self.key
        server_context(cert, key)
        self.context.load_cert_chain(cert, key)
        self.cert, self.key = cert, key


def tls_handler(tls: ServerTLS, handler: Callable[[Any], Awaitable[None]], *, handshake_timeout: float = 10.0,
                on_failure: Callable[[], None] | None = None) -> Callable[[trio.SocketStream], Awaitable[None]]:
    """Wrap a listener's connection handler: each accepted stream gets a TLS handshake (within
    `handshake_timeout`) and the handler gets the `trio.SSLStream`. A failed handshake closes the connection."""

    async def handle(stream: trio.SocketStream) -> None:
        ssl_stream = trio.SSLStream(stream, tls.context, server_side=True, https_compatible=True)
        ok = False
        with trio.move_on_after(handshake_timeout):
            try:
                await ssl_stream.do_handshake()
                ok = True
            except (trio.BrokenResourceError, trio.ClosedResourceError) as exc:
                log.debug("TLS handshake failed: %s", exc.__cause__ or exc)
        if not ok:
            if on_failure is not None:
                on_failure()
            with trio.CancelScope(shield=True), trio.move_on_after(1):
                await stream.aclose()
            return
        await handler(ssl_stream)

    return handle


def socket_of(stream: Any) -> Any:
    """The socket under a stream (through TLS and wrappers), or None."""
    for _ in range(4):
        sock = getattr(stream, "socket", None)
        if sock is not None:
            return sock
        stream = getattr(stream, "transport_stream", None) or getattr(stream, "_stream", None)
        if stream is None:
            return None
    return None


def raw_fd(stream: Any) -> int | None:
    """The descriptor to write to directly (the fast path), or None when bytes must go through the stream
    (TLS): only plain socket streams and wrappers that say they are plain (a `socket` attribute) qualify."""
    sock = getattr(stream, "socket", None)
    return sock.fileno() if sock is not None else None


def read_fd(stream: Any) -> int | None:
    """The descriptor to read from directly, or None: only a plain trio socket stream qualifies (a wrapper
    may hold bytes it has read already, TLS has records)."""
    return stream.socket.fileno() if type(stream) is trio.SocketStream else None


def peer_host(stream: Any) -> str:
    """The client's IP address ("" if unknown)."""
    sock = socket_of(stream)
    try:
        return str(sock.getpeername()[0])
    except (OSError, AttributeError, IndexError, TypeError):
        return ""
