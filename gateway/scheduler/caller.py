"""One HTTP call to a cron endpoint through libcurl (pycurl) → Outcome (no retries, no database).

Every failure becomes an Outcome; nothing the network raises escapes `Caller.call`. Secrets (the
token headers, a `cronToken` query parameter, URL passwords, `CallRequest.secrets`) are
redacted from every text field of the Outcome, whatever the network or the endpoint put there.
"""

from __future__ import annotations

import functools
import http.client
import json as jsonlib
import os
import re
import socket
import zlib
from dataclasses import dataclass
from dataclasses import field
from datetime import UTC
from datetime import datetime
from typing import Any
from typing import Literal
from typing import TypeAlias
from urllib.parse import unquote
from urllib.parse import urlsplit
from urllib.parse import urlunsplit

import pycurl
from urllib3.util import make_headers
from urllib3.util import parse_url

from gateway.clock import SYSTEM_CLOCK
from gateway.clock import Clock
from gateway.outbound import Pools
from gateway.outbound import SocketOpener
from gateway.outbound import TargetRefusedError
from gateway.outbound import ip_of
from gateway.outbound import plain_pools
from gateway.scheduler.policy import AttemptKind
from gateway.scheduler.redaction import redacted
from gateway.scheduler.redaction import secrets_of

JsonValue: TypeAlias = "None | bool | int | float | str | list[JsonValue] | dict[str, JsonValue]"
OutcomeStatus = Literal["success", "error", "timeout", "skipped"]
Trigger = Literal["schedule", "manual", "external", "retry", "backfill"]

_ERROR_CHARS = 1000
_ACCEPTED = frozenset({"accepted", "running", "queued"})
_DEFAULT_HEADERS = {
    "User-Agent": "cron-gateway",
    "Accept": "*/*",
    "Accept-Encoding": "gzip, deflate",
}


@dataclass(frozen=True)
class CallRequest:
    """One call to make. `json` None sends no body; `secrets` are extra strings to redact."""

    method: str
    url: str
    headers: dict[str, str] = field(default_factory=dict)
    json: JsonValue = None
    timeout_s: float = 30.0
    secrets: tuple[str, ...] = ()


@dataclass(frozen=True)
class Outcome:
    """What one call ended in, as data (DESIGN §2 endpoint contract).

    `status` is what the run becomes: `skipped` when the endpoint says so or answers 409.
    `accepted` means 202 with status accepted/running/queued: the endpoint goes on in the
    background and records the result itself. `kind`, `http_status` and `retry_after` are
    what `retry.decide_retry` reads.
    """

    status: OutcomeStatus
    kind: AttemptKind
    http_status: int | None
    duration_ms: int
    response_excerpt: str | None = None
    summary: JsonValue = None
    error: str | None = None
    retry_after: str | None = None
    endpoint_status: str | None = None
    accepted: bool = False
    truncated: bool = False


@dataclass(frozen=True)
class _Body:
    head: bytes  # the first json_limit bytes
    tail: bytes  # the last json_limit bytes (for an NDJSON stream's result line)
    size: int
    complete: bool  # read to the end, within max_body_bytes and the deadline
    timed_out: bool


def cron_headers(
    token: str,
    execution_id: str,
    scheduled_for: datetime | None,
    trigger: Trigger | str,
    attempt: int,
) -> dict[str, str]:
    """Return the X-Cron-* headers that let the endpoint attach to this run (DESIGN §1)."""
    headers = {
        "X-Cron-Token": token,
        "X-Cron-Execution-Id": execution_id,
        "X-Cron-Trigger": trigger,
        "X-Cron-Attempt": str(attempt),
    }
    if scheduled_for is not None:
        if scheduled_for.tzinfo is None or scheduled_for.utcoffset() is None:
            raise ValueError(f"scheduled_for: {scheduled_for.isoformat()} is naive")
        headers["X-Cron-Scheduled-For"] = scheduled_for.astimezone(UTC).isoformat()
    return headers


class Caller:
    """Makes calls through thread-safe Pools (outbound.py: a libcurl handle per thread, its
    connections kept alive); never follows redirects.

    libcurl (pycurl) rather than requests, urllib3 or `http.client` on this path: the call is
    made in C with the interpreter's lock released from the first byte sent to the last one
    read, where `http.client` takes the lock back at every socket operation and its threads
    queue for it in a burst (bench/README.md: a burst of 100 calls out of two senders in about
    two thirds of the time). A kept-alive connection the server closed under a request that got no
    answer is sent on once more, on a new connection, by libcurl (never one that was answered
    in part: the job ran).
    """

    def __init__(
        self,
        pools: Pools | None = None,
        excerpt_bytes: int = 4096,
        *,
        clock: Clock = SYSTEM_CLOCK,
        json_limit_bytes: int = 1 << 20,
        max_body_bytes: int = 16 << 20,
    ) -> None:
        self.pools = pools if pools is not None else plain_pools()
        self.excerpt_bytes = excerpt_bytes
        self.clock = clock
        self.json_limit_bytes = max(json_limit_bytes, excerpt_bytes)
        self.max_body_bytes = max(max_body_bytes, self.json_limit_bytes)

    def call(self, request: CallRequest) -> Outcome:
        """Make one call and return its Outcome; never raises for network or HTTP trouble."""
        started = self.clock.monotonic()
        secrets = secrets_of(request)
        try:
            outcome = self._call(request, started)
        except TargetRefusedError as exc:  # outbound safety: final, and says which setting
            outcome = _no_response("error", "invalid_request", str(exc), self._elapsed_ms(started))
        except (http.client.HTTPException, OSError, zlib.error) as exc:
            outcome = _failure(exc, request, self._elapsed_ms(started))
        except pycurl.error as exc:  # the handle itself failed (closed at shutdown): not sent
            error = f"call not made: libcurl handle error ({exc})"
            outcome = _no_response("error", "connection_error", error, self._elapsed_ms(started))
        except ValueError as exc:  # a bad URL or header value
            outcome = _invalid(exc, self._elapsed_ms(started))
        return redacted(outcome, secrets)

    def close(self) -> None:
        """Close every kept-alive connection (at shutdown)."""
        self.pools.clear()

    def _call(self, request: CallRequest, started: float) -> Outcome:
        url, headers = _wire_url_and_headers(request)
        body = request_body(request.json)
        if body is not None and not any(name.lower() == "content-type" for name in headers):
            headers["Content-Type"] = "application/json"
        scheme, host, port, target = _endpoint(url)
        addresses = self.pools.addresses(host, port)
        handle = self.pools.handle()
        exchange = _Exchange(
            self.json_limit_bytes, self.max_body_bytes, self.clock, started + request.timeout_s
        )
        netloc = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
        _prepare(handle, request, f"{scheme}://{netloc}{target}", headers, body)
        if addresses is not None and ip_of(host) is None:
            bracketed = ",".join(f"[{a}]" if ":" in a else a for a in addresses)
            # "+": an entry that expires from the handle's DNS cache, not one kept for ever
            handle.setopt(pycurl.RESOLVE, [f"+{host}:{port}:{bracketed}"])
        opener = SocketOpener(addresses)
        handle.setopt(pycurl.OPENSOCKETFUNCTION, opener)
        handle.setopt(pycurl.HEADERFUNCTION, exchange.header_line)
        handle.setopt(pycurl.WRITEFUNCTION, exchange.write)
        try:
            handle.perform()
        except pycurl.error as exc:
            if exchange.failure is not None:  # raised in a callback (a body not decodable)
                raise exchange.failure from None
            args: tuple[Any, ...] = exc.args
            if args[0] == pycurl.E_WRITE_ERROR and (exchange.over or exchange.timed_out):
                pass  # cut at max_body_bytes or a stream's deadline: judged by what came
            elif args[0] == pycurl.E_OPERATION_TIMEDOUT and exchange.streaming:
                exchange.timed_out = True
            else:
                raise _as_exception(exc, handle, exchange) from None
        else:
            exchange.complete = True
        finally:
            opener.close()
            handle.setopt(pycurl.HEADERFUNCTION, _ignore)  # let go of the exchange
            handle.setopt(pycurl.WRITEFUNCTION, _ignore)
        return self._from_response(exchange, exchange.body(), request, self._elapsed_ms(started))

    def _from_response(
        self, response: _Exchange, body: _Body, request: CallRequest, ms: int
    ) -> Outcome:
        """Return the Outcome of a call that got a response."""
        code = response.status
        document = _document(body, response.getheader("Content-Type") or "")
        endpoint_status = _field(document, "status")
        if body.timed_out:
            status: OutcomeStatus = "timeout"
            error: str | None = f"no complete response within {request.timeout_s:g} s"
        else:
            status, error = _judge(code, endpoint_status, document, response)
        return Outcome(
            status=status,
            kind="timeout" if body.timed_out else "http",
            http_status=code,
            duration_ms=ms,
            response_excerpt=body.head[: self.excerpt_bytes].decode("utf-8", errors="replace"),
            summary=document.get("summary") if _is_contract(document) else None,
            error=error,
            retry_after=response.getheader("Retry-After"),
            endpoint_status=endpoint_status,
            accepted=code == 202 and endpoint_status in _ACCEPTED and not body.timed_out,
            truncated=body.size > self.excerpt_bytes,
        )

    def _elapsed_ms(self, started: float) -> int:
        return max(0, round((self.clock.monotonic() - started) * 1000))


class _ConnectTimeoutError(TimeoutError):
    """The connection could not be opened within the timeout (nothing was sent)."""


class _TLSError(OSError):
    """The TLS handshake or the certificate check failed; `why` says which, in libcurl's words."""

    def __init__(self, why: str) -> None:
        super().__init__(why)
        self.why = why


@dataclass
class _Exchange:
    """One call's response as libcurl hands it over: the head's lines, then the body, decoded
    as it arrives and kept only in part (its head and tail), never past `max_body`."""

    limit: int
    max_body: int
    clock: Clock
    deadline: float  # by clock.monotonic(): a stream (NDJSON) is cut there
    status: int = 0
    reason: str = ""
    headers: dict[str, str] = field(default_factory=dict)
    head: bytearray = field(default_factory=bytearray)
    tail: bytearray = field(default_factory=bytearray)
    size: int = 0
    over: bool = False  # past max_body: libcurl was told to stop
    complete: bool = False
    timed_out: bool = False
    failure: Exception | None = None  # raised while decoding: the call ends with it
    decoder: _Decoder | None = None

    def header_line(self, raw: bytes) -> None:
        line = raw.decode("latin-1").rstrip("\r\n")
        if line.startswith("HTTP/"):  # a new head: after a 100 Continue, or a resend
            _, _, rest = line.partition(" ")
            code, _, self.reason = rest.partition(" ")
            self.status = int(code) if code.isdigit() else 0
            self.headers = {}
        elif ":" in line and self.status:
            name, _, value = line.partition(":")
            key, value = name.strip().lower(), value.strip()
            self.headers[key] = f"{self.headers[key]}, {value}" if key in self.headers else value

    def getheader(self, name: str) -> str | None:
        return self.headers.get(name.lower())

    @property
    def streaming(self) -> bool:
        """True for an NDJSON stream, which could go on for ever: it gets a total deadline
        (other bodies arrive right after the head, within libcurl's timeout)."""
        return bool(self.status) and "ndjson" in (self.getheader("Content-Type") or "").lower()

    def write(self, raw: bytes) -> int | None:
        """Take a piece of the body; return 0 (stop the transfer) past max_body or when it
        cannot be decoded."""
        try:
            if self.decoder is None:
                self.decoder = _Decoder(self.getheader("Content-Encoding"))
            chunk = self.decoder.decode(raw, self.max_body - self.size + 1)
        except Exception as exc:  # noqa: BLE001 - raised again once libcurl has stopped
            self.failure = exc
            return 0
        self.size += len(chunk)
        self.head += chunk[: max(0, self.limit - len(self.head))]
        self.tail += chunk
        if len(self.tail) > 2 * self.limit:  # trim now and then: amortised O(size)
            del self.tail[: -self.limit]
        if self.size > self.max_body:
            self.over = True
            return 0
        if self.streaming and self.clock.monotonic() > self.deadline:
            self.timed_out = True
            return 0
        return None

    def body(self) -> _Body:
        complete = self.complete and not self.over
        tail = bytes(self.tail[-self.limit :])
        return _Body(bytes(self.head), tail, self.size, complete, self.timed_out)


def _ignore(data: bytes) -> None:
    return None


_TOKEN = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
_BAD_VALUE = re.compile(r"[\r\n\0]")
_EXPECTING_BODY = frozenset({"POST", "PUT", "PATCH"})


def _prepare(
    handle: pycurl.Curl,
    request: CallRequest,
    url: str,
    headers: dict[str, str],
    body: bytes | None,
) -> None:
    """Set a handle (Pools.handle) for one call: to `url` exactly as given, `headers` and
    nothing of libcurl's own (no Expect, no form Content-Type), no redirects, no decoding (the
    Caller decodes, bounded), one timeout for the whole call."""
    method = request.method
    if not _TOKEN.fullmatch(method):
        raise ValueError(f"invalid method {method!r}")
    lines = [b"Expect:"]
    if "content-type" not in (name.lower() for name in headers):
        lines.append(b"Content-Type:")
    for name, value in headers.items():
        if not _TOKEN.fullmatch(name):
            raise ValueError(f"invalid header name {name!r}")
        if _BAD_VALUE.search(value):
            # The value itself is not quoted: it may hold a secret that redaction would miss.
            raise ValueError(f"invalid header value for {name!r}: a line break or NUL")
        # latin-1, as http.client sent them (UnicodeEncodeError, a ValueError, beyond it)
        lines.append((f"{name}: {value}" if value else f"{name};").encode("latin-1"))
    timeout_ms = max(1, int(request.timeout_s * 1000))
    options: list[tuple[int, Any]] = [
        (pycurl.URL, url),
        (pycurl.HTTPHEADER, lines),
        (pycurl.PATH_AS_IS, 1),
        (pycurl.CONNECTTIMEOUT_MS, timeout_ms),
        (pycurl.TIMEOUT_MS, timeout_ms),
    ]
    if method == "HEAD":
        options.append((pycurl.NOBODY, 1))
    elif body is not None or method in _EXPECTING_BODY:
        options += [(pycurl.POSTFIELDS, body or b""), (pycurl.CUSTOMREQUEST, method)]
    elif method != "GET":
        options.append((pycurl.CUSTOMREQUEST, method))
    for option, value in options:
        handle.setopt(option, value)


def _as_exception(exc: pycurl.error, handle: pycurl.Curl, exchange: _Exchange) -> Exception:
    """Return what a failed libcurl transfer means, as the exception `_failure` words."""
    args: tuple[Any, ...] = exc.args
    code, message = args[0], str(args[1])
    errno = handle.getinfo(pycurl.OS_ERRNO)
    if code == pycurl.E_OPERATION_TIMEDOUT:
        # Sent: on a kept-alive connection there is no connect time, but bytes went out.
        sent = handle.getinfo(pycurl.REQUEST_SIZE) > 0 or exchange.status
        return TimeoutError(message) if sent else _ConnectTimeoutError(message)
    if code == pycurl.E_COULDNT_CONNECT and errno == 111:
        return ConnectionRefusedError(errno, "Connection refused")
    if code == pycurl.E_COULDNT_RESOLVE_HOST:
        return socket.gaierror(message)
    if code == pycurl.E_PARTIAL_FILE:
        return http.client.IncompleteRead(b"")
    if code == pycurl.E_GOT_NOTHING:
        return http.client.RemoteDisconnected(message)
    if code in (pycurl.E_RECV_ERROR, pycurl.E_SEND_ERROR) and errno in (104, 32):
        return ConnectionResetError(errno, "Connection reset by peer")
    if code in _TLS_ERRORS:
        return _TLSError(_LIBCURL_TLS_PREFIX.sub("", message))
    if code == pycurl.E_URL_MALFORMAT:
        return ValueError(message)
    reason = os.strerror(errno) if errno else message
    return OSError(errno or None, reason)


_LIBCURL_TLS_PREFIX = re.compile(
    r"^(SSL certificate problem: |SSL certificate OpenSSL verify result: |SSL: )"
)
_TLS_ERRORS = frozenset(
    {
        pycurl.E_SSL_CONNECT_ERROR,
        pycurl.E_PEER_FAILED_VERIFICATION,
        pycurl.E_SSL_CACERT_BADFILE,
        pycurl.E_SSL_CERTPROBLEM,
        pycurl.E_SSL_CIPHER,
    }
)


class _Decoder:
    """Decodes a body's Content-Encoding (gzip, deflate, or a list of them) as it arrives,
    never more than asked for at once, so a small compressed body cannot become gigabytes.
    An encoding it does not know is passed through as it came, as urllib3 does."""

    def __init__(self, content_encoding: str | None) -> None:
        names = [n.strip().lower() for n in (content_encoding or "").split(",")]
        self.stages = [_Stage(n) for n in reversed(names) if n in ("gzip", "x-gzip", "deflate")]

    def decode(self, data: bytes, most: int) -> bytes:
        for stage in self.stages:
            data = stage.decode(data, most)
        return data


@dataclass
class _Stage:
    name: str
    decompressor: zlib._Decompress | None = None
    ended: bool = False  # trailing bytes that are not gzip: the rest is ignored
    later_member: bool = False  # past the first gzip member (an error there is not fatal)

    def decode(self, data: bytes, most: int) -> bytes:
        if self.ended:
            return b""
        if self.decompressor is None:
            self.decompressor = _decompressor(self.name, data)
        # What was held back last time (more than `most` would have come out) goes first.
        try:
            out = self.decompressor.decompress(self.decompressor.unconsumed_tail + data, most)
        except zlib.error:
            if not self.later_member:
                raise  # the body itself cannot be decoded
            self.ended = True  # what follows the first member is not gzip after all
            return b""
        # A gzip body may be several members one after the other: each is decoded in turn.
        # What follows the last one and is not gzip (zero padding) is ignored, as urllib3 does.
        while (
            self.name != "deflate"
            and self.decompressor.eof
            and self.decompressor.unused_data
            and len(out) < most
        ):
            rest = self.decompressor.unused_data
            self.decompressor = _decompressor(self.name, rest)
            self.later_member = True
            try:
                out += self.decompressor.decompress(rest, most - len(out))
            except zlib.error:
                self.ended = True
                break
        return out


def _decompressor(name: str, first: bytes) -> zlib._Decompress:
    """Return the decompressor for `name`; for deflate, zlib-wrapped as the RFC says or raw
    as some servers send it, chosen from the first bytes (as urllib3 and browsers do)."""
    if name != "deflate":
        return zlib.decompressobj(16 + zlib.MAX_WBITS)
    try:
        zlib.decompressobj().decompress(first[:2])
    except zlib.error:
        return zlib.decompressobj(-zlib.MAX_WBITS)
    return zlib.decompressobj()


@functools.lru_cache(maxsize=4096)
def _endpoint(url: str) -> tuple[str, str, int, str]:
    """Return the scheme, host, port and request target (path and query) of `url`, the
    target as `request_target` gives it (so what a signature covers is what is sent)."""
    parts = parse_url(url)
    scheme = (parts.scheme or "").lower()
    host = (parts.host or "").removeprefix("[").removesuffix("]")
    port = parts.port or (443 if scheme == "https" else 80)
    return scheme, host, port, str(parts.request_uri)


def request_body(json: JsonValue) -> bytes | None:
    """Return the body sent for a JSON payload (None: no body), as requests encoded it: NaN
    and infinities are refused (ValueError), they are not JSON."""
    if json is None:
        return None
    return jsonlib.dumps(json, allow_nan=False).encode()


def request_target(url: str) -> str:
    """Return the path and query sent on the request line for `url` (urllib3's reading of a
    URL: characters not allowed there are percent-encoded, the fragment is dropped)."""
    return _endpoint(url)[3]


def _wire_url_and_headers(request: CallRequest) -> tuple[str, dict[str, str]]:
    """Return the URL to send to and the headers, with what requests did for us done here:
    only http(s) URLs with a host, user info moved into Basic auth, our default headers (a
    job's own header of the same name, in any case, wins)."""
    parts = urlsplit(request.url)
    if parts.scheme.lower() not in ("http", "https") or not parts.hostname:
        raise ValueError(f"URL {request.url!r} is not an http:// or https:// URL with a host")
    own = {name.lower() for name in request.headers}
    defaults = {k: v for k, v in _DEFAULT_HEADERS.items() if k.lower() not in own}
    headers = {**defaults, **request.headers}
    url = request.url
    if parts.username is not None or parts.password is not None:
        userinfo = f"{unquote(parts.username or '')}:{unquote(parts.password or '')}"
        if "authorization" not in own:
            headers["Authorization"] = make_headers(basic_auth=userinfo)["authorization"]
        url = urlunsplit(parts._replace(netloc=parts.netloc.rpartition("@")[2]))
    return url, headers


def _judge(
    code: int,
    endpoint_status: str | None,
    document: dict[str, JsonValue],
    response: _Exchange,
) -> tuple[OutcomeStatus, str | None]:
    """Return the run status and error message for a response."""
    detail = _error_detail(document) or response.reason or ""
    if 200 <= code <= 299:
        if endpoint_status == "skipped":
            return "skipped", _error_detail(document)
        if endpoint_status == "error":
            return "error", _clip(f"job failed: {detail or 'no error message'}")
        return "success", None
    if 300 <= code <= 399:
        location = response.getheader("Location") or "(no Location header)"
        return "error", _clip(f"HTTP {code}: redirect to {location} not followed")
    if code == 409:  # another run holds the job's lock (DESIGN §2): recorded as skipped
        return "skipped", _clip(f"HTTP 409: {detail}" if detail else "HTTP 409")
    return "error", _clip(f"HTTP {code}: {detail}" if detail else f"HTTP {code}")


def _document(body: _Body, content_type: str) -> dict[str, JsonValue]:
    """Return the JSON object the endpoint answered ({} if none): an NDJSON stream's last line."""
    if not body.complete:
        return {}
    whole = body.head if body.size <= len(body.head) else None
    if "ndjson" in content_type.lower():
        lines = (whole if whole is not None else body.tail).strip().splitlines()
        text = lines[-1] if lines else b""
    elif whole is None:
        return {}
    else:
        text = whole
    try:
        value = jsonlib.loads(text)
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}


def _is_contract(document: dict[str, JsonValue]) -> bool:
    """Return True if `document` looks like the endpoint contract of DESIGN §2."""
    return isinstance(document.get("status"), str) and (
        "execution_id" in document or "job" in document
    )


def _field(document: dict[str, JsonValue], name: str) -> str | None:
    value = document.get(name)
    return value if isinstance(value, str) else None


def _error_detail(document: dict[str, JsonValue]) -> str | None:
    """Return the endpoint's error message: `error` as a string, or `error.message`."""
    error = document.get("error")
    if isinstance(error, dict):
        error = error.get("message")
    return _clip(error) if isinstance(error, str) and error else None


def _failure(exc: BaseException, request: CallRequest, ms: int) -> Outcome:
    """Return the Outcome of a call that raised (built from our words, not the exception's)."""
    target, after = _target(request.url), f"{request.timeout_s:g} s"
    if isinstance(exc, http.client.InvalidURL):
        return _invalid(exc, ms)
    if isinstance(exc, _ConnectTimeoutError):
        return _no_response("timeout", "timeout", f"connect timeout after {after} to {target}", ms)
    if isinstance(exc, TimeoutError):
        return _no_response("timeout", "timeout", f"no response within {after} from {target}", ms)
    return _no_response("error", "connection_error", _connection_message(exc, target), ms)


def _invalid(exc: BaseException, ms: int) -> Outcome:
    error = f"invalid request: {type(exc).__name__}: {exc}"
    return _no_response("error", "invalid_request", error, ms)


def _no_response(status: OutcomeStatus, kind: AttemptKind, error: str, ms: int) -> Outcome:
    return Outcome(status, kind, http_status=None, duration_ms=ms, error=_clip(error))


def _connection_message(exc: BaseException, target: str) -> str:
    """Return e.g. "connection refused to 127.0.0.1:8000" for what the call raised."""
    if isinstance(exc, _TLSError):
        return f"TLS error with {target}: {exc.why or 'handshake failed'}"
    if isinstance(exc, http.client.IncompleteRead):
        return f"response from {target} broke off before its end"
    if isinstance(exc, zlib.error):
        return f"response from {target} could not be decoded (Content-Encoding)"
    if isinstance(exc, ConnectionRefusedError):
        return f"connection refused to {target}"
    if isinstance(exc, http.client.RemoteDisconnected):  # a ConnectionResetError too
        return f"connection closed by {target} before it answered"
    if isinstance(exc, ConnectionResetError):
        return f"connection reset by {target}"
    if isinstance(exc, socket.gaierror):
        return f"name resolution failed for {target}"
    reason = exc.strerror if isinstance(exc, OSError) else None
    return f"connection error to {target}" + (f": {reason}" if reason else "")


def _target(url: str) -> str:
    """Return host:port of `url`, never its user info, path or query."""
    try:
        parts = urlsplit(url)
        port = parts.port or {"http": 80, "https": 443}.get(parts.scheme)
    except ValueError:
        return "(unparsable URL)"
    host = parts.hostname or "(no host)"
    return f"{host}:{port}" if port else host


def _clip(text: str) -> str:
    return text if len(text) <= _ERROR_CHARS else text[: _ERROR_CHARS - 1] + "…"
