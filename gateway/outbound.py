"""Outbound safety: the calls' connections (libcurl), each to an address the Guard checked.

The host is checked by name on every call, its addresses resolved and checked by the Guard
at most RESOLVE_SECONDS before use, and every socket libcurl opens is checked against those
(so DNS rebinding between validation and call, and numeric IPv4 forms like ``2130706433``
or ``0x7f.1``, gain nothing): the host must be an allowed target, and an address that is
not public (private, loopback, link-local with the cloud metadata service, multicast,
reserved, unspecified, and their IPv6 and IPv4-mapped forms) is refused unless the host is
listed by name or pattern, not only by ``*``.
"""

from __future__ import annotations

import functools
import ipaddress
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import certifi
import pycurl

from gateway.config import Settings
from gateway.jobspec import host_allowed

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
Resolver = Callable[[str, int], list[str]]
ANY_HOST = "*"
_NAT64 = ipaddress.ip_network("64:ff9b::/96")


class TargetRefusedError(ValueError):
    """A call the gateway will not make: the message says why and what setting allows it."""


def system_resolver(host: str, port: int) -> list[str]:
    """Return the addresses the system resolves `host` to, in its order of preference."""
    infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return list(dict.fromkeys(str(info[4][0]) for info in infos))


@functools.lru_cache(maxsize=4096)
def normalize_host(host: str) -> str:
    """Return `host` lowercased without brackets or a final dot; any IP in its canonical form.

    IPv4 written as one number, in hex or in octal (``2130706433``, ``0x7f.1``, ``0177.0.0.1``)
    is read the way inet_aton reads it, which is what the resolver would connect to.
    """
    host = host.strip().lower().removeprefix("[").removesuffix("]").rstrip(".")
    address = ip_of(host)
    return str(address) if address is not None else host


@functools.lru_cache(maxsize=4096)
def ip_of(host: str) -> IPAddress | None:
    """Return the address `host` spells, in any form inet_aton accepts, or None for a name."""
    try:
        return ipaddress.ip_address(host.split("%")[0])
    except ValueError:
        pass
    parts = host.split(".")
    if not 1 <= len(parts) <= 4:
        return None
    numbers = [_number(p) for p in parts]
    if any(n is None for n in numbers):
        return None
    values = [n for n in numbers if n is not None]
    *head, last = values
    if any(n > 255 for n in head) or last >= 256 ** (5 - len(values)):
        return None
    value = 0
    for n in head:
        value = value << 8 | n
    return ipaddress.IPv4Address(value << 8 * (5 - len(values)) | last)


def _number(part: str) -> int | None:
    """Return a part of a numeric IPv4 form: decimal, 0x hex or 0-led octal; None otherwise."""
    try:
        if part[:2] in ("0x", "0X"):
            return int(part[2:] or "0", 16)
        if len(part) > 1 and part.startswith("0"):
            return int(part[1:], 8)
        return int(part, 10) if part.isdigit() else None
    except ValueError:
        return None


def address_kind(address: IPAddress) -> str | None:
    """Return what makes `address` not public ("private", "loopback", …), or None if public."""
    if isinstance(address, ipaddress.IPv6Address):
        embedded = address.ipv4_mapped or address.sixtofour
        if embedded is None and address in _NAT64:
            embedded = ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
        if embedded is not None:
            return address_kind(embedded)
    checks = (
        ("unspecified", address.is_unspecified),
        ("loopback", address.is_loopback),
        ("link-local", address.is_link_local),
        ("multicast", address.is_multicast),
        ("private", address.is_private),
        ("reserved", address.is_reserved),
        ("non-public", not address.is_global),
    )
    return next((kind for kind, found in checks if found), None)


@dataclass(frozen=True)
class Guard:
    """Decides whether the gateway may connect to a host, and to which address."""

    targets: tuple[str, ...]
    resolver: Resolver = system_resolver

    def __post_init__(self) -> None:
        normal = dict.fromkeys(_normalize_target(t) for t in self.targets)
        object.__setattr__(self, "targets", tuple(normal))

    def check_host(self, host: str) -> str:
        """Return the normalized host if it is an allowed target; raise TargetRefusedError."""
        name = normalize_host(host)
        if not host_allowed(name, self.targets):
            raise TargetRefusedError(
                f"host {name!r} is not an allowed target ({', '.join(self.targets)}); "
                "add it to GATEWAY_ALLOWED_TARGETS to allow it"
            )
        return name

    def addresses(self, host: str, port: int) -> list[str]:
        """Return the addresses to connect to for host:port, every one of them checked.

        Raises TargetRefusedError if the host, or any address it resolves to, is refused
        (one bad record among good ones is a rebinding attempt, not a reason to pick);
        socket.gaierror if it does not resolve.
        """
        name = self.check_host(host)
        literal = ip_of(name)
        found = [str(literal)] if literal is not None else self.resolver(name, port)
        listed = host_allowed(name, tuple(t for t in self.targets if t != ANY_HOST))
        for text in found:
            kind = address_kind(ipaddress.ip_address(text.split("%")[0]))
            if kind is not None and not listed and text not in self.targets:
                article = "an" if kind[0] in "aeiou" else "a"
                raise TargetRefusedError(
                    f"target {text} is {article} {kind} address; "
                    "add the host to GATEWAY_ALLOWED_TARGETS to allow it"
                )
        return found


def _normalize_target(target: str) -> str:
    target = target.strip().lower()
    return target if target.startswith("*") else normalize_host(target)


IDLE_SECONDS = 60  # a kept-alive connection idle longer than this is not used again
MAX_CONNECTIONS = 8  # kept alive per calling thread, whatever the number of hosts
RESOLVE_SECONDS = 30.0  # a host's checked addresses are resolved and checked again after this


class Pools:
    """The calls' connections, kept alive by libcurl: one handle per calling thread (a thread
    makes one call at a time), each keeping up to MAX_CONNECTIONS connections, none reused
    after IDLE_SECONDS idle or once its server has closed it. Thread-safe.

    With a Guard, a host is checked by name before every call, and its addresses are resolved
    through the Guard (every one checked) at most RESOLVE_SECONDS before they are connected
    to; libcurl is handed exactly those (CURLOPT_RESOLVE), and every socket it opens is
    checked once more against them, so DNS rebinding between check and connect gains nothing.
    """

    def __init__(
        self,
        guard: Guard | None = None,
        *,
        ca_file: str | None = None,
        resolve_seconds: float = RESOLVE_SECONDS,
        idle_seconds: int = IDLE_SECONDS,
        max_connections: int = MAX_CONNECTIONS,
    ) -> None:
        self.guard = guard
        self.ca_file = ca_file or certifi.where()  # certifi's bundle, as requests uses
        self.resolve_seconds = resolve_seconds
        self.idle_seconds = idle_seconds
        self.max_connections = max_connections
        self._local = threading.local()
        self._handles: list[pycurl.Curl] = []
        self._checked: dict[tuple[str, int], tuple[float, tuple[str, ...]]] = {}
        self._lock = threading.Lock()

    def handle(self) -> pycurl.Curl:
        """Return this thread's handle, reset to these settings (its connections kept): no
        proxy (from the environment or elsewhere), HTTP/1.1 only, certificates checked against
        `ca_file`, no signals (libcurl's timeouts in threads)."""
        handle: pycurl.Curl | None = getattr(self._local, "handle", None)
        if handle is None:
            handle = pycurl.Curl()
            with self._lock:
                self._handles.append(handle)
            self._local.handle = handle
        else:
            handle.reset()
        for option, value in (
            (pycurl.PROXY, ""),
            (pycurl.PROTOCOLS, pycurl.PROTO_HTTP | pycurl.PROTO_HTTPS),
            (pycurl.HTTP_VERSION, pycurl.CURL_HTTP_VERSION_1_1),
            (pycurl.NOSIGNAL, 1),
            (pycurl.CAINFO, self.ca_file),
            (pycurl.MAXCONNECTS, self.max_connections),
            (pycurl.MAXAGE_CONN, self.idle_seconds),
        ):
            handle.setopt(option, value)
        return handle

    def addresses(self, host: str, port: int) -> tuple[str, ...] | None:
        """Return the addresses a call to host:port may connect to (None: any, no Guard).
        Raises TargetRefusedError (see Guard.addresses) or socket.gaierror."""
        if self.guard is None:
            return None
        self.guard.check_host(host)  # by name, on every call: a change of settings counts
        key, now = (host, port), time.monotonic()
        with self._lock:
            checked = self._checked.get(key)
        if checked is not None and now - checked[0] < self.resolve_seconds:
            return checked[1]
        found = tuple(self.guard.addresses(host, port))
        with self._lock:
            self._checked[key] = (now, found)
        return found

    def clear(self) -> None:
        """Close every handle and the connections it keeps (at shutdown)."""
        with self._lock:
            handles, self._handles = self._handles, []
            self._local = threading.local()
        for handle in handles:
            try:
                handle.close()
            except pycurl.error:  # a call still going on it: freed once that call lets go of it
                pass


class SocketOpener:
    """A call's CURLOPT_OPENSOCKETFUNCTION: a socket for an address among `addresses` (any, if
    None), CURL_SOCKET_BAD for any other (the call then fails to connect). libcurl keeps a
    duplicate of each socket; `close()` closes ours once the call is over."""

    def __init__(self, addresses: tuple[str, ...] | None) -> None:
        # Compared as addresses, not text: libcurl writes an IPv4-mapped one differently.
        self.allowed = None if addresses is None else {_address(a) for a in addresses}
        self.opened: list[socket.socket] = []

    def __call__(self, purpose: int, address: tuple[int, int, int, tuple[Any, ...]]) -> Any:
        family, kind, protocol, where = address
        if self.allowed is not None and _address(str(where[0])) not in self.allowed:
            return pycurl.SOCKET_BAD
        self.opened.append(socket.socket(family, kind, protocol))
        return self.opened[-1]

    def close(self) -> None:
        for opened in self.opened:
            opened.close()


def _address(text: str) -> IPAddress | str:
    """Return `text` as an address (its scope, as in fe80::1%eth0, left out), or as it is."""
    try:
        return ipaddress.ip_address(text.split("%")[0])
    except ValueError:
        return text


def guarded_pools(guard: Guard, *, ca_file: str | None = None) -> Pools:
    """Return Pools whose connections go only where the Guard allows (`ca_file`: the
    certificates trusted instead of certifi's, in tests).

    The calls never go through a proxy from the environment (the Caller sees to it): a proxy
    would resolve the host where we cannot check it.
    """
    return Pools(guard, ca_file=ca_file)


def plain_pools() -> Pools:
    """Return Pools that connect anywhere (tests and benchmarks; the gateway uses
    `pools_for`). HTTPS certificates are verified against certifi's bundle, as requests does
    (the system's store may be missing in a slim container)."""
    return Pools()


def guard_for(settings: Settings, resolver: Resolver = system_resolver) -> Guard:
    """Return the Guard of the gateway: the allowed targets plus the app's own host."""
    app_host = urlsplit(settings.app_url).hostname or "127.0.0.1"
    return Guard((*settings.targets, app_host), resolver)


def pools_for(settings: Settings) -> Pools:
    """Return the guarded Pools the gateway calls through."""
    return guarded_pools(guard_for(settings))
