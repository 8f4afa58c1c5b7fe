"""Outbound safety: connection pools that check every new connection's resolved address.

The check runs when a connection is opened (so DNS rebinding between validation and call,
and numeric IPv4 forms like ``2130706433`` or ``0x7f.1``, gain nothing): the host must be an
allowed target, and an address that is not public (private, loopback, link-local with the
cloud metadata service, multicast, reserved, unspecified, and their IPv6 and IPv4-mapped
forms) is refused unless the host is listed by name or pattern, not only by ``*``.
"""

from __future__ import annotations

import functools
import http.client
import ipaddress
import select
import socket
import ssl
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import certifi

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


def normalize_host(host: str) -> str:
    """Return `host` lowercased without brackets or a final dot; any IP in its canonical form.

    IPv4 written as one number, in hex or in octal (``2130706433``, ``0x7f.1``, ``0177.0.0.1``)
    is read the way inet_aton reads it, which is what the resolver would connect to.
    """
    host = host.strip().lower().removeprefix("[").removesuffix("]").rstrip(".")
    address = ip_of(host)
    return str(address) if address is not None else host


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


IDLE_SECONDS = 60.0  # an idle connection older than this is closed (servers drop theirs)
MAX_IDLE = 256  # idle connections kept in all, whatever the number of hosts
_PRUNE_SECONDS = 10.0  # how often idle connections past IDLE_SECONDS are looked for

Key = tuple[str, str, int]


class Pools:
    """Kept-alive `http.client` connections, up to `maxsize` idle per (scheme, host, port)
    and MAX_IDLE (at least `maxsize`) in all, none idle longer than IDLE_SECONDS;
    thread-safe. With a Guard, every new connection checks its host and resolved addresses.

    The standard library rather than urllib3 on this path: a call through the Caller costs
    about 40% less CPU (bench/client_cpu.py), and CPU is what bounds a burst of thousands of
    calls. What urllib3 added that the gateway used (a bounded pool, dropping idle
    connections the server closed, certificate checks against certifi, no proxies from the
    environment) is the few lines here.
    """

    def __init__(self, maxsize: int = 32, guard: Guard | None = None) -> None:
        self.maxsize = maxsize
        self.max_idle = max(maxsize, MAX_IDLE)
        self.guard = guard
        # By key, oldest first: (when it was put back, by time.monotonic(); the connection).
        self._idle: dict[Key, list[tuple[float, http.client.HTTPConnection]]] = {}
        self._count = 0
        self._pruned = time.monotonic()
        self._lock = threading.Lock()

    @functools.cached_property
    def tls(self) -> ssl.SSLContext:
        """The TLS settings of every HTTPS connection (made when first needed: loading the
        CA bundle takes a few ms and about a MB)."""
        return ssl.create_default_context(cafile=certifi.where())

    def connection(
        self, scheme: str, host: str, port: int, timeout: float, *, fresh: bool = False
    ) -> http.client.HTTPConnection:
        """Return a kept-alive connection to scheme://host:port that the server has not
        closed meanwhile, or (none, or `fresh`) a new one, not yet connected: `connect()` it.
        `timeout` is for its connect and each read."""
        connection = None if fresh else self._idle_one((scheme, host, port))
        if connection is None:
            connection = self._new(scheme, host, port)
        connection.timeout = timeout
        if connection.sock is not None:
            connection.sock.settimeout(timeout)
        return connection

    def _idle_one(self, key: Key) -> http.client.HTTPConnection | None:
        """Pop the most recently used idle connection that is not too old and whose server
        has not closed it (an idle connection is readable only if it was: end of file, or
        bytes no request asked for)."""
        while True:
            with self._lock:
                idle = self._idle.get(key)
                if not idle:
                    return None
                since, connection = idle.pop()
                self._count -= 1
            if time.monotonic() - since <= IDLE_SECONDS and not _readable(connection):
                return connection
            connection.close()

    def put_back(self, connection: http.client.HTTPConnection) -> None:
        """Keep `connection` for the next call to its host (closed if enough are kept)."""
        closing = [connection]
        if connection.sock is not None:
            key = (_scheme_of(connection), connection.host, connection.port)
            now = time.monotonic()
            with self._lock:
                idle = self._idle.setdefault(key, [])
                if len(idle) < self.maxsize:
                    idle.append((now, connection))
                    self._count += 1
                    closing = self._evict(now)
        for one in closing:
            one.close()

    def _evict(self, now: float) -> list[http.client.HTTPConnection]:
        """Take out (under the lock) the connections idle too long, now and then, and the
        oldest beyond max_idle; return them, to close."""
        out: list[http.client.HTTPConnection] = []
        if now - self._pruned >= _PRUNE_SECONDS:
            self._pruned = now
            for key, idle in list(self._idle.items()):
                out += [c for since, c in idle if now - since > IDLE_SECONDS]
                idle[:] = [(since, c) for since, c in idle if now - since <= IDLE_SECONDS]
                if not idle:
                    del self._idle[key]
            self._count -= len(out)
        while self._count > self.max_idle:
            oldest = min(
                (k for k in self._idle if self._idle[k]), key=lambda k: self._idle[k][0][0]
            )
            out.append(self._idle[oldest].pop(0)[1])
            self._count -= 1
        return out

    def clear(self) -> None:
        """Close every kept-alive connection."""
        with self._lock:
            idle, self._idle, self._count = self._idle, {}, 0
        for connections in idle.values():
            for _, connection in connections:
                connection.close()

    def _new(self, scheme: str, host: str, port: int) -> http.client.HTTPConnection:
        if scheme == "https":
            return _GuardedHTTPSConnection(host, port, context=self.tls, guard=self.guard)
        if scheme == "http":
            return _GuardedHTTPConnection(host, port, guard=self.guard)
        raise ValueError(f"scheme {scheme!r} is not http or https")


class _GuardedHTTPConnection(http.client.HTTPConnection):
    """A connection that asks its Guard (if any) before connecting, and connects only to the
    addresses it checked (so DNS rebinding between check and connect gains nothing)."""

    def __init__(self, host: str, port: int, *, guard: Guard | None, **kwargs: Any) -> None:
        super().__init__(host, port, **kwargs)
        self.guard = guard

    def connect(self) -> None:
        self.sock = self._open_socket()

    def _open_socket(self) -> socket.socket:
        if self.guard is None:
            addresses = [self.host]  # create_connection resolves it and tries each address
        else:
            addresses = self.guard.addresses(self.host, self.port)
        failure: OSError | None = None
        for address in addresses:
            try:
                sock = socket.create_connection((address, self.port), self.timeout)
            except TimeoutError:
                raise
            except OSError as e:  # refused or unreachable: try the next address
                failure = e
                continue
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            return sock
        assert failure is not None
        raise failure


class _GuardedHTTPSConnection(_GuardedHTTPConnection, http.client.HTTPSConnection):
    """The same over TLS: the certificate is checked against certifi's bundle for the host's
    name (not the address connected to)."""

    def __init__(
        self, host: str, port: int, *, context: ssl.SSLContext, guard: Guard | None
    ) -> None:
        super().__init__(host, port, guard=guard, context=context)
        self.tls = context

    def connect(self) -> None:
        self.sock = self.tls.wrap_socket(self._open_socket(), server_hostname=self.host)


def _readable(connection: http.client.HTTPConnection) -> bool:
    """Return True if an idle connection has something to read: its server closed it."""
    if connection.sock is None:
        return True
    poll = select.poll()  # not select(): descriptors above 1024
    poll.register(connection.sock, select.POLLIN)
    return bool(poll.poll(0))


def _scheme_of(connection: http.client.HTTPConnection) -> str:
    return "https" if isinstance(connection, http.client.HTTPSConnection) else "http"


def guarded_pools(guard: Guard, maxsize: int = 32) -> Pools:
    """Return Pools whose new connections go only where the Guard allows.

    It never goes through a proxy from the environment: a proxy would resolve the host where
    we cannot check it.
    """
    return Pools(maxsize, guard)


def plain_pools(maxsize: int = 32) -> Pools:
    """Return Pools that connect anywhere (tests and benchmarks; the gateway uses
    `pools_for`). HTTPS certificates are verified against certifi's bundle, as requests does
    (the system's store may be missing in a slim container)."""
    return Pools(maxsize)


def guard_for(settings: Settings, resolver: Resolver = system_resolver) -> Guard:
    """Return the Guard of the gateway: the allowed targets plus the app's own host."""
    app_host = urlsplit(settings.app_url).hostname or "127.0.0.1"
    return Guard((*settings.targets, app_host), resolver)


def pools_for(settings: Settings) -> Pools:
    """Return the guarded Pools the gateway calls through: a kept-alive connection per call
    thread and host."""
    return guarded_pools(guard_for(settings), maxsize=settings.gateway_workers)
