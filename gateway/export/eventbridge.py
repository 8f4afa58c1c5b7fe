"""Export jobs as AWS EventBridge Scheduler definitions (CloudFormation or CreateSchedule JSON).

EventBridge cron has six fields, `cron(minutes hours day-of-month month day-of-week year)`,
one of the day fields must be `?`, and day-of-week counts 1-7 from Sunday. A schedule passes
through EventBridge Scheduler → an event bus → a rule → an API destination, whose connection
sends X-Cron-Token from a Secrets Manager secret: the token is never in the template.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from typing import Any

from gateway.export import ExportError
from gateway.export import Rejected
from gateway.export import absolute_url
from gateway.export import compact
from gateway.export import expand
from gateway.export import normalized_fields
from gateway.store.models import Job

SOURCE = "cron-gateway"
DETAIL_TYPE = "cron-gateway.call"
TOKEN_SECRET = "cron-gateway/cron-token"
_STEP_FROM = re.compile(r"^(\*|[0-9]+)/([0-9]+)$")
_NTH = re.compile(r"^([0-9])#([1-5])$")
_LAST = re.compile(r"^([0-9])L$")


def cron_expression(job: Job) -> str:
    """Return the job's schedule as `cron(...)` for EventBridge, or raise ExportError."""
    return f"cron({convert(normalized_fields(job), job.name, job.schedule or '')})"


def convert(fields: Sequence[str], name: str, expr: str) -> str:
    """Return six EventBridge fields for six normalized fields (seconds first)."""
    second, minute, hour, dom, month, dow = fields
    if second != "0":
        raise ExportError(
            f"{name}: EventBridge cannot schedule below one minute "
            f"(seconds field '{second}' in '{expr}')"
        )
    if dom != "*" and dow != "*":
        both = "OR" if not dom.startswith("*") and not dow.startswith("*") else "AND"
        raise ExportError(
            f"{name}: EventBridge cannot express day-of-month {both} day-of-week "
            f"(one of them must be ?; in '{expr}')"
        )
    day_of_month, day_of_week = (
        ("?", _day_of_week(dow)) if dow != "*" else (_plain(dom, 1, 31), "?")
    )
    return " ".join(
        (
            _plain(minute, 0, 59),
            _plain(hour, 0, 23),
            day_of_month,
            _plain(month, 1, 12),
            day_of_week,
            "*",
        )
    )


def _plain(text: str, low: int, high: int) -> str:
    """Return a minute, hour, day-of-month or month field in EventBridge syntax."""
    if text == "*" or text == "L" or text.endswith("W"):
        return text
    if step := _STEP_FROM.match(text):
        start = low if step[1] == "*" else int(step[1])
        return f"{start}/{step[2]}"
    return compact(expand(text, low, high))


def _day_of_week(text: str) -> str:
    """Return a day-of-week field in EventBridge numbering: 1-7 = SUN-SAT (cron 0/7 = SUN)."""
    if nth := _NTH.match(text):
        return f"{int(nth[1]) % 7 + 1}#{nth[2]}"
    if last := _LAST.match(text):
        return f"{int(last[1]) % 7 + 1}L"
    values = sorted({v % 7 + 1 for v in expand(text, 0, 6)})
    return "*" if len(values) == 7 else compact(values)


def schedule_input(job: Job, group: str = "default") -> dict[str, Any]:
    """Return the CreateSchedule input for a job (Target ARNs are placeholders to fill in)."""
    return {
        "Name": f"cron-gateway-{job.name}"[:64],
        "GroupName": group,
        "Description": (job.description or f"Cron Gateway job {job.name}")[:512],
        "ScheduleExpression": cron_expression(job),
        "ScheduleExpressionTimezone": job.tz,
        "FlexibleTimeWindow": {"Mode": "OFF"},
        "State": "ENABLED" if job.enabled else "DISABLED",
        "Target": {
            "Arn": "arn:aws:events:REGION:ACCOUNT:event-bus/cron-gateway",
            "RoleArn": "arn:aws:iam::ACCOUNT:role/cron-gateway-scheduler",
            "EventBridgeParameters": {"Source": SOURCE, "DetailType": DETAIL_TYPE},
            "Input": json.dumps({"job": job.name}),
        },
    }


def _logical_id(name: str) -> str:
    return "".join(part.capitalize() for part in re.split(r"[-_]", name))


def cloudformation(jobs: Sequence[Job], app_url: str) -> dict[str, Any]:
    """Return a CloudFormation template: a connection, a bus, and per job a schedule, a rule
    and an API destination."""
    resources: dict[str, Any] = {
        "Connection": {
            "Type": "AWS::Events::Connection",
            "Properties": {
                "AuthorizationType": "API_KEY",
                "AuthParameters": {
                    "ApiKeyAuthParameters": {
                        "ApiKeyName": "X-Cron-Token",
                        "ApiKeyValue": {
                            "Fn::Sub": "{{resolve:secretsmanager:${TokenSecret}:SecretString}}"
                        },
                    }
                },
            },
        },
        "Bus": {"Type": "AWS::Events::EventBus", "Properties": {"Name": "cron-gateway"}},
    }
    for job in jobs:
        resources.update(_job_resources(job, app_url))
    return {
        "AWSTemplateFormatVersion": "2010-09-09",
        "Description": "Cron Gateway jobs on EventBridge Scheduler (python -m gateway export)",
        "Parameters": {
            "TokenSecret": {
                "Type": "String",
                "Default": TOKEN_SECRET,
                "Description": "Secrets Manager secret whose SecretString is the cron token",
            },
            "SchedulerRoleArn": {"Type": "String", "Description": "Role allowed events:PutEvents"},
            "RuleRoleArn": {"Type": "String", "Description": "Role allowed InvokeApiDestination"},
        },
        "Resources": resources,
    }


def _job_resources(job: Job, app_url: str) -> dict[str, Any]:
    base = _logical_id(job.name)
    schedule = schedule_input(job)
    target = {
        **schedule["Target"],
        "Arn": {"Fn::GetAtt": ["Bus", "Arn"]},
        "RoleArn": {"Ref": "SchedulerRoleArn"},
    }
    body = json.dumps(job.payload if job.payload is not None else {})
    return {
        f"{base}Destination": {
            "Type": "AWS::Events::ApiDestination",
            "Properties": {
                "ConnectionArn": {"Fn::GetAtt": ["Connection", "Arn"]},
                "InvocationEndpoint": absolute_url(job, app_url),
                "HttpMethod": job.method,
            },
        },
        f"{base}Rule": {
            "Type": "AWS::Events::Rule",
            "Properties": {
                "EventBusName": {"Ref": "Bus"},
                "EventPattern": {
                    "source": [SOURCE],
                    "detail-type": [DETAIL_TYPE],
                    "detail": {"job": [job.name]},
                },
                "Targets": [
                    {
                        "Id": "endpoint",
                        "Arn": {"Fn::GetAtt": [f"{base}Destination", "Arn"]},
                        "RoleArn": {"Ref": "RuleRoleArn"},
                        "Input": body,
                        "HttpParameters": {"HeaderParameters": dict(job.headers or {})},
                    }
                ],
            },
        },
        f"{base}Schedule": {
            "Type": "AWS::Scheduler::Schedule",
            "Properties": {
                **{k: v for k, v in schedule.items() if k not in ("Target", "GroupName")},
                "Target": target,
            },
        },
    }


def export_eventbridge(
    jobs: Sequence[Job], app_url: str, *, fmt: str
) -> tuple[Any, list[Rejected]]:
    """Return the document for `fmt` (json | cloudformation) and the jobs left out (those
    whose schedule EventBridge cannot express)."""
    kept: list[Job] = []
    rejected: list[Rejected] = []
    for job in jobs:
        try:
            cron_expression(job)
        except ExportError as e:
            rejected.append(Rejected(job.name, str(e)))
            continue
        kept.append(job)
    if fmt == "cloudformation":
        return cloudformation(kept, app_url), rejected
    return [schedule_input(job) for job in kept], rejected
