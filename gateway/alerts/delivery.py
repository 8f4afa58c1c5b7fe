"""Deliver alerts: a Slack-compatible webhook POST and/or an e-mail, retried with backoff.

Every attempt is recorded on the alert (attempts, last_error, then delivered_at), and the next
one is due 1, 2, 4 … seconds later, at most an hour apart, until MAX_ATTEMPTS.
"""

from __future__ import annotations

import logging
import smtplib
from datetime import datetime
from datetime import timedelta
from email.message import EmailMessage
from typing import Any
from urllib.parse import unquote
from urllib.parse import urlsplit

import requests

from gateway import tokens
from gateway.config import Settings
from gateway.store.models import Alert
from gateway.store.models import Job

logger = logging.getLogger("gateway.alerts")

MAX_BACKOFF = timedelta(hours=1)
MAX_ATTEMPTS = 48  # about two days of hourly attempts after the first hour
CLAIM = timedelta(minutes=2)  # an attempt in progress: no other gateway takes the alert
TIMEOUT_S = 10.0
ICONS = {
    "failure": ":red_circle:",
    "late": ":alarm_clock:",
    "recovery": ":large_green_circle:",
    "too_fast": ":warning:",
    "too_slow": ":warning:",
    "too_often": ":warning:",
}


class DeliveryError(Exception):
    """A channel refused or could not be reached; the message is safe to store."""


def has_channel(settings: Settings) -> bool:
    return bool(settings.alert_webhook or settings.alert_smtp)


def backoff(attempts: int) -> timedelta:
    """Return the wait after `attempts` failed attempts: 1, 2, 4 … seconds, at most an hour."""
    return min(MAX_BACKOFF, timedelta(seconds=2 ** min(attempts - 1, 20)))


def deliver_due(
    settings: Settings, now: datetime, *, session: requests.Session | None = None
) -> int:
    """Attempt every alert whose next attempt is due; return how many were delivered."""
    due = list(
        Alert.select(Alert.id, Alert.next_attempt_at)
        .where(Alert.next_attempt_at <= now)
        .order_by(Alert.next_attempt_at)
        .limit(100)
    )
    delivered = 0
    for row in due:
        # Claim the attempt: of two gateways, only the one whose update matched sends it.
        claimed = (
            Alert.update(next_attempt_at=now + CLAIM)
            .where((Alert.id == row.id) & (Alert.next_attempt_at == row.next_attempt_at))
            .execute()
        )
        if claimed:
            delivered += attempt(Alert.get_by_id(row.id), settings, now, session)
    return delivered


def attempt(alert: Alert, settings: Settings, now: datetime, session: Any = None) -> bool:
    """Send `alert` on every configured channel once and record the outcome."""
    job = Job.get_by_id(alert.job_id)
    alert.attempts += 1
    try:
        if settings.alert_webhook:
            post_webhook(settings.alert_webhook, slack_payload(alert, job.name), session)
        if settings.alert_smtp:
            send_email(settings, alert, job.name)
    except DeliveryError as e:
        alert.last_error = str(e)
        if alert.attempts >= MAX_ATTEMPTS:
            alert.next_attempt_at = None
            alert.last_error = f"gave up after {alert.attempts} attempts: {e}"
        else:
            alert.next_attempt_at = now + backoff(alert.attempts)
        logger.warning("alert %d (%s, job %s) not delivered: %s", alert.id, alert.kind, job.name, e)
        alert.save()
        return False
    alert.delivered_at, alert.next_attempt_at, alert.last_error = now, None, None
    alert.save()
    logger.info("alert %d (%s, job %s) delivered", alert.id, alert.kind, job.name)
    return True


def slack_payload(alert: Alert, job: str) -> dict[str, Any]:
    """Return Slack's incoming-webhook JSON: `text` (the fallback) and `blocks`."""
    icon = ICONS.get(alert.kind, ":bell:")
    text = f"{icon} {alert.message}"
    context = f"*{alert.kind}* · job `{job}` · {alert.opened_at.isoformat()}"
    return {
        "text": text,
        "blocks": [
            {"type": "section", "text": {"type": "mrkdwn", "text": text}},
            {"type": "context", "elements": [{"type": "mrkdwn", "text": context}]},
        ],
    }


def post_webhook(url: str, payload: dict[str, Any], session: Any = None) -> None:
    """POST `payload` as JSON; raise DeliveryError unless the answer is 2xx."""
    sender = session or requests
    try:
        response = sender.post(url, json=payload, timeout=TIMEOUT_S)
    except requests.RequestException as e:
        # requests' messages quote the URL, and a webhook URL is a secret: name the error only.
        raise DeliveryError(f"webhook unreachable ({type(e).__name__})") from None
    if not 200 <= response.status_code < 300:
        body = tokens.redact(response.text[:200], (url, urlsplit(url).path))
        raise DeliveryError(f"webhook answered {response.status_code}: {body}".strip())


def send_email(settings: Settings, alert: Alert, job: str) -> None:
    """Send the alert by SMTP (smtp:// with STARTTLS when offered, or smtps://)."""
    assert settings.alert_smtp is not None
    parts = urlsplit(settings.alert_smtp)
    message = EmailMessage()
    message["Subject"] = f"[cron gateway] {alert.kind}: {job}"
    message["From"] = settings.alert_from
    message["To"] = ", ".join(settings.alert_to)
    message.set_content(f"{alert.message}\n\nopened at {alert.opened_at.isoformat()}\n")
    secure = parts.scheme == "smtps"
    port = parts.port or (465 if secure else 25)
    host = parts.hostname or "localhost"
    try:
        with (smtplib.SMTP_SSL if secure else smtplib.SMTP)(host, port, timeout=TIMEOUT_S) as smtp:
            if not secure:
                smtp.ehlo()
                if smtp.has_extn("starttls"):
                    smtp.starttls()
            if parts.username:
                smtp.login(unquote(parts.username), unquote(parts.password or ""))
            smtp.send_message(message)
    except (OSError, smtplib.SMTPException) as e:
        raise DeliveryError(f"e-mail not sent ({type(e).__name__})") from None
