"""Outbound safety: an urllib3 PoolManager that checks every connection's resolved address.

The check runs when a connection is opened (so DNS rebinding between validation and call,
and numeric IPv4 forms like ``2130706433`` or ``0x7f.1``, gain nothing): the host must be an
allowed target, and an address that is not public (private, loopback, link-local with the
cloud metadata service, multicast, reserved, unspecified, and their IPv6 and IPv4-mapped
forms) is refused unless the host is listed by name or pattern, not only by ``*``.
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Callable
from dataclasses import dataclass
from urllib.parse import urlsplit

import certifi
import urllib3
from urllib3.connection import HTTPConnection
from urllib3.connection import HTTPSConnection
from urllib3.connectionpool import HTTPConnectionPool
from urllib3.connectionpool import HTTPSConnectionPool
from urllib3.exceptions import NameResolutionError
from urllib3.exceptions import NewConnectionError

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


class _CheckedConnection(HTTPConnection):
    """An urllib3 connection that asks its Guard before every connect."""

    guard: Guard

    def _new_conn(self) -> socket.socket:
        try:
            addresses = self.guard.addresses(self.host, self.port)
        except socket.gaierror as e:
            raise NameResolutionError(self.host, self, e) from e
        # Connect to the addresses that were checked, not to a second lookup's answer. `host`
        # (the Host header, TLS name checks) reads `_dns_host`, so it is put back at once.
        name = self._dns_host
        failure: NewConnectionError | None = None
        for address in addresses:
            self._dns_host = address
            try:
                return super()._new_conn()
            except NewConnectionError as e:  # refused or unreachable: try the next address
                failure = e
            finally:
                self._dns_host = name
        assert failure is not None
        raise failure


class _CheckedHTTPSConnection(_CheckedConnection, HTTPSConnection):
    pass


def guarded_pools(guard: Guard, maxsize: int = 32) -> urllib3.PoolManager:
    """Return a PoolManager whose pools open only connections the Guard allows.

    It never goes through a proxy from the environment (urllib3 reads none): a proxy would
    resolve the host where we cannot check it.
    """
    pools = pool_manager(maxsize)
    http = type("Connection", (_CheckedConnection,), {"guard": guard})
    https = type("HTTPSConnection", (_CheckedHTTPSConnection,), {"guard": guard})
    pools.pool_classes_by_scheme = {
        "http": type("Pool", (HTTPConnectionPool,), {"ConnectionCls": http}),
        "https": type("HTTPSPool", (HTTPSConnectionPool,), {"ConnectionCls": https}),
    }
    return pools


def pool_manager(maxsize: int = 32) -> urllib3.PoolManager:
    """Return a PoolManager keeping `maxsize` connections alive per host (more are opened
    when needed and closed after use), for up to 100 hosts.

    HTTPS certificates are verified against certifi's bundle, as requests did (urllib3 alone
    would use the system's store, which a slim container may not have).
    """
    return urllib3.PoolManager(
        num_pools=100,
        maxsize=maxsize,
        block=False,
        cert_reqs="CERT_REQUIRED",
        ca_certs=certifi.where(),
    )


def guard_for(settings: Settings, resolver: Resolver = system_resolver) -> Guard:
    """Return the Guard of the gateway: the allowed targets plus the app's own host."""
    app_host = urlsplit(settings.app_url).hostname or "127.0.0.1"
    return Guard((*settings.targets, app_host), resolver)


def pools_for(settings: Settings) -> urllib3.PoolManager:
    """Return the guarded PoolManager the gateway calls through: a kept-alive connection per
    call thread and host."""
    return guarded_pools(guard_for(settings), maxsize=settings.gateway_workers)
