"""Evaluate alerts against the store: judge the jobs that changed or turned late, record one
alert per state change, and deliver pending alerts in a background thread.

The gateway calls `evaluate_alerts(settings, now)` in a thread it starts after a round's
claims, as often as its housekeeping runs (every few seconds).
A job is judged again only when its last run or its definition changed, or its `late_at` came.
"""

from __future__ import annotations

import logging
import threading
from array import array
from collections.abc import Callable
from collections.abc import Iterable
from collections.abc import Iterator
from collections.abc import Sequence
from dataclasses import dataclass
from dataclasses import field
from datetime import datetime
from datetime import timedelta
from functools import lru_cache
from typing import Any
from typing import cast

from peewee import InterfaceError
from peewee import OperationalError
from peewee import fn

from gateway.alerts import rules
from gateway.alerts.delivery import deliver_due
from gateway.alerts.delivery import has_channel
from gateway.config import Settings
from gateway.store.bulk import execute_many
from gateway.store.bulk import in_list
from gateway.store.db import database
from gateway.store.db import is_sqlite
from gateway.store.db import write_transaction
from gateway.store.models import Alert
from gateway.store.models import Job
from gateway.store.models import Run

logger = logging.getLogger("gateway.alerts")

HISTORY = 20  # newest finished runs a judgement looks at
_PG_JUDGE_LOCKS = 0x4A554447  # "JUDG": the first key of the advisory lock per judged job
FAILED_RETRY = timedelta(minutes=15)  # a job whose judgement failed is tried again after this
JUDGE_BATCH = 50  # jobs judged in one transaction (SQLite: at most 500 in a UNION ALL)
_BULK = 500  # jobs settled per query in the bulk pass
_SPAN = 4 * _BULK  # at most this many ids in the range one bulk query reads
MARGIN = timedelta(minutes=2)  # app workers' clocks may lag the gateway's a little
WIDE_EVERY = timedelta(seconds=30)  # how often a round also reads back past MARGIN
LAG = timedelta(seconds=5)  # what the rounds in between look back past the round before
TERMINAL = ("success", "error", "timeout", "skipped", "canceled", "abandoned")


_UNJUDGED = 0  # an array slot nobody set


class KeysById:
    """Job id -> an int key (what a job was judged at), in an array of 8-byte ints indexed by
    id: 100,000 jobs in 0.8 MB, where a dict of ints takes about 10. Ids are dense; one far
    past the array (a sequence that jumped) goes to a dict instead of growing it to its size."""

    _SLACK = 1 << 16  # ids this far past twice the array's length still grow it

    def __init__(self) -> None:
        self._keys = array("q")
        self._sparse: dict[int, int] = {}

    def get(self, job_id: int) -> int | None:
        if job_id < len(self._keys):
            key = self._keys[job_id]
            return None if key == _UNJUDGED else key
        return self._sparse.get(job_id)

    def __contains__(self, job_id: int) -> bool:
        return self.get(job_id) is not None

    def __setitem__(self, job_id: int, key: int) -> None:
        key = key if key != _UNJUDGED else _UNJUDGED + 1
        size = len(self._keys)
        if job_id >= size and job_id < 2 * size + self._SLACK:
            grow = max(job_id + 1, 2 * size) - size
            self._keys.frombytes(bytes(grow * self._keys.itemsize))  # zeros: _UNJUDGED
            for moved in [i for i in self._sparse if i < len(self._keys)]:
                self._keys[moved] = self._sparse.pop(moved)
        if job_id < len(self._keys):
            self._keys[job_id] = key
        else:
            self._sparse[job_id] = key


@dataclass
class AlertEvaluator:
    """Judges jobs and records alerts for one database; keeps what it judged in memory."""

    settings: Settings
    # Rows changed since the watermark (LAG before the last whole round) are read again; a
    # *wide* round, every WIDE_EVERY, also reads those changed since `wide_since`: MARGIN
    # before the last whole wide round, for writers whose clocks lag. A row that becomes
    # visible after a wide round with a stamp at most MARGIN old is newer than `wide_since`,
    # so the next wide round reads it, however long the rounds take. 100,000 jobs changed at
    # once are read in five or six rounds, not in every round of those two minutes.
    watermark: datetime | None = None
    wide_at: datetime | None = None
    wide_since: datetime | None = None
    # job id -> the hash of (last_run_at, updated_at) it was judged at.
    judged: KeysById = field(default_factory=KeysById)
    # job id -> when to try again a judgement that failed (a bug, a value the store refuses):
    # a late job is looked at every round, and would fail every round until it changes.
    failing: dict[int, datetime] = field(default_factory=dict)
    _delivery: threading.Thread | None = None

    def evaluate(self, now: datetime, between: Callable[[], bool] | None = None) -> int:
        """Judge every job that may have changed; return how many alerts were recorded.

        `between` is called after each batch of judgements (the gateway sleeps a little
        there, so that judging thousands of jobs never starves its loop of the GIL); True
        stops the round, and the next one starts where this left off.
        """
        recorded = 0
        wide = self.wide_at is None or now - self.wide_at >= WIDE_EVERY
        fresh, fresh_ids = KeysById(), array("q")  # never ran, not judged yet
        again: list[tuple[int, int]] = []  # (job id, key) to judge, in batches
        for job_id, last_run_at, updated_at, late in self._candidates(now, wide):
            key = hash((last_run_at, updated_at))
            if job_id in self.failing:
                if self.judged.get(job_id) == key and now < self.failing[job_id]:
                    continue  # unchanged since it failed
                del self.failing[job_id]
            if last_run_at is None and job_id not in self.judged and not late:
                fresh[job_id] = key
                fresh_ids.append(job_id)
            elif late or self.judged.get(job_id) != key:
                again.append((job_id, key))
        self._settle_never_run(fresh, fresh_ids, now)
        again += [(i, k) for i in fresh_ids if i not in self.judged and (k := fresh.get(i))]
        for start in range(0, len(again), JUDGE_BATCH):
            batch = again[start : start + JUDGE_BATCH]
            recorded += self._judge(batch, now)
            for job_id, key in batch:
                self.judged[job_id] = key
            if between is not None and between():
                return recorded  # the watermark stays: the rest is judged next round
        self.watermark = now - LAG
        if wide:
            self.wide_at, self.wide_since = now, now - MARGIN
        return recorded

    def _judge(self, batch: list[tuple[int, int]], now: datetime) -> int:
        """Judge a batch of (job id, key); if it fails other than by an outage, each job on
        its own, so one job the rules or the store choke on holds up no other (it is logged
        and passed over until it changes, or for FAILED_RETRY)."""
        try:
            return judge_jobs([job_id for job_id, _ in batch], self.settings, now)
        except (OperationalError, InterfaceError):
            raise
        except Exception:
            logger.exception("alerts: judging %d job(s) together failed; one by one", len(batch))
        recorded = 0
        for job_id, _ in batch:
            try:
                recorded += judge_jobs([job_id], self.settings, now)
            except (OperationalError, InterfaceError):
                raise
            except Exception:
                logger.exception("alerts: judging job %d failed", job_id)
                self.failing[job_id] = now + FAILED_RETRY
        return recorded

    def _candidates(self, now: datetime, wide: bool) -> Iterator[tuple[Any, ...]]:
        """Yield (id, last_run_at, updated_at, late) of the jobs that may have changed, once
        each: tuples, not models, streamed, the two times as the stored text (only hashed,
        never parsed: 100,000 jobs in the first round)."""
        query = Job.select(
            Job.id,
            Job.last_run_at.cast("TEXT"),
            Job.updated_at.cast("TEXT"),
            fn.COALESCE(Job.late_at <= now, False),
        ).where(Job.deleted_at.is_null())
        if self.watermark is None:  # the first evaluation judges every job once
            yield from cast(Iterable[tuple[Any, ...]], query.tuples().iterator())
            return
        since = min(self.watermark, self.wide_since or self.watermark) if wide else self.watermark
        # Two queries, each by index: SQLite scans the table for one with all three terms.
        late = list(cast(Iterable[tuple[Any, ...]], query.where(Job.late_at <= now).tuples()))
        yield from late
        seen = {row[0] for row in late}
        changed = query.where((Job.last_run_at >= since) | (Job.updated_at >= since))
        for row in cast(Iterable[tuple[Any, ...]], changed.tuples().iterator()):
            if row[0] not in seen:
                yield row

    def _settle_never_run(self, fresh: KeysById, ids: array[int], now: datetime) -> None:
        """Judge in bulk the `fresh` jobs, `ids` (never ran, not judged by this evaluator:
        all of them after a restart): with no run and no open alert, the only verdict is when
        they will be late. Those with an open alert or already late are left to `judge_jobs`,
        which records it."""
        if not ids:
            return
        open_alerts = Alert.select(Alert.job).where(Alert.state == "open").distinct().tuples()
        alerted = {job_id for (job_id,) in cast(Iterable[tuple[int]], open_alerts)}
        param = database.obj.param
        move = (  # still never run: another gateway's judgement after a first run stands
            f"UPDATE {Job._meta.table_name} SET late_at = {param} "
            f"WHERE id = {param} AND last_run_at IS NULL"
        )
        for low, high in _id_ranges(array("q", sorted(ids))):  # linear if sorted already
            # A range of ids, not an IN list of 500 values (building that costs more than
            # the query); rows in it that are not fresh are passed over.
            rows = Job.select(*_JUDGED).where(
                Job.id.between(low, high) & Job.last_run_at.is_null() & Job.deleted_at.is_null()
            )
            moved: list[tuple[Any, int]] = []
            settled: list[int] = []
            for job in rows.namedtuples():
                if job.id not in fresh or job.id in alerted or job.id in self.judged:
                    continue
                late_at = rules.late_deadline(expectation(job, self.settings), None)
                if late_at is not None and late_at <= now:
                    continue  # judge_jobs decides it
                if job.late_at != late_at:
                    moved.append((Job.late_at.db_value(late_at), job.id))
                settled.append(job.id)
            if moved:
                with write_transaction():
                    execute_many(move, moved)
            for job_id in settled:
                self.judged[job_id] = fresh.get(job_id) or _UNJUDGED  # always set here

    def deliver_in_background(self, now: datetime) -> None:
        """Start a delivery round in a thread unless one is still going (a slow webhook must
        not hold up the gateway's loop)."""
        if not has_channel(self.settings):
            return
        if self._delivery is not None and self._delivery.is_alive():
            return

        def deliver() -> None:
            try:
                deliver_due(self.settings, now)
            except Exception:  # the next round tries again
                logger.exception("alerts: delivery round failed")
            finally:
                database.close()

        self._delivery = threading.Thread(target=deliver, name="alert-delivery", daemon=True)
        self._delivery.start()


_EVALUATORS: dict[str, AlertEvaluator] = {}


def evaluate_alerts(
    settings: Settings, now: datetime, between: Callable[[], bool] | None = None
) -> int:
    """Judge changed jobs, record alerts, and start delivering pending ones (the gateway's hook)."""
    evaluator = _EVALUATORS.setdefault(settings.database_url, AlertEvaluator(settings))
    recorded = evaluator.evaluate(now, between)
    evaluator.deliver_in_background(now)
    return recorded


def _id_ranges(ids: array[int]) -> Iterator[tuple[int, int]]:
    """Split the sorted `ids` into ranges of at most _BULK of them, each spanning < _SPAN ids."""
    start = 0
    for i in range(1, len(ids) + 1):
        if i == len(ids) or i - start == _BULK or ids[i] - ids[start] >= _SPAN:
            yield ids[start], ids[i - 1]
            start = i


def judge_jobs(job_ids: Sequence[int], settings: Settings, now: datetime) -> int:
    """Judge a batch of jobs in one transaction; return how many alerts were recorded.

    On PostgreSQL two gateways must not both record the same change: each job is locked by
    an advisory lock, not its row, since claims pass locked job rows over (SKIP LOCKED) and a
    judgement would make them miss a round.

    Six statements for the batch, not five a job: peewee renders each in about 0.1 ms, and a
    burst of 1,000 finished runs is 1,000 judgements."""
    if not job_ids:
        return 0
    with write_transaction():
        if not is_sqlite():  # one judge at a time per job, in id order (no deadlock)
            database.execute_sql(
                "SELECT pg_advisory_xact_lock(%s, id) FROM unnest(%s) AS id ORDER BY id",
                (_PG_JUDGE_LOCKS, sorted(job_ids)),
            )
        jobs = list(Job.select(*_JUDGED).where(in_list(Job.id, job_ids)).order_by(Job.id))
        ids = [job.id for job in jobs]
        open_alerts: dict[int, dict[str, Alert]] = {job_id: {} for job_id in ids}
        for alert in Alert.select().where(in_list(Alert.job, ids) & (Alert.state == "open")):
            open_alerts[alert.job_id][alert.kind] = alert
        histories, successes = histories_of(ids)
        late: dict[datetime | None, list[int]] = {}
        recorded = 0
        for job in jobs:
            verdict = rules.judge(
                expectation(job, settings),
                histories[job.id],
                successes[job.id] if job.id in successes else last_success(job),
                frozenset(open_alerts[job.id]),
                now,
            )
            recorded += record(job, verdict, open_alerts[job.id], settings, now)
            if job.late_at != verdict.late_at:
                late.setdefault(verdict.late_at, []).append(job.id)
        for late_at, changed in late.items():  # jobs judged alike share one UPDATE
            Job.update(late_at=late_at).where(in_list(Job.id, changed)).execute()
        return recorded


# What a judgement reads of a job (expectation() and record()): not all 49 columns.
_JUDGED = (
    Job.id,
    Job.name,
    Job.schedule,
    Job.tz,
    Job.expect_every,
    Job.grace,
    Job.min_duration_ms,
    Job.max_duration_ms,
    Job.enabled,
    Job.watch_only,
    Job.orphaned_at,
    Job.created_at,
    Job.late_at,
)


def expectation(job: Job, settings: Settings) -> rules.Expectation:
    """Return the rules' view of a job: watched while enabled or watch-only."""
    watched = (job.enabled or job.watch_only) and job.orphaned_at is None
    every = timedelta(seconds=job.expect_every) if job.expect_every else None
    grace = job.grace if job.grace is not None else settings.alert_grace_seconds
    return rules.Expectation(
        name=job.name,
        schedule=job.schedule,
        tz=job.tz,
        expect_every=every,
        grace=timedelta(seconds=grace),
        min_duration_ms=job.min_duration_ms,
        max_duration_ms=job.max_duration_ms,
        watched=bool(watched) and (job.schedule is not None or every is not None),
        since=job.created_at,
    )


def histories_of(
    job_ids: Sequence[int],
) -> tuple[dict[int, list[rules.RunFact]], dict[int, datetime | None]]:
    """Return each job's newest finished runs, oldest first, and, for the jobs with a success
    among them, when the newest success started (its slot): one statement, a LIMIT through
    the (job, id) index per job."""
    histories: dict[int, list[rules.RunFact]] = {job_id: [] for job_id in job_ids}
    successes: dict[int, datetime | None] = {}
    if not job_ids:
        return histories, successes
    at = Run.started_at.python_value
    rows = database.execute_sql(_histories_sql(len(job_ids), database.obj.param), job_ids)
    # A UNION ALL keeps no order between or within its parts (PostgreSQL may run them in
    # parallel): sorted here, oldest first, by id.
    for _, job_id, status, trigger, started, finished, duration, error, slot in sorted(rows):
        started_at = at(started)
        if status == "success":  # the last one seen is the newest
            successes[job_id] = started_at or at(finished)
        histories[job_id].append(
            rules.RunFact(status, trigger, started_at, duration, error, at(slot))
        )
    return histories, successes


@lru_cache(maxsize=16)
def _histories_sql(jobs: int, param: str) -> str:
    """`SELECT … LIMIT HISTORY` for each of `jobs` job ids, as one UNION ALL, rendered once."""
    fields = (Run.id, Run.job, Run.status, Run.trigger, Run.started_at, Run.finished_at,
              Run.duration_ms, Run.error, Run.scheduled_for)  # fmt: skip
    columns = ", ".join(f'"{f.column_name}"' for f in fields)
    terminal = ", ".join(f"'{status}'" for status in TERMINAL)  # constants, not input
    one = (
        f'SELECT {columns} FROM "{Run._meta.table_name}" WHERE "{Run.job.column_name}" = {param}'
        f' AND "status" IN ({terminal}) ORDER BY "id" DESC LIMIT {HISTORY}'
    )
    return " UNION ALL ".join(f"SELECT * FROM ({one}) AS h{i}" for i in range(jobs))


def last_success(job: Job) -> datetime | None:
    """Return when the job's newest success started (its slot), None if it never succeeded."""
    newest = (
        Run.select(fn.COALESCE(Run.started_at, Run.finished_at).alias("at"))
        .where((Run.job == job.id) & (Run.status == "success"))
        .order_by(Run.id.desc())
        .limit(1)
        .first()
    )
    return None if newest is None else Run.started_at.python_value(newest.at)


def record(
    job: Job,
    verdict: rules.Verdict,
    open_alerts: dict[str, Alert],
    settings: Settings,
    now: datetime,
) -> int:
    """Store the verdict: close ended conditions, add an alert per opened one and notice
    (`late_at` is the caller's to store: a batch updates it for many jobs at once)."""
    send_at = now if has_channel(settings) else None
    for kind in verdict.closed:
        Alert.update(state="closed", closed_at=now).where(
            Alert.id == open_alerts[kind].id
        ).execute()
    for notice in verdict.opened:
        Alert.create(
            job=job, kind=notice.kind, state="open", opened_at=now, message=notice.message,
            next_attempt_at=send_at,
        )  # fmt: skip
    for notice in verdict.notices:
        Alert.create(
            job=job, kind=notice.kind, state="closed", opened_at=now, closed_at=now,
            message=notice.message, next_attempt_at=send_at,
        )  # fmt: skip
    for notice in (*verdict.opened, *verdict.notices):
        logger.warning("alert: %s: %s", notice.kind, notice.message)
    return len(verdict.opened) + len(verdict.notices)
