"""The network side of fetching, where safety is enforced: only globally reachable addresses
(unless private ones are allowed), each host resolved once per connection and connected to at
the very address that was checked (DNS rebinding gains nothing), and one deadline over every
connect, read, write and TLS handshake of a fetch (a page sent a byte at a time is cut off).
``rag.ingest.web`` fetches through ``guarded_transport``."""

from __future__ import annotations

import ipaddress
import socket
import threading
import time
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # httpx is imported when something is fetched: `rag ask` never pays for it
    import httpx


class FetchError(Exception):
    """A URL could not be fetched; ``str(exc)`` is the one-line reason, ``status`` the HTTP
    status when the server answered with an error."""

    def __init__(self, reason: str, status: int | None = None) -> None:
        super().__init__(reason)
        self.status = status


def resolve(host: str, port: int) -> list[str]:
    try:
        infos = socket.getaddrinfo(host, port, proto=socket.IPPROTO_TCP)
    except (socket.gaierror, UnicodeError) as exc:
        raise FetchError(f"cannot resolve host {host} ({exc})") from exc
    return list(dict.fromkeys(str(info[4][0]) for info in infos))


# IPv6 forms that carry an IPv4 address in their last 32 bits besides the ones ``ipaddress``
# decodes itself (mapped, 6to4, Teredo): NAT64's well-known prefix and the old IPv4-compatible form.
_LAST_32_BITS_IPV4 = (ipaddress.ip_network("64:ff9b::/96"), ipaddress.ip_network("::/96"))


def is_public(text: str) -> bool:
    """Whether an address may be fetched from by default: global by the IANA special-purpose
    registries (``ipaddress``'s ``is_global``: not loopback, private, link-local, shared
    100.64.0.0/10, documentation, benchmarking, reserved, ...) and not multicast; for an IPv6
    address that carries an IPv4 one (IPv4-mapped, 6to4 2002::/16, Teredo, NAT64 64:ff9b::/96,
    IPv4-compatible), the IPv4 address decides."""
    address = ipaddress.ip_address(text.split("%", 1)[0])  # a scoped IPv6 address names its zone after %
    if not address.is_global or address.is_multicast:
        return False
    if isinstance(address, ipaddress.IPv6Address):
        inner = address.ipv4_mapped or address.sixtofour or (address.teredo[1] if address.teredo else None)
        if inner is None and any(address in network for network in _LAST_32_BITS_IPV4):
            inner = ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
        if inner is not None:
            return is_public(str(inner))
    return True


def refused(host: str, address: str) -> FetchError:
    return FetchError(
        f"{host} is a private or local address ({address}); set allow_private_urls = true to index pages on your "
        "own network"
    )


def first_not_public(addresses: list[str]) -> str | None:
    return next((address for address in addresses if not is_public(address)), None)


class Deadline(threading.local):
    """When the fetch in progress on this thread must end (monotonic seconds), or None."""

    at: float | None = None

    def left(self, timeout: float | None) -> float | None:
        if self.at is None:
            return timeout
        remaining = self.at - time.monotonic()
        if remaining <= 0:
            import httpcore

            raise httpcore.ReadTimeout("the fetch's deadline passed")
        return remaining if timeout is None else min(timeout, remaining)


def guarded_transport(allow_private: bool, deadline: Deadline) -> httpx.BaseTransport:
    """httpx's own transport over a network backend that resolves each host once, refuses a
    non-public address (unless ``allow_private``), connects to the very address it checked, and
    cuts every read, write and handshake at the fetch's deadline."""
    import httpcore
    import httpx

    class Stream(httpcore.NetworkStream):
        def __init__(self, inner: httpcore.NetworkStream) -> None:
            self.inner = inner

        def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
            return self.inner.read(max_bytes, deadline.left(timeout))

        def write(self, buffer: bytes, timeout: float | None = None) -> None:
            self.inner.write(buffer, deadline.left(timeout))

        def close(self) -> None:
            self.inner.close()

        def start_tls(self, ssl_context: Any, server_hostname: str | None = None,
                      timeout: float | None = None) -> httpcore.NetworkStream:  # fmt: skip
            return Stream(self.inner.start_tls(ssl_context, server_hostname, deadline.left(timeout)))

        def get_extra_info(self, info: str) -> Any:
            return self.inner.get_extra_info(info)

    class Backend(httpcore.SyncBackend):
        def connect_tcp(self, host: str, port: int, timeout: float | None = None, local_address: str | None = None,
                        socket_options: Any = None) -> httpcore.NetworkStream:  # fmt: skip
            addresses = resolve(host, port)
            if not allow_private and (private := first_not_public(addresses)):
                raise refused(host, private)
            # The checked address itself, not the name: a second lookup could answer otherwise.
            # TLS still verifies the certificate for the name (httpcore passes it as SNI).
            stream = super().connect_tcp(addresses[0], port, deadline.left(timeout), local_address, socket_options)
            return Stream(stream)

    transport = httpx.HTTPTransport()
    # httpx takes no network backend; its pool is rebuilt the way HTTPTransport builds it, with one.
    transport._pool = httpcore.ConnectionPool(ssl_context=httpx.create_ssl_context(), network_backend=Backend())
    return transport
