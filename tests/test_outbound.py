"""Outbound safety: the decision tables (resolver faked), and real calls to 127.0.0.1 only."""

from __future__ import annotations

import ipaddress
import random
import socket
import time
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import certifi
import pycurl
import pytest
from flask import Flask
from flask import request

from gateway import outbound
from gateway.config import Settings
from gateway.outbound import Guard
from gateway.outbound import TargetRefusedError
from gateway.outbound import guarded_pools
from gateway.scheduler.caller import Caller
from gateway.scheduler.caller import CallRequest
from gateway.scheduler.loop import LoopSettings
from gateway.scheduler.loop import Scheduler
from gateway.store.models import Gateway
from gateway.store.models import Job
from gateway.store.models import Run
from gateway.store.runs import enqueue
from tests.conftest import CRON_TOKEN
from tests.fakes import FakeClock
from tests.servers import serving
from tests.wire_server import ScriptedServer

DATA = Path(__file__).parent / "data"


@pytest.mark.parametrize(
    ("host", "normal"),
    [
        ("2130706433", "127.0.0.1"),
        ("0x7f.1", "127.0.0.1"),
        ("0x7f000001", "127.0.0.1"),
        ("0177.0.0.1", "127.0.0.1"),
        ("127.1", "127.0.0.1"),
        ("10.1", "10.0.0.1"),
        ("0", "0.0.0.0"),
        ("3232235777", "192.168.1.1"),
        ("0xa9.0xfe.0xa9.0xfe", "169.254.169.254"),
        ("[::1]", "::1"),
        ("[0:0:0:0:0:FFFF:7F00:1]", "::ffff:7f00:1"),
        ("Example.COM.", "example.com"),
        ("256.1.1.1", "256.1.1.1"),  # not an address: a name the resolver will refuse
        ("1.2.3.4.5", "1.2.3.4.5"),
        ("1e100.net", "1e100.net"),
        ("08.1.1.1", "08.1.1.1"),  # 8 is no octal digit
    ],
)
def test_numeric_forms_are_read_as_inet_aton_reads_them(host: str, normal: str) -> None:
    assert outbound.normalize_host(host) == normal


@pytest.mark.parametrize(
    ("address", "kind"),
    [
        ("8.8.8.8", None),
        ("2001:4860:4860::8888", None),
        ("10.0.0.5", "private"),
        ("172.16.0.1", "private"),
        ("192.168.1.1", "private"),
        ("127.0.0.1", "loopback"),
        ("127.255.0.9", "loopback"),
        ("169.254.169.254", "link-local"),  # cloud metadata
        ("224.0.0.1", "multicast"),
        ("0.0.0.0", "unspecified"),
        ("240.0.0.1", "private"),  # reserved, which Python counts as private first
        ("255.255.255.255", "private"),
        ("100.64.0.1", "non-public"),  # carrier-grade NAT
        ("::1", "loopback"),
        ("::", "unspecified"),
        ("fe80::1", "link-local"),
        ("fd00:ec2::254", "private"),  # AWS metadata over IPv6 (fc00::/7)
        ("fc00::1", "private"),
        ("ff02::1", "multicast"),
        ("::ffff:10.0.0.5", "private"),  # IPv4-mapped
        ("::ffff:127.0.0.1", "loopback"),
        ("::ffff:8.8.8.8", None),
        ("64:ff9b::a9fe:a9fe", "link-local"),  # NAT64
        ("2002:7f00:1::1", "loopback"),  # 6to4
        ("::127.0.0.1", "reserved"),  # IPv4-compatible (deprecated)
        ("2001:db8::1", "private"),  # documentation
    ],
)
def test_address_kinds(address: str, kind: str | None) -> None:
    assert outbound.address_kind(ipaddress.ip_address(address)) == kind


def fake_resolver(table: dict[str, list[str]]) -> outbound.Resolver:
    def resolve(host: str, port: int) -> list[str]:
        return table[host]

    return resolve


DNS = {
    "app.example.com": ["93.184.216.34"],
    "public.example.org": ["93.184.216.34", "2606:2800:220:1::1"],
    "evil.example.org": ["10.0.0.5"],
    "metadata.example.org": ["169.254.169.254"],
    "mixed.example.org": ["93.184.216.34", "127.0.0.1"],  # a rebinding answer
    "internal.corp": ["10.1.2.3"],
    "api.svc.corp": ["10.9.9.9"],
    "localhost": ["::1", "127.0.0.1"],
}
PRIVATE = "is a private address; add the host to GATEWAY_ALLOWED_TARGETS to allow it"
NOT_ALLOWED = "is not an allowed target"


@pytest.mark.parametrize(
    ("targets", "host", "expected"),
    [
        (("app.example.com",), "app.example.com", ["93.184.216.34"]),
        (("app.example.com",), "APP.example.com.", ["93.184.216.34"]),
        (("app.example.com",), "public.example.org", NOT_ALLOWED),
        (("*.example.org",), "public.example.org", ["93.184.216.34", "2606:2800:220:1::1"]),
        (("*.example.org",), "example.org", NOT_ALLOWED),
        (("*",), "public.example.org", ["93.184.216.34", "2606:2800:220:1::1"]),
        (("*",), "evil.example.org", f"target 10.0.0.5 {PRIVATE}"),
        (("*",), "metadata.example.org", "target 169.254.169.254 is a link-local address"),
        (("*",), "mixed.example.org", "target 127.0.0.1 is a loopback address"),
        (("*",), "10.0.0.5", f"target 10.0.0.5 {PRIVATE}"),
        (("*",), "2130706433", "target 127.0.0.1 is a loopback address"),
        (("*",), "0x7f.1", "target 127.0.0.1 is a loopback address"),
        (("*",), "[::ffff:169.254.169.254]", "link-local address"),
        (("*",), "[fe80::1]", "target fe80::1 is a link-local address"),
        (("*",), "0", "target 0.0.0.0 is an unspecified address"),
        (("*", "10.0.0.5"), "10.0.0.5", ["10.0.0.5"]),  # an address listed by itself
        (("*", "10.1.2.3"), "internal.corp", ["10.1.2.3"]),
        (("internal.corp",), "internal.corp", ["10.1.2.3"]),  # listed by name: allowed
        (("*.svc.corp",), "api.svc.corp", ["10.9.9.9"]),  # listed by pattern: allowed
        (("127.0.0.1",), "2130706433", ["127.0.0.1"]),  # the same address, spelled otherwise
        (("127.0.0.1",), "0x7f.1", ["127.0.0.1"]),
        (("127.0.0.1",), "127.0.0.2", NOT_ALLOWED),
        (("2130706433",), "127.0.0.1", ["127.0.0.1"]),
        (("localhost",), "localhost", ["::1", "127.0.0.1"]),
        (("127.0.0.1",), "localhost", NOT_ALLOWED),
        (("[::1]",), "[::1]", ["::1"]),
        ((), "app.example.com", NOT_ALLOWED),
    ],
)
def test_the_guard_decides_by_host_then_by_every_resolved_address(
    targets: tuple[str, ...], host: str, expected: list[str] | str
) -> None:
    guard = Guard(targets, fake_resolver(DNS))
    if isinstance(expected, list):
        assert guard.addresses(host, 443) == expected
    else:
        with pytest.raises(TargetRefusedError, match=expected.replace(".", r"\.")):
            guard.addresses(host, 443)


def test_the_default_guard_allows_the_apps_own_host(settings: Settings) -> None:
    guard = outbound.guard_for(replace(settings, app_url="http://localhost:8000"))
    assert guard.targets == ("localhost",)
    both = replace(settings, app_url="http://127.0.0.1:1", allowed_targets=("*.example.com",))
    assert outbound.guard_for(both).targets == ("*.example.com", "127.0.0.1")


# --- real calls, to 127.0.0.1 only ------------------------------------------------------------


@pytest.fixture
def local_url() -> Iterator[str]:
    app = Flask("target")

    @app.route("/ping", methods=["GET", "POST"])
    def ping() -> Any:
        return {"host": request.host}

    with serving(app) as url:
        yield url


def call(guard: Guard, url: str) -> Any:
    caller = Caller(guarded_pools(guard))
    try:
        return caller.call(CallRequest("GET", url, timeout_s=5))
    finally:
        caller.close()


def test_a_listed_loopback_target_is_called(local_url: str) -> None:
    outcome = call(Guard(("127.0.0.1",)), f"{local_url}/ping")
    assert (outcome.status, outcome.http_status) == ("success", 200)
    port = local_url.rsplit(":", 1)[1]
    decimal = call(Guard(("127.0.0.1",)), f"http://2130706433:{port}/ping")
    assert decimal.http_status == 200


def test_a_loopback_target_allowed_only_by_star_is_refused(local_url: str) -> None:
    outcome = call(Guard(("*",)), f"{local_url}/ping")
    assert (outcome.status, outcome.kind, outcome.http_status) == (
        "error",
        "invalid_request",  # final: retrying will not change the answer
        None,
    )
    assert outcome.error == (
        "target 127.0.0.1 is a loopback address; add the host to GATEWAY_ALLOWED_TARGETS "
        "to allow it"
    )


def test_every_new_connection_is_checked_again(local_url: str) -> None:
    # A rebinding name: first it resolves to the listed 127.0.0.1, then somewhere private.
    answers = iter([["127.0.0.1"], ["10.0.0.5"]])
    guard = Guard(("*", "127.0.0.1"), lambda host, port: next(answers))
    port = local_url.rsplit(":", 1)[1]
    caller = Caller(outbound.Pools(guard=guard, resolve_seconds=0))
    call_request = CallRequest("GET", f"http://rebind.test:{port}/ping", {"Connection": "close"})
    try:
        first = caller.call(call_request)
        second = caller.call(call_request)
    finally:
        caller.close()
    assert first.http_status == 200 and f'"host":"rebind.test:{port}"' in str(
        first.response_excerpt
    )
    assert second.error == f"target 10.0.0.5 {PRIVATE}"


def test_proxies_from_the_environment_are_not_used(
    local_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HTTP_PROXY", "http://10.0.0.5:3128")
    monkeypatch.delenv("NO_PROXY", raising=False)
    monkeypatch.delenv("no_proxy", raising=False)
    assert call(Guard(("127.0.0.1",)), f"{local_url}/ping").http_status == 200


def test_the_gateway_refuses_a_target_outside_the_allowed_hosts(
    settings: Settings, clock: FakeClock, local_url: str
) -> None:
    scheduler = Scheduler(
        replace(settings, app_url=local_url),
        CRON_TOKEN,
        clock=clock,
        pacing=LoopSettings(workers=2, per_host=2),
        rng=random.Random(3),
    )
    Gateway.create(
        instance=scheduler.instance, host="h", pid=1, started_at=clock.now(), seen_at=clock.now()
    )
    now = clock.now()
    far = Job.create(name="far", url="http://10.0.0.5/x", created_at=now, updated_at=now)
    here = Job.create(name="here", url=f"{local_url}/ping", created_at=now, updated_at=now)
    for job in (far, here):
        enqueue(job, "manual", now)
    try:
        scheduler.run_once()
        assert scheduler.drain(10)
    finally:
        scheduler.dispatcher.close()
    runs = {r.job.name: r for r in Run.select().where(Run.attempt == 1)}
    assert (runs["here"].status, runs["here"].http_status) == ("success", 200)
    assert runs["far"].status == "error" and runs["far"].error == (
        "host '10.0.0.5' is not an allowed target (127.0.0.1); "
        "add it to GATEWAY_ALLOWED_TARGETS to allow it"
    )
    assert Run.select().where(Run.attempt > 1).count() == 0  # a refusal is final


TLS = (str(DATA / "tls-cert.pem"), str(DATA / "tls-key.pem"))  # self-signed, 127.0.0.1


@pytest.fixture
def tls_url() -> Iterator[str]:
    app = Flask("tls-target")
    app.add_url_rule("/ping", "ping", lambda: {"tls": True})
    with serving(app, TLS) as url:
        yield url


def test_https_certificates_are_verified_against_certifi(tls_url: str) -> None:
    pools = guarded_pools(Guard(("127.0.0.1",)))
    assert pools.ca_file == certifi.where()
    caller = Caller(pools)
    try:
        outcome = caller.call(CallRequest("GET", f"{tls_url}/ping", timeout_s=5))
    finally:
        caller.close()
    port = tls_url.rsplit(":", 1)[1]
    assert (outcome.kind, outcome.http_status) == ("connection_error", None)
    assert outcome.error is not None
    assert outcome.error.startswith(f"TLS error with 127.0.0.1:{port}: self")  # -signed …


def test_an_https_certificate_is_checked_for_the_hosts_name_not_its_address(
    tls_url: str,
) -> None:
    port = tls_url.rsplit(":", 1)[1]
    guard = Guard(("other.test",), lambda host, port: ["127.0.0.1"])  # resolves, not named
    caller = Caller(guarded_pools(guard, ca_file=TLS[0]))
    try:
        outcome = caller.call(CallRequest("GET", f"https://other.test:{port}/ping", timeout_s=5))
    finally:
        caller.close()
    assert outcome.error is not None and "other.test" in outcome.error
    assert outcome.error.startswith(
        f"TLS error with other.test:{port}: no alternative certificate subject name matches"
    )


def test_an_https_call_to_a_trusted_certificate_succeeds_again_and_again(
    tls_url: str,
) -> None:
    # As if the test certificate were a public one.
    caller = Caller(guarded_pools(Guard(("127.0.0.1",)), ca_file=TLS[0]))
    try:
        first = caller.call(CallRequest("GET", f"{tls_url}/ping", timeout_s=5))
        second = caller.call(CallRequest("GET", f"{tls_url}/ping", timeout_s=5))
    finally:
        caller.close()
    assert (first.status, first.http_status, second.http_status) == ("success", 200, 200)
    assert first.response_excerpt is not None and '"tls":true' in first.response_excerpt


# --- the pools: bounded, never an old or closed connection ------------------------------------


def test_a_thread_keeps_at_most_max_connections() -> None:
    pools = outbound.Pools(max_connections=2)
    caller = Caller(pools)
    with ScriptedServer() as first, ScriptedServer() as second, ScriptedServer() as third:
        try:
            for server in (first, second, third, first, third):
                server.add(payload={"status": "success"})
                assert caller.call(CallRequest("GET", server.url("/x"))).http_status == 200
        finally:
            caller.close()
        # first's connection was the oldest when third's was opened: closed, not kept
        assert [s.connection for s in first.requests] == [1, 2]
        assert [s.connection for s in third.requests] == [1, 1]


def test_an_idle_connection_past_idle_seconds_is_not_used() -> None:
    caller = Caller(outbound.Pools(idle_seconds=1))  # libcurl counts whole seconds
    with ScriptedServer() as server:
        try:
            for pause in (0.0, 1.2):
                server.add(payload={"status": "success"})
                time.sleep(pause)
                assert caller.call(CallRequest("GET", server.url("/x"))).http_status == 200
        finally:
            caller.close()
        assert [s.connection for s in server.requests] == [1, 2]


def test_the_socket_check_compares_addresses_not_their_spelling() -> None:
    mapped = outbound.SocketOpener(("::ffff:7f00:1",))  # Python's spelling; libcurl's below
    port = 80
    opened = mapped(0, (socket.AF_INET6, socket.SOCK_STREAM, 6, ("::ffff:127.0.0.1", port, 0, 0)))
    try:
        assert opened is not pycurl.SOCKET_BAD
        assert (
            mapped(0, (socket.AF_INET, socket.SOCK_STREAM, 6, ("10.0.0.5", port)))
            is pycurl.SOCKET_BAD
        )
    finally:
        mapped.close()
