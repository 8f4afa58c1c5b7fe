"""A scripted raw-socket HTTP/1.1 server on 127.0.0.1, for testing an HTTP client on a real wire.

Each request it reads takes the next queued answer (the last one repeats) and is recorded as
it came: method, request target, headers in wire order and case, body. An answer is a proper
response or one of the ways a server misbehaves: bytes sent as they are, an endless body, a
close without answering, a reset, silence. Connections are kept alive unless the answer
closes them; one thread serves each.

    with ScriptedServer() as server:
        server.add(status=200, payload={"ok": True})
        ...  # call server.url("/path")
        assert server.requests[0].target == "/path"
"""

from __future__ import annotations

import http.client
import json
import socket
import struct
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from dataclasses import field
from types import TracebackType
from typing import Any

_POLL_S = 0.05  # how often a waiting thread looks at the stop and drop flags if not woken
_JOIN_S = 5.0


@dataclass(frozen=True)
class Received:
    """One request as it came on the wire; `connection` counts accepted connections from 1."""

    method: str
    target: str
    headers: list[tuple[str, str]]
    body: bytes
    connection: int

    def header(self, name: str) -> str | None:
        """Return the first value of header `name` (any case), or None."""
        return next((v for n, v in self.headers if n.lower() == name.lower()), None)

    def names(self, name: str) -> list[str]:
        """Return the names of the headers called `name` in any case, as they were spelt."""
        return [n for n, _ in self.headers if n.lower() == name.lower()]


@dataclass(frozen=True)
class Raw:
    """Send `data` as the whole answer, then close the connection if `close`."""

    data: bytes
    close: bool = False


@dataclass
class Endless:
    """Send `head`, then `chunk` again and again (chunk-framed if `chunked`) until the client
    stops reading; `stopped` is set when a send fails, `sent` counts body bytes sent."""

    head: bytes
    chunk: bytes = b"y" * 65536
    chunked: bool = False
    sent: int = 0
    stopped: threading.Event = field(default_factory=threading.Event)


@dataclass(frozen=True)
class Hangup:
    """Close the connection without answering (as a server dropping an idle connection)."""


@dataclass(frozen=True)
class Reset:
    """Send `data`, wait `delay_s`, then reset the connection (SO_LINGER 0, close)."""

    data: bytes = b""
    delay_s: float = 0.0


@dataclass(frozen=True)
class Silence:
    """Never answer; the connection stays open until the client or the server closes it."""


Answer = Raw | Endless | Hangup | Reset | Silence


def head(status: int = 200, headers: dict[str, str] | None = None) -> bytes:
    """Return an HTTP/1.1 status line and headers, ending with the blank line."""
    reason = http.client.responses.get(status, "Unknown")
    lines = [f"HTTP/1.1 {status} {reason}", *(f"{k}: {v}" for k, v in (headers or {}).items())]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


def response(status: int = 200, body: bytes = b"", headers: dict[str, str] | None = None) -> bytes:
    """Return a whole HTTP/1.1 response with a Content-Length."""
    return head(status, {**(headers or {}), "Content-Length": str(len(body))}) + body


def chunked(status: int, parts: list[bytes], headers: dict[str, str] | None = None) -> bytes:
    """Return a whole HTTP/1.1 response whose body is `parts`, sent chunked."""
    framed = b"".join(_chunk(p) for p in parts if p) + b"0\r\n\r\n"
    return head(status, {**(headers or {}), "Transfer-Encoding": "chunked"}) + framed


def _chunk(data: bytes) -> bytes:
    return b"%x\r\n%s\r\n" % (len(data), data)


class _Gone(Exception):
    """The connection is to end: the client closed it, or the server is stopping."""


class _Connection:
    """One accepted connection: reads requests, sends what the script says."""

    def __init__(self, server: ScriptedServer, sock: socket.socket, number: int) -> None:
        self.server, self.sock, self.number = server, sock, number
        self.buffer = b""
        self.drop = threading.Event()
        self._closing = threading.Lock()  # so that a wake-up never meets a closed socket
        self.thread = threading.Thread(target=self.serve, name=f"wire-{number}", daemon=True)
        sock.settimeout(_POLL_S)

    def serve(self) -> None:
        try:
            while True:
                received = self.read_request()
                self.server._record(received)
                if not self.answer(self.server._next_answer()):
                    break
        except (_Gone, OSError):
            pass
        finally:
            with self._closing:
                if self.drop.is_set():
                    _reset(self.sock)
                self.sock.close()

    def wake(self, how: int) -> None:
        """Wake the thread if it waits in recv (Linux: at once; elsewhere within _POLL_S)."""
        with self._closing:
            try:
                self.sock.shutdown(how)
            except OSError:
                pass

    def answer(self, answer: Answer) -> bool:
        """Send `answer`; return True if the connection stays open for another request."""
        if isinstance(answer, Raw):
            self.send(answer.data)
            return not answer.close
        if isinstance(answer, Endless):
            self.stream(answer)
        elif isinstance(answer, Reset):
            self.send(answer.data)
            self.server._stopping.wait(answer.delay_s)
            with self._closing:
                _reset(self.sock)
        elif isinstance(answer, Silence):
            while self.recv():  # until the client gives up
                pass
        return False

    def stream(self, endless: Endless) -> None:
        self.send(endless.head)
        data = _chunk(endless.chunk) if endless.chunked else endless.chunk
        try:
            while True:
                self.send(data)
                endless.sent += len(endless.chunk)
        except OSError:
            endless.stopped.set()
            raise

    def read_request(self) -> Received:
        while b"\r\n\r\n" not in self.buffer:
            self.buffer += self.recv()
        raw_head, self.buffer = self.buffer.split(b"\r\n\r\n", 1)
        request_line, *lines = raw_head.decode("latin-1").split("\r\n")
        method, target, _version = request_line.split(" ", 2)
        headers = [(n, v.strip()) for n, _, v in (line.partition(":") for line in lines)]
        length = int(next((v for n, v in headers if n.lower() == "content-length"), "0"))
        while len(self.buffer) < length:
            self.buffer += self.recv()
        body, self.buffer = self.buffer[:length], self.buffer[length:]
        return Received(method, target, headers, body, self.number)

    def recv(self) -> bytes:
        """Return the next bytes received; raise _Gone at the end, when stopping or dropped."""
        while not (self.server._stopping.is_set() or self.drop.is_set()):
            try:
                data = self.sock.recv(65536)
            except TimeoutError:
                continue
            if not data:
                raise _Gone
            return data
        raise _Gone

    def send(self, data: bytes) -> None:
        view = memoryview(data)
        while view:
            if self.server._stopping.is_set():
                raise _Gone
            try:
                view = view[self.sock.send(view) :]
            except TimeoutError:
                continue


def _reset(sock: socket.socket) -> None:
    """Close `sock` with a reset (RST) rather than an orderly FIN."""
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    except OSError:
        pass
    sock.close()


class ScriptedServer:
    """An HTTP/1.1 server on 127.0.0.1 (port 0) answering from a script; see the module doc."""

    def __init__(self) -> None:
        self.requests: list[Received] = []
        self.connections = 0
        self._answers: list[Answer] = []
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._open: list[_Connection] = []
        self._listener = socket.create_server(("127.0.0.1", 0))
        self._listener.settimeout(_POLL_S)
        self.port: int = self._listener.getsockname()[1]
        self._acceptor = threading.Thread(target=self._accept, name="wire-accept", daemon=True)
        self._acceptor.start()

    @property
    def target(self) -> str:
        """host:port, as the Caller names it in its messages."""
        return f"127.0.0.1:{self.port}"

    def url(self, path: str = "/") -> str:
        return f"http://{self.target}{path}"

    def add(
        self,
        *,
        status: int = 200,
        payload: Any = None,
        body: str | bytes | None = None,
        headers: dict[str, str] | None = None,
        content_type: str | None = None,
        close: bool = False,
    ) -> None:
        """Queue a proper response: `payload` as JSON, or `body`; `close` closes the
        connection after it without saying so (no `Connection: close`)."""
        if payload is not None:
            body, content_type = json.dumps(payload), content_type or "application/json"
        data = body.encode() if isinstance(body, str) else body or b""
        all_headers = dict(headers or {})
        if content_type is not None:
            all_headers["Content-Type"] = content_type
        self.push(Raw(response(status, data, all_headers), close=close))

    def push(self, answer: Answer) -> None:
        """Queue any answer."""
        with self._lock:
            self._answers.append(answer)

    def reset_idle(self) -> None:
        """Reset every connection waiting for its next request, and wait until they are gone
        (a server dropping idle keep-alive connections without telling the client)."""
        with self._lock:
            dropping = list(self._open)
        for connection in dropping:
            connection.drop.set()
            connection.wake(socket.SHUT_RD)  # sends nothing: the thread sends the reset
        for connection in dropping:
            connection.thread.join(_JOIN_S)

    def close(self) -> None:
        """Stop accepting, close every connection and join every thread."""
        self._stopping.set()
        try:
            self._listener.shutdown(socket.SHUT_RDWR)  # wakes accept() at once on Linux
        except OSError:
            pass
        self._acceptor.join(_JOIN_S)
        self._listener.close()
        with self._lock:
            connections = list(self._open)
        for connection in connections:
            connection.wake(socket.SHUT_RDWR)
        threads = [c.thread for c in connections]
        for thread in threads:
            thread.join(_JOIN_S)
        alive = [t.name for t in (self._acceptor, *threads) if t.is_alive()]
        if alive:
            raise RuntimeError(f"server threads still running after close: {alive}")

    def __enter__(self) -> ScriptedServer:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()

    def _accept(self) -> None:
        while not self._stopping.is_set():
            try:
                sock, _ = self._listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            with self._lock:
                self.connections += 1
                connection = _Connection(self, sock, self.connections)
                self._open.append(connection)
            connection.thread.start()

    def _record(self, received: Received) -> None:
        with self._lock:
            self.requests.append(received)

    def _next_answer(self) -> Answer:
        with self._lock:
            if not self._answers:
                return Raw(response(500, b"no answer queued"), close=True)
            return self._answers.pop(0) if len(self._answers) > 1 else self._answers[0]


@contextmanager
def unaccepting_port(fillers: int = 3) -> Iterator[int]:
    """Yield the port of a listening socket whose backlog (listen(0)) is filled with
    connections that are never accepted, so that a further connect usually hangs until its
    timeout (Linux drops the SYN while the accept queue is full)."""
    listener = socket.create_server(("127.0.0.1", 0), backlog=0)
    port = listener.getsockname()[1]
    filling = [socket.socket() for _ in range(fillers)]
    try:
        for sock in filling:
            sock.setblocking(False)
            sock.connect_ex(("127.0.0.1", port))
        time.sleep(0.05)  # let the handshakes that fit complete
        yield port
    finally:
        for sock in filling:
            sock.close()
        listener.close()


@contextmanager
def refusing_port() -> Iterator[int]:
    """Yield a port of 127.0.0.1 that refuses connections: bound (so no one else takes it)
    but not listening."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        yield sock.getsockname()[1]
