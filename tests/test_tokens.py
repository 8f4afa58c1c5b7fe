"""Tokens: generated, hashed, compared, and redacted from text and gunicorn's access log."""

from __future__ import annotations

import logging

from gateway import tokens
from gateway.logs import RedactingFilter


def test_generated_tokens_are_long_random_and_prefixed() -> None:
    a, b = tokens.generate(), tokens.generate()
    assert a != b and a.startswith("cg_") and len(a) >= 40
    assert tokens.same(a, a) and not tokens.same(a, b)
    assert tokens.hash_token(a) != a and len(tokens.hash_token(a)) == 64


def test_redact_removes_query_tokens_bearer_tokens_and_known_secrets() -> None:
    text = "GET /crons/x?a=1&cronToken=abc123&b=2 Authorization: Bearer xyz.789 and s3cr3t"
    clean = tokens.redact(text, ("s3cr3t",))
    for secret in ("abc123", "xyz.789", "s3cr3t"):
        assert secret not in clean
    assert "a=1" in clean and "b=2" in clean


def test_the_log_filter_redacts_formatted_messages() -> None:
    record = logging.LogRecord(
        "x", logging.INFO, __file__, 1, "calling %s", ("/c?cronToken=t0k",), None
    )
    RedactingFilter().filter(record)
    assert "t0k" not in record.getMessage()
