"""schemathesis against a real gunicorn: every /api operation, valid and invalid input, no 5xx.

Each operation gets a bounded number of generated requests in both generation modes
(positive: valid by the schema; negative: invalid on purpose), plus requests pinned to a job
that exists, so the happy paths are fuzzed too. Checks: no server error, and every answer's
status, content type and body conform to /openapi.json.
"""

from __future__ import annotations

import collections
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
import schemathesis
from hypothesis import HealthCheck
from hypothesis import given
from hypothesis import settings
from hypothesis import strategies as st
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import content_type_conformance
from schemathesis.specs.openapi.checks import response_schema_conformance
from schemathesis.specs.openapi.checks import status_code_conformance

from tests.e2e.conftest import new_token
from tests.e2e.procs import Server
from tests.e2e.procs import start_gunicorn

pytestmark = pytest.mark.e2e

EXAMPLES_PER_OPERATION = 25
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
]
ADMIN = "e2e-admin-" + "0123456789abcdef"
SEED_JOBS = ("fast", "slow", "boom")
# Answered by gunicorn itself (limit_request_line 4094 bytes), in HTML, before the app runs.
GUNICORN_LIMITS = (414, 431)


@pytest.fixture(scope="module")
def api_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    workdir: Path = tmp_path_factory.mktemp("schemathesis")
    server = start_gunicorn(
        workdir, f"sqlite:///{workdir / 'gateway.db'}", new_token(), GATEWAY_ADMIN_TOKEN=ADMIN
    )
    try:
        for name in SEED_JOBS:
            job = {
                "name": name,
                "url": f"/crons/{name}",
                "schedule": "*/5 * * * *",
                "tags": ["e2e"],
            }
            created = server.call("/api/jobs", json=job, headers=_auth())
            assert created.status_code == 201, created.text
        yield server
    finally:
        server.proc.stop()
        print(server.proc.report(3000))


def _auth() -> dict[str, str]:
    return {"Authorization": f"Bearer {ADMIN}"}


def test_no_operation_answers_5xx_or_off_schema(api_server: Server) -> None:
    schema = schemathesis.openapi.from_url(api_server.url + "/openapi.json")
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) >= 17
    session = requests.Session()
    tally: collections.Counter[int] = collections.Counter()
    started = time.monotonic()
    for operation in operations:
        strategies = [
            operation.as_strategy(generation_mode=mode, headers=_auth()) for mode in GenerationMode
        ]
        if "{name}" in operation.path and operation.path.startswith("/api/jobs/"):
            pinned = {"name": SEED_JOBS[0]}
            strategies.append(operation.as_strategy(path_parameters=pinned, headers=_auth()))

        @settings(
            max_examples=EXAMPLES_PER_OPERATION * len(strategies),
            deadline=None,
            database=None,
            suppress_health_check=list(HealthCheck),
        )
        @given(case=st.one_of(strategies))
        def call(case: Any) -> None:
            response = case.call(base_url=api_server.url, session=session)
            tally[response.status_code] += 1
            if response.status_code in GUNICORN_LIMITS:
                return  # gunicorn refused the request line before the app saw it
            case.validate_response(response, checks=CHECKS)

        call()
    seconds = time.monotonic() - started
    print(f"schemathesis: {sum(tally.values())} requests in {seconds:.1f} s: {dict(tally)}")
    assert not any(status >= 500 for status in tally)
    assert tally[200] + tally[201] + tally[202] > 0, (
        "no request succeeded: the fuzz saw only errors"
    )
