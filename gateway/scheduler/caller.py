"""One HTTP call to a cron endpoint with `http.client` → Outcome (no retries, no database).

Every failure becomes an Outcome; nothing the network raises escapes `Caller.call`. Secrets (the
token headers, a `cronToken` query parameter, URL passwords, `CallRequest.secrets`) are
redacted from every text field of the Outcome, whatever the network or the endpoint put there.
"""

from __future__ import annotations

import functools
import http.client
import json as jsonlib
import socket
import ssl
import zlib
from dataclasses import dataclass
from dataclasses import field
from datetime import UTC
from datetime import datetime
from typing import Literal
from typing import TypeAlias
from urllib.parse import unquote
from urllib.parse import urlsplit
from urllib.parse import urlunsplit

from urllib3.util import make_headers
from urllib3.util import parse_url

from gateway.clock import SYSTEM_CLOCK
from gateway.clock import Clock
from gateway.outbound import Pools
from gateway.outbound import TargetRefusedError
from gateway.outbound import plain_pools
from gateway.scheduler.policy import AttemptKind
from gateway.scheduler.redaction import redacted
from gateway.scheduler.redaction import secrets_of

JsonValue: TypeAlias = "None | bool | int | float | str | list[JsonValue] | dict[str, JsonValue]"
OutcomeStatus = Literal["success", "error", "timeout", "skipped"]
Trigger = Literal["schedule", "manual", "external", "retry", "backfill"]

_ERROR_CHARS = 1000
_READ_BYTES = 64 * 1024
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
    """Makes calls through thread-safe Pools of kept-alive `http.client` connections per host
    (outbound.py); never follows redirects.

    The standard library rather than requests or urllib3 on this path: the whole call costs
    about 40% less CPU than it did through urllib3's PoolManager (bench/client_cpu.py, both
    in one sitting), and that CPU is what bounds a burst of thousands of calls.
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
        except ValueError as exc:  # a bad URL or header value
            outcome = _invalid(exc, self._elapsed_ms(started))
        return redacted(outcome, secrets)

    def close(self) -> None:
        """Close every kept-alive connection (at shutdown)."""
        self.pools.clear()

    def _call(self, request: CallRequest, started: float) -> Outcome:
        response, connection = self._open_once_more_if_stale(request)
        complete = False
        try:
            # A stream (NDJSON) could go on for ever: it gets a total deadline. Other bodies
            # arrive right after the headers, bounded by the per-read timeout and the size cap.
            streaming = "ndjson" in (response.getheader("Content-Type") or "").lower()
            body_read = self._read(response, started + request.timeout_s if streaming else None)
            complete = body_read.complete
            return self._from_response(response, body_read, request, self._elapsed_ms(started))
        finally:
            if complete:  # read to its end: the connection can carry the next call
                self.pools.put_back(connection)
            else:  # cut short or broken: it cannot
                response.close()
                connection.close()

    def _open_once_more_if_stale(
        self, request: CallRequest
    ) -> tuple[http.client.HTTPResponse, http.client.HTTPConnection]:
        """Send the request and read the response's head; if a kept-alive connection turns out
        closed by the server before any answer, send it once more on a new one. (Pools hands
        out no idle connection whose server has closed it; this is for one closed meanwhile.)

        The app's server drops idle keep-alive connections (gunicorn after `keepalive`
        seconds), and a request sent on one just as it closes is reset before it is read.
        Sending it again is safe: if the first copy did reach the endpoint, the endpoint
        refuses the second (same execution id and attempt) with 409 and keeps its record. A
        response that breaks off after its head is never sent again: the job ran.
        """
        url, headers = _wire_url_and_headers(request)
        body = request_body(request.json)
        if body is not None and not any(name.lower() == "content-type" for name in headers):
            headers["Content-Type"] = "application/json"
        scheme, host, port, target = _endpoint(url)
        for attempt in (1, 2):
            connection = self.pools.connection(
                scheme, host, port, request.timeout_s, fresh=attempt == 2
            )
            kept_alive = connection.sock is not None
            try:
                if not kept_alive:
                    _connect(connection)
                connection.request(request.method, target, body, headers)
                return connection.getresponse(), connection
            except BaseException as exc:
                connection.close()
                # Only a kept-alive connection is sent on again: on a new one, a reset or a
                # close may come after the endpoint read the request (a worker killed).
                if attempt == 2 or not kept_alive or not _stale_connection(exc):
                    raise
        raise AssertionError("unreachable")

    def _read(self, response: http.client.HTTPResponse, deadline: float | None) -> _Body:
        """Read the body in chunks, keeping at most its head and tail, until done or a limit."""
        limit = self.json_limit_bytes
        head, tail, size, complete, timed_out = bytearray(), bytearray(), 0, True, False
        decoder = _Decoder(response.getheader("Content-Encoding"))
        # A chunked body is read a chunk at a time (a stream's lines as they come); any other
        # up to _READ_BYTES at a time (read1 would not notice a short Content-Length).
        read = response.read1 if response.chunked else response.read
        while raw := read(_READ_BYTES):
            chunk = decoder.decode(raw, self.max_body_bytes - size + 1)
            size += len(chunk)
            head += chunk[: max(0, limit - len(head))]
            tail += chunk
            if len(tail) > 2 * limit:  # trim now and then: amortised O(size)
                del tail[:-limit]
            timed_out = deadline is not None and self.clock.monotonic() > deadline
            if size > self.max_body_bytes or timed_out:
                complete = False
                break
        else:
            if response.length:  # the server closed before its Content-Length was sent
                raise http.client.IncompleteRead(b"", response.length)
        return _Body(bytes(head), bytes(tail[-limit:]), size, complete, timed_out)

    def _from_response(
        self, response: http.client.HTTPResponse, body: _Body, request: CallRequest, ms: int
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


def _connect(connection: http.client.HTTPConnection) -> None:
    try:
        connection.connect()
    except TimeoutError as exc:
        raise _ConnectTimeoutError(*exc.args) from exc


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
    response: http.client.HTTPResponse,
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
    if isinstance(exc, ssl.SSLError):
        why = getattr(exc, "verify_message", None) or exc.reason or exc.strerror
        return f"TLS error with {target}: {why or 'handshake failed'}"
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


def _stale_connection(exc: BaseException) -> bool:
    """Return True if the connection was closed under the request (reset, or closed before
    any answer), as happens to a kept-alive connection; never for a refused one."""
    return isinstance(exc, (ConnectionResetError, BrokenPipeError))


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
