"""Job, Run, Key, Lease, Gateway, Alert: fields and indexes, nothing else."""

from __future__ import annotations

from peewee import AutoField
from peewee import BooleanField
from peewee import CharField
from peewee import ForeignKeyField
from peewee import IntegerField
from peewee import Model
from peewee import TextField

from gateway.store.db import database
from gateway.store.fields import JSONField
from gateway.store.fields import UTCDateTimeField

RUN_STATUSES = (
    "queued",
    "dispatched",
    "running",
    "success",
    "error",
    "timeout",
    "skipped",
    "canceled",
    "abandoned",
    "missed",
)
ACTIVE_STATUSES = ("queued", "dispatched", "running")
TRIGGERS = ("schedule", "manual", "external", "retry", "backfill")


class BaseModel(Model):
    class Meta:
        database = database


class Job(BaseModel):
    id = AutoField()
    name = CharField(max_length=100, unique=True)
    title = CharField(max_length=200, default="")
    description = TextField(default="")
    url = CharField(max_length=2000)
    method = CharField(max_length=10, default="POST")
    headers = JSONField(default=dict)  # never secrets: the token is added at call time
    payload = JSONField(null=True)
    schedule = CharField(max_length=256, null=True)  # None: only run on demand
    tz = CharField(max_length=64, default="UTC")
    mode = CharField(max_length=10, default="blocking")  # how the endpoint answers
    enabled = BooleanField(default=True)
    deleted_at = UTCDateTimeField(null=True)
    tags = JSONField(default=list)
    timeout = IntegerField(default=600)  # seconds
    max_attempts = IntegerField(default=1)
    backoff = IntegerField(default=10)  # seconds before the first retry; doubles each time
    overlap = CharField(max_length=10, default="forbid")
    misfire = CharField(max_length=10, default="once")
    catchup_window = IntegerField(default=3600)  # seconds
    max_runs = IntegerField(null=True)
    run_count = IntegerField(default=0)
    next_run_at = UTCDateTimeField(null=True, index=True)
    last_run_at = UTCDateTimeField(null=True, index=True)  # alert rounds read what changed
    last_status = CharField(max_length=12, null=True)
    consecutive_failures = IntegerField(default=0)
    source = CharField(max_length=10, default="api")  # code | config | api | ui | import
    created_at = UTCDateTimeField()
    updated_at = UTCDateTimeField(index=True)
    # v2
    declared = JSONField(null=True)  # what code or config declared at the last sync
    orphaned_at = UTCDateTimeField(null=True)  # gone from code/config; kept, not deleted
    pause_note = TextField(null=True)
    retry_abandoned = BooleanField(default=False)  # re-send a slot whose run was abandoned
    auto_pause_after = IntegerField(null=True)  # consecutive failures; None: never
    # v3
    signed = BooleanField(default=True)  # the gateway sends X-Cron-Signature to this target
    paused_until = UTCDateTimeField(null=True, index=True)  # a fleet pause that ends by itself
    pause_fate = CharField(max_length=10, null=True)  # slots while paused: missed | once
    # v4: alerts. A watch-only job is never called by the gateway (system cron or EventBridge
    # calls it); its schedule or `expect_every` only says when a success is expected.
    watch_only = BooleanField(default=False)
    expect_every = IntegerField(null=True)  # seconds; None: derived from the schedule
    grace = IntegerField(null=True)  # seconds; None: GATEWAY_ALERT_GRACE
    min_duration_ms = IntegerField(null=True)
    max_duration_ms = IntegerField(null=True)
    late_at = UTCDateTimeField(null=True, index=True)  # the dead-man's switch fires then

    class Meta:
        table_name = "job"


class Run(BaseModel):
    id = AutoField()  # keyset pagination walks this
    execution_id = CharField(max_length=36)  # one per slot execution; attempts share it
    job = ForeignKeyField(Job, backref="runs", on_delete="CASCADE")
    job_id: int  # the column behind `job`, read without a query
    trigger = CharField(max_length=10)
    scheduled_for = UTCDateTimeField(null=True)  # None: no slot (external or ad-hoc call)
    attempt = IntegerField(default=1)
    status = CharField(max_length=12)
    queued_at = UTCDateTimeField()
    dispatched_at = UTCDateTimeField(null=True)
    started_at = UTCDateTimeField(null=True)
    heartbeat_at = UTCDateTimeField(null=True)
    finished_at = UTCDateTimeField(null=True)
    duration_ms = IntegerField(null=True)
    lateness_ms = IntegerField(null=True)
    http_status = IntegerField(null=True)
    summary = JSONField(null=True)
    response_excerpt = TextField(null=True)
    error = TextField(null=True)
    error_stack = TextField(null=True)
    log = TextField(null=True)
    progress_done = IntegerField(null=True)
    progress_total = IntegerField(null=True)
    caller = CharField(max_length=100, null=True)  # key name, never the token
    gateway = CharField(max_length=100, null=True)  # instance that dispatched it
    payload = JSONField(null=True)
    missed_count = IntegerField(null=True)  # a folded *missed* row stands for this many slots
    cancel_requested_at = UTCDateTimeField(null=True)
    # v2: when a *queued* run (manual trigger, retry, claimed slot) is to be sent
    due_at = UTCDateTimeField(null=True)

    class Meta:
        table_name = "run"
        indexes = (
            (("status", "due_at"), False),
            # One slot, one run: a second claim of (job, scheduled_for, attempt) fails.
            (("job", "scheduled_for", "attempt"), True),
            (("execution_id", "attempt"), True),
            (("job", "id"), False),
            (("status", "id"), False),
            (("queued_at",), False),
        )


class Key(BaseModel):
    id = AutoField()
    name = CharField(max_length=100, unique=True)
    scope = CharField(max_length=10)  # invoke | admin
    job = CharField(max_length=100, null=True)  # an invoke key for one job only
    prefix = CharField(max_length=12)  # shown in lists, identifies a key without its secret
    secret_hash = CharField(max_length=64, unique=True)
    created_at = UTCDateTimeField()
    last_used_at = UTCDateTimeField(null=True)
    revoked_at = UTCDateTimeField(null=True)

    class Meta:
        table_name = "key"


class Lease(BaseModel):
    name = CharField(max_length=200, primary_key=True)
    holder = CharField(max_length=100)
    acquired_at = UTCDateTimeField()
    expires_at = UTCDateTimeField()

    class Meta:
        table_name = "lease"


class Gateway(BaseModel):
    instance = CharField(max_length=100, primary_key=True)
    host = CharField(max_length=255)
    pid = IntegerField()
    started_at = UTCDateTimeField()
    seen_at = UTCDateTimeField()
    role = CharField(max_length=10, default="standby")  # active | standby | stopped

    class Meta:
        table_name = "gateway"


ALERT_KINDS = ("failure", "recovery", "late", "too_fast", "too_slow", "too_often")


class Alert(BaseModel):
    """One notification: a condition that opened (failure, late, ...) or a recovery."""

    id = AutoField()
    job = ForeignKeyField(Job, backref="alerts", on_delete="CASCADE")
    job_id: int
    kind = CharField(max_length=10)  # ALERT_KINDS
    state = CharField(max_length=6)  # open: the condition holds | closed: it ended
    opened_at = UTCDateTimeField()
    closed_at = UTCDateTimeField(null=True)
    message = TextField()
    delivered_at = UTCDateTimeField(null=True)
    attempts = IntegerField(default=0)
    next_attempt_at = UTCDateTimeField(null=True)  # None: nothing (more) to send
    last_error = TextField(null=True)

    class Meta:
        table_name = "alert"
        indexes = (
            (("job", "state"), False),
            (("next_attempt_at",), False),
        )


class SchemaVersion(BaseModel):
    version = IntegerField(primary_key=True)
    applied_at = UTCDateTimeField()
    note = CharField(max_length=200, default="")

    class Meta:
        table_name = "schema_version"


MODELS = (Job, Run, Key, Lease, Gateway, Alert)
