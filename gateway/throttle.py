"""Throttle: bad tokens per remote address in a sliding window; over the limit, 429 for a while.

Over the limit, tokens from that address are refused unchecked, so guessing gains nothing,
except the ones that already succeeded from there: a bad crontab line on the gateway's own
host must not lock the gateway out. State lives in the memory of one process (each gunicorn
worker keeps its own), bounded by LRUs of addresses. IPv6 callers are counted per /64, the
block one host usually gets.
"""

from __future__ import annotations

import ipaddress
import math
import threading
from collections import OrderedDict
from collections import deque

from gateway.tokens import hash_token

MAX_ADDRESSES = 10_000
KNOWN_PER_ADDRESS = 8  # good tokens remembered per address (hashes, never the tokens)


class Throttle:
    """Counts failures per address; `retry_after` says how long an address must wait."""

    def __init__(
        self, failures: int = 10, window_seconds: float = 60.0, max_addresses: int = MAX_ADDRESSES
    ) -> None:
        self.failures = failures
        self.window = window_seconds
        self.max_addresses = max_addresses
        self._seen: OrderedDict[str, deque[float]] = OrderedDict()
        self._known: OrderedDict[str, deque[str]] = OrderedDict()
        self._lock = threading.Lock()

    def retry_after(self, address: str | None, now: float) -> int | None:
        """Return the seconds until `address` may try again, or None if it may try now."""
        key = client_key(address)
        with self._lock:
            times = self._seen.get(key)
            if times is None or len(times) < self.failures:
                return None
            # Only the last `failures` failures are kept: the oldest of them decides.
            wait = times[0] + self.window - now
            if wait <= 0:
                return None
            return max(1, math.ceil(wait))

    def failed(self, address: str | None, now: float) -> None:
        """Count one failure (a wrong token) from `address` at `now`."""
        key = client_key(address)
        with self._lock:
            times = self._seen.pop(key, None)
            if times is None:
                times = deque(maxlen=self.failures)
            times.append(now)
            self._seen[key] = times  # most recent last: the LRU end
            while len(self._seen) > self.max_addresses:
                self._seen.popitem(last=False)

    def refusal(self, address: str | None, token: str | None, now: float) -> int | None:
        """Return the seconds `address` must wait before `token` is looked at, or None if it
        may be checked now: no penalty, or a token that already succeeded from there."""
        wait = self.retry_after(address, now)
        if wait is None or (token and self.known(address, token)):
            return None
        return wait

    def succeeded(self, address: str | None, token: str) -> None:
        """Remember that `token` was good from `address` (it keeps working there during a
        penalty that other tokens earned)."""
        key, digest = client_key(address), hash_token(token)
        with self._lock:
            known = self._known.pop(key, None) or deque(maxlen=KNOWN_PER_ADDRESS)
            if digest not in known:
                known.append(digest)
            self._known[key] = known
            while len(self._known) > self.max_addresses:
                self._known.popitem(last=False)

    def known(self, address: str | None, token: str) -> bool:
        """Return True if `token` was good from `address` before."""
        key, digest = client_key(address), hash_token(token)
        with self._lock:
            return digest in self._known.get(key, ())

    def __len__(self) -> int:
        return len(self._seen)


def client_key(address: str | None) -> str:
    """Return what failures are counted by: the IPv4 address, or the IPv6 /64."""
    if not address:
        return "unknown"
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return address[:100]
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is None:
        return str(ipaddress.IPv6Network((int(ip) >> 64 << 64, 64)))
    return str(ip.ipv4_mapped or ip) if isinstance(ip, ipaddress.IPv6Address) else str(ip)
