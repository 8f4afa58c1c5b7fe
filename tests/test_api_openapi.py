"""/openapi.json stays true: every /api route is documented, every documented path is served."""

from __future__ import annotations

import re
from typing import Any

from flask import Flask
from flask.testing import FlaskClient

from gateway.api.openapi import openapi_document
from gateway.api.schemas import JOB_FIELDS
from gateway.jobspec import FIELDS


def _served(app: Flask) -> set[tuple[str, str]]:
    found = set()
    for rule in app.url_map.iter_rules():
        if not rule.rule.startswith("/api"):
            continue
        path = re.sub(r"<(?:[a-z]+:)?([a-z_]+)>", r"{\1}", rule.rule)
        found |= {(path, m.lower()) for m in rule.methods or () if m not in ("HEAD", "OPTIONS")}
    return found


def _documented(document: dict[str, Any]) -> set[tuple[str, str]]:
    return {(path, method) for path, ops in document["paths"].items() for method in ops}


def test_every_api_route_is_documented_and_every_documented_path_served(app: Flask) -> None:
    document = openapi_document()
    served, documented = _served(app), _documented(document)
    assert served - documented == set(), "routes missing from /openapi.json"
    assert documented - served == set(), "documented operations without a route"


def test_every_reference_resolves_and_path_parameters_are_declared() -> None:
    document = openapi_document()
    components = document["components"]
    text = repr(document)
    for kind, name in re.findall(r"#/components/(\w+)/(\w+)", text):
        assert name in components[kind], f"{kind}/{name} is referenced but not defined"
    for path, ops in document["paths"].items():
        names = set(re.findall(r"{(\w+)}", path))
        for method, op in ops.items():
            declared = {p["name"] for p in op.get("parameters", []) if p["in"] == "path"}
            assert declared == names, f"{method} {path}: path parameters {declared} != {names}"
            assert any(code.startswith("2") for code in op["responses"]), f"{method} {path}"
            assert {"400", "401", "403", "500"} <= set(op["responses"]), f"{method} {path}"


def test_openapi_json_is_served_without_a_token(client: FlaskClient) -> None:
    response = client.get("/openapi.json")
    assert response.status_code == 200 and response.json["openapi"].startswith("3.1")
    assert response.json == openapi_document()


def test_every_job_field_validate_job_knows_has_a_typed_schema() -> None:
    assert set(FIELDS) <= set(JOB_FIELDS), "add the new job field to gateway/api/schemas.py"
