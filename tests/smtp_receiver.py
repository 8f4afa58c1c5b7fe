"""SmtpReceiver: a small real SMTP server on 127.0.0.1 that keeps the messages it is sent.

Enough of RFC 5321 for smtplib: EHLO (advertising AUTH PLAIN), AUTH PLAIN, MAIL, RCPT, DATA
(dot-unstuffed), RSET, NOOP, QUIT. No TLS, so the client's STARTTLS is never offered.
"""

from __future__ import annotations

import base64
import socketserver
import threading
from dataclasses import dataclass
from dataclasses import field
from email import message_from_bytes
from email.message import Message
from typing import Any


@dataclass
class Received:
    sender: str
    recipients: list[str]
    message: Message
    login: str | None


@dataclass
class SmtpReceiver:
    password: str = "mail-password"
    messages: list[Received] = field(default_factory=list)

    def __post_init__(self) -> None:
        receiver = self

        class Handler(socketserver.StreamRequestHandler):
            def handle(self) -> None:
                receiver._session(self.rfile, self.wfile)

        self._server = socketserver.ThreadingTCPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self.port = self._server.server_address[1]
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    def __enter__(self) -> SmtpReceiver:
        self._thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(5)

    def _session(self, rfile: Any, wfile: Any) -> None:
        def say(line: str) -> None:
            wfile.write(line.encode() + b"\r\n")
            wfile.flush()

        say("220 receiver ESMTP")
        sender, recipients, login = "", [], None
        while line := rfile.readline():
            verb, _, arg = line.decode().strip().partition(" ")
            verb = verb.upper()
            if verb == "EHLO":
                say("250-receiver")
                say("250 AUTH PLAIN")
            elif verb == "AUTH":
                _, _, encoded = arg.partition(" ")
                _, user, password = base64.b64decode(encoded).decode().split("\0")
                if password != self.password:
                    say("535 authentication failed")
                    continue
                login = user
                say("235 ok")
            elif verb == "MAIL":
                sender, recipients = arg.split(":", 1)[1].strip("<> "), []
                say("250 ok")
            elif verb == "RCPT":
                recipients.append(arg.split(":", 1)[1].strip("<> "))
                say("250 ok")
            elif verb == "DATA":
                say("354 go on")
                body = b""
                while (chunk := rfile.readline()) not in (b".\r\n", b""):
                    body += chunk[1:] if chunk.startswith(b"..") else chunk
                self.messages.append(Received(sender, recipients, message_from_bytes(body), login))
                say("250 queued")
            elif verb == "QUIT":
                say("221 bye")
                return
            else:  # RSET, NOOP, HELO
                say("250 ok")
