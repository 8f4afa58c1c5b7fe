"""The gateway process: claim due slots, send them, record what happened, keep its lease.

`run_once()` does one round and says whether there may be more work; `run()` loops over it
and sleeps until the next due time (by index) or a short wake-up interval.
"""

from __future__ import annotations

import logging
import os
import random
import signal
import socket
import threading
import time
import uuid
from collections import Counter
from dataclasses import dataclass
from datetime import datetime
from datetime import timedelta
from types import FrameType

from peewee import DatabaseError
from peewee import InterfaceError
from peewee import OperationalError

from gateway import outbound
from gateway.alerts.evaluate import evaluate_alerts
from gateway.clock import SYSTEM_CLOCK
from gateway.clock import Clock
from gateway.config import Settings
from gateway.errors import GatewayError
from gateway.logs import log_context
from gateway.scheduler.caller import Caller
from gateway.scheduler.caller import Outcome
from gateway.scheduler.dispatch import Dispatcher
from gateway.scheduler.group_commit import GroupCommit
from gateway.scheduler.policy import RetryPolicy
from gateway.scheduler.reaper import Reaper
from gateway.scheduler.resync import Resync
from gateway.scheduler.retry import decide_retry
from gateway.scheduler.senders import SenderPool
from gateway.scheduler.sending import Sender
from gateway.scheduler.sending import Sent
from gateway.store import claims
from gateway.store import gateways
from gateway.store import leases
from gateway.store.db import database
from gateway.store.db import ensure_open
from gateway.store.db import is_sqlite
from gateway.store.db import write_transaction
from gateway.store.jobs import resume_due
from gateway.store.models import Job
from gateway.store.outcomes import Seen
from gateway.store.outcomes import queue_retry
from gateway.store.outcomes import record_outcome
from gateway.store.outcomes import record_plain_successes
from gateway.store.retention import prune_once
from gateway.store.runs import finish_run

logger = logging.getLogger("gateway.scheduler")

ACTIVE_LEASE = "gateway:active"
SYNC_RETRY_SECONDS = 5  # at start, until the apps answer
SYNC_START_ATTEMPTS = 12
RESYNC_SECONDS = 300
SYNC_JOIN_SECONDS = 5.0  # at shutdown, for a sync going on
FIRST_SYNC_WAIT_SECONDS = 5.0  # a round waits this long for the start-up sync, then renews
MAX_BACKOFF_SECONDS = 30.0
PRUNE_EVERY_SECONDS = 24 * 3600
# Alert judging sleeps this long after each batch of jobs (about 10 ms of work for 50): at
# most about half a core, never the GIL for long stretches while the loop claims and dispatches.
ALERT_PAUSE_SECONDS = 0.01
ALERT_HOLD_SECONDS = 5.0  # and, while bursts start, at most this much longer a round
TAKING_SECONDS = 0.02  # after a batch of due runs was taken, another may follow this soon
TAKE_BATCH = 200  # due runs taken at once (a burst's first: the dispatcher's first_take)


@dataclass(frozen=True)
class LoopSettings:
    """How the loop paces itself; the defaults suit one machine."""

    wake_interval: float = 0.5  # new jobs, reschedules and manual triggers are seen this fast
    claim_ahead: float = 1.0  # slots are claimed (queued) this long before they are due
    # … and taken (dispatched, handed to a call thread or sender) this long before: a burst is
    # ready to leave at its time, when each call is made (never before: dispatch.py).
    take_ahead: float = 0.25
    lease_seconds: float = 10.0  # a dead gateway's work is taken over after this
    workers: int = 32
    per_host: int = 16
    shutdown_grace: float = 25.0  # SIGTERM: wait this long for calls in flight
    prune_after_seconds: float | None = 60.0  # first retention prune (then daily); None: off


class Scheduler:
    """One gateway process. On SQLite one is active (a lease), the others wait as standby."""

    def __init__(
        self,
        settings: Settings,
        token: str,
        *,
        caller: Caller | None = None,
        clock: Clock = SYSTEM_CLOCK,
        pacing: LoopSettings | None = None,
        rng: random.Random | None = None,
    ) -> None:
        self.settings = settings
        self.token = token
        self.caller = caller or Caller(outbound.pools_for(settings))
        self.clock = clock
        self.pacing = pacing or LoopSettings(
            lease_seconds=settings.gateway_lease_seconds,
            workers=settings.gateway_workers,
            per_host=settings.gateway_per_host,
        )
        self.rng = rng or random.Random()
        self.instance = f"{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:6]}"
        self.lease = timedelta(seconds=self.pacing.lease_seconds)
        self._claim_ahead = timedelta(seconds=self.pacing.claim_ahead)
        self._take_ahead = timedelta(seconds=self.pacing.take_ahead)
        self._taken_by: datetime | None = None  # the last take took what was due by then
        self._more_due = False  # the last take was full: there may be more due at once
        # Where this streak of rounds (no sleep between) has read the due runs to: its takes
        # read on from there, past runs left waiting; after a sleep, from the start again.
        self._after: tuple[datetime, int] | None = None
        self._continuing = False  # the last run_once asked to be called again at once
        self.stopping = threading.Event()
        self.wake = threading.Event()
        self.active = False
        self._next_housekeeping = 0.0
        self._sync_attempts = 0
        self._next_sync = 0.0
        self._resync = Resync(settings)
        self._syncing: threading.Thread | None = None
        self._first_sync = threading.Event()  # the first sync ended, however it went
        self._failures = 0  # rounds failed in a row because the database was unavailable
        self._alerts: threading.Thread | None = None  # the alert evaluation going on, if any
        self._judge_due = False  # housekeeping asks for a judging round after the claims
        self._to_hand_back: list[int] = []  # runs of a dead sender process, to settle
        self._to_abandon: list[int] = []
        self._taking_until = 0.0  # time.monotonic(): the loop may take more due runs till then
        self._alert_hold_left = ALERT_HOLD_SECONDS
        first_prune = self.pacing.prune_after_seconds
        self._next_prune = None if first_prune is None else self.clock.monotonic() + first_prune
        self.sender = Sender(settings, token, self.caller, clock)
        self.outcomes: GroupCommit[Sent] = GroupCommit(
            self._record_until_stored, hold=lambda: self.starting
        )
        self.dispatcher: Dispatcher | SenderPool
        if settings.gateway_senders:  # the calls in processes of their own (senders.py)
            self.dispatcher = SenderPool(
                settings, token, self.outcomes.put, processes=settings.gateway_senders,
                workers=self.pacing.workers, per_host=self.pacing.per_host,
            )  # fmt: skip
        else:
            self.dispatcher = Dispatcher(
                self.send, self.pacing.workers, self.pacing.per_host, clock
            )
        self.reaper = Reaper(self.lease, timedelta(seconds=settings.lease_seconds))

    # -- the loop -------------------------------------------------------------------------

    def run(self) -> None:
        """Work until SIGTERM or SIGINT, then hand back what was not sent and stop."""
        self._install_signal_handlers()
        try:
            if not self._start():
                return
            try:
                self._work()
            finally:
                self.shutdown()
        finally:  # whatever happened: no sender process outlives the gateway
            self.dispatcher.close()

    def _work(self) -> None:
        """Do rounds until stopped, sleeping between them. The wake flag is cleared before a
        round, not after it. A wake-up sent during a round (a retry queued by the writer
        thread, a job the sync added) then ends the next sleep at once instead of being lost."""
        while True:
            self.wake.clear()
            if self.stopping.is_set():  # after the clear: a stop() just before it still counts
                return
            delay = self._round()
            self.clock.wait(delay, self.wake)

    def _start(self) -> bool:
        """Open the database (waiting while it is down) and register; False if stopped first."""
        failures = 0
        while not self.stopping.is_set():
            try:
                ensure_open(self.settings.database_url)
                gateways.register(
                    self.instance, socket.gethostname(), os.getpid(), self.clock.now(), "standby"
                )
            except (DatabaseError, InterfaceError) as e:
                failures += 1
                self.clock.wait(self._database_trouble("cannot start", e, failures), self.stopping)
                continue
            logger.info("gateway %s started", self.instance)
            return True
        return False

    def _round(self) -> float:
        """Run rounds while there is work; return how long to sleep. Never raises."""
        try:
            while not self.stopping.is_set() and self.run_once():
                pass
            delay = self.seconds_until_next_due()
        except (DatabaseError, InterfaceError) as e:
            self._failures += 1
            return self._database_trouble("round failed", e, self._failures)
        except Exception:  # a bug must not stop the gateway: log it and go on
            logger.exception("gateway round failed")
            return self.pacing.wake_interval
        if self._failures:
            logger.info("database reachable again after %d failed round(s)", self._failures)
            self._failures = 0
        return delay

    def _database_trouble(self, what: str, error: Exception, failures: int) -> float:
        """Log a database outage, drop the broken connection, return the backoff delay."""
        delay = min(MAX_BACKOFF_SECONDS, 0.5 * float(2 ** min(failures - 1, 6)))
        logger.warning(
            "%s: database unavailable (%s: %s); retrying in %.1f s",
            what,
            type(error).__name__,
            str(error).strip().splitlines()[0] if str(error).strip() else "",
            delay,
        )
        database.close()  # the next round reconnects
        return delay

    def run_once(self) -> bool:
        """Do one round: housekeeping, claim due slots, send due runs. True: call again."""
        if not self._continuing:  # after a sleep the runs left waiting are looked at again
            self._after = None
        self._more_due = False  # set again only by a full take of this round
        self._continuing = False
        self._continuing = self._round_once(self.clock.now())
        return self._continuing

    def _round_once(self, now: datetime) -> bool:
        sent = self._send_due(now) if self.active else 0  # the due moment before housekeeping
        self._settle_unsent(now)
        self._housekeeping(now)
        if not self.active or not self._first_sync_ended():
            return bool(sent or self._more_due)  # claims wait for what the apps declare now
        try:
            claimed = claims.claim_due_slots(now, ahead=self._claim_ahead)
            sent += self._send_due(now)
        finally:  # even if claiming fails every round: then alerts matter most
            self._judge_after_claims()
        return bool(claimed or sent or self._more_due)

    def _judge_after_claims(self) -> None:
        """Start the judging round housekeeping asked for (see _evaluate_alerts_in_background);
        never raises, so it cannot mask what the claims raised."""
        if not self._judge_due:
            return
        self._judge_due = False
        try:
            self._evaluate_alerts_in_background(self.clock.now())
        except Exception:  # a thread that cannot start: the next housekeeping asks again
            logger.exception("alerts: cannot start judging")

    def _first_sync_ended(self) -> bool:
        """Wait up to FIRST_SYNC_WAIT_SECONDS (real time) for the start-up sync; False if it
        is still going (the next round renews the lease and waits again) or on SIGTERM."""
        deadline = time.monotonic() + FIRST_SYNC_WAIT_SECONDS
        while not self._first_sync.wait(0.05):
            if self.stopping.is_set() or time.monotonic() >= deadline:
                return False
        return True

    def _send_due(self, now: datetime) -> int:
        """Take the queued runs due by `now` and the take-ahead and hand them to the dispatcher
        (each call waits for its time); return how many."""
        if not self.dispatcher.ready:  # every sender process is restarting: leave them queued
            self._more_due = False
            return 0
        answered = {sent.dispatch.run_id for sent in self.outcomes.pending()}
        # With sender processes a burst's first batch is small: its calls leave while the
        # loop takes the rest (dispatch.py says why not without).
        taking = time.monotonic() < self._taking_until
        limit = TAKE_BATCH if taking else self.dispatcher.first_take
        due_by = now + self._take_ahead
        taken = claims.take_due_batch(
            now, self.instance, self.settings.app_url, limit=limit, answered=answered,
            due_by=due_by, after=self._after,
        )  # fmt: skip
        sent = taken.dispatches
        if sent:
            self._taking_until = time.monotonic() + TAKING_SECONDS
        # Runs that could not be handed out go back to the queue at the next round; they do
        # not count, or the loop would take them again and again at once.
        written = self.dispatcher.submit_all(sent)
        # A full batch may have more behind it (even if it sent nothing: all skipped, or
        # waiting): take again at once, after the last run it read.
        self._more_due = taken.full and written == len(sent)
        if taken.last is not None and written == len(sent):
            self._after = taken.last
        if not self._more_due:
            self._taken_by = due_by
        return written

    @property
    def starting(self) -> bool:
        """Return True while a burst is going out: the loop takes due runs batch after batch,
        or calls handed out have not begun. The writer and alert judging wait meanwhile (at
        most their linger and hold), so they do not take the CPU from sending."""
        return self.dispatcher.starting or time.monotonic() < self._taking_until

    def _settle_unsent(self, now: datetime) -> None:
        """Hand back the runs a sender process never received and abandon those it had when
        it died (senders.py); what the database refuses now is tried again next round."""
        hand_back, abandon = self.dispatcher.take_unsettled()
        self._to_hand_back += hand_back
        self._to_abandon += abandon
        if self._to_hand_back:
            returned = claims.hand_back(self._to_hand_back)
            self._to_hand_back = []
            logger.info("%d run(s) a sender process never received are queued again", returned)
        if self._to_abandon:
            # Only those still *dispatched*: one an endpoint attached to (*running*) is that
            # endpoint's to end, or the reaper's if its worker stops beating.
            abandoned = claims.abandon(
                self._to_abandon, now, reason=claims.ABANDONED_BY_SENDER, statuses=("dispatched",)
            )
            self._to_abandon = []
            logger.warning("%d run(s) a sender process had when it died are abandoned", abandoned)

    def seconds_until_next_due(self) -> float:
        """Return how long to sleep: until the next due time, at most the wake interval."""
        if not self.active:
            return self.pacing.wake_interval * 2  # standby: try the lease again soon
        if not self.dispatcher.ready:  # due runs wait for a sender: not a busy loop meanwhile
            return self.pacing.wake_interval
        now = self.clock.now()
        due = claims.next_due_at(now, self._claim_ahead, self._take_ahead, self._taken_by)
        if due is None:
            return self.pacing.wake_interval
        return min(max(0.0, (due - now).total_seconds()), self.pacing.wake_interval)

    def stop(self) -> None:
        """Ask the loop to stop (what the signal handlers do)."""
        self.stopping.set()
        self.wake.set()

    # -- sending one run (in a pool thread) -------------------------------------------------

    def send(self, dispatch: claims.Dispatch) -> None:
        """Call the endpoint for one dispatched run and hand the outcome to the writer."""
        self.outcomes.put(self.sender(dispatch))

    def _record_until_stored(self, batch: list[Sent]) -> None:
        """Record a batch of outcomes in one transaction, retrying through a database outage:
        a sent run must not stay *dispatched* while its gateway lives. On shutdown, give up
        (the reaper takes over)."""
        failures = 0
        while True:
            try:
                with write_transaction():
                    stored = self._record_plain(batch)
                    for sent in batch:
                        if sent.dispatch.run_id not in stored:
                            self._record_one(sent)
                return
            except (DatabaseError, InterfaceError) as e:
                failures += 1
                first = batch[0].dispatch.execution_id
                what = f"recording run {first}" + (
                    f" and {len(batch) - 1} more" if len(batch) > 1 else ""
                )
                delay = self._database_trouble(what, e, failures)
                if self.stopping.is_set():
                    return
                self.clock.wait(delay, self.stopping)

    def _record_plain(self, batch: list[Sent]) -> set[int]:
        """Store the batch's plain successes together (in a savepoint); return their run ids.
        If that fails other than by an outage, every outcome goes the one-by-one way."""
        jobs = Counter(sent.dispatch.job for sent in batch)
        seen = [
            (sent.dispatch.run_id, _seen(sent.outcome, sent.lateness_ms))
            for sent in batch
            if jobs[sent.dispatch.job] == 1  # a job's outcomes in call order: one by one
        ]
        try:
            with database.atomic():
                return record_plain_successes(seen, self.clock.now())
        except (OperationalError, InterfaceError):
            raise
        except Exception:
            logger.exception("storing %d outcome(s) together failed; one by one", len(batch))
            return set()

    def _record_one(self, sent: Sent) -> None:
        """Record one outcome inside the batch's transaction, in a savepoint of its own.

        An outage (the connection failed, the database is locked) fails the whole batch, to
        be tried again. Any other error is about this outcome alone and would fail every try
        (a value the column refuses, a bug): it is logged, the run ends *error* saying so, and
        the rest of the batch is stored, so one bad outcome never stops the others.
        """
        with log_context(sent.dispatch.execution_id, sent.dispatch.job):
            try:
                with database.atomic():
                    self._record(sent.dispatch, sent.outcome, sent.lateness_ms)
            except (OperationalError, InterfaceError):
                raise
            except Exception as e:
                logger.exception("recording run %s failed", sent.dispatch.execution_id)
                reason = f"the gateway could not record this call's outcome ({type(e).__name__})"
                try:
                    with database.atomic():
                        # Only a run still *dispatched*: one the endpoint recorded keeps that.
                        finish_run(
                            sent.dispatch.run_id, "error", self.clock.now(),
                            only_from=("dispatched",), error=reason,
                        )  # fmt: skip
                except (OperationalError, InterfaceError):
                    raise
                except Exception:
                    logger.exception("run %s stays dispatched", sent.dispatch.execution_id)

    def _record(self, dispatch: claims.Dispatch, outcome: Outcome, lateness_ms: int) -> None:
        now = self.clock.now()
        run = record_outcome(dispatch.run_id, _seen(outcome, lateness_ms), now)
        if run is None or run.status not in ("error", "timeout"):
            return
        job = Job.get_by_id(run.job_id)
        policy = RetryPolicy(max_attempts=job.max_attempts, backoff_s=float(job.backoff))
        decision = decide_retry(outcome, run.attempt, policy, now=now, rng=self.rng)
        if decision.retry:
            due = now + timedelta(seconds=decision.delay_s)
            if queue_retry(run, due, now):
                self.wake.set()  # the retry may be due before the loop would look again
                logger.info(
                    "job %s run %s attempt %d failed (%s); retry at %s",
                    dispatch.job,
                    dispatch.execution_id,
                    run.attempt,
                    decision.reason,
                    due.isoformat(),
                )

    # -- lease, heartbeat, reaper ------------------------------------------------------------

    def _housekeeping(self, now: datetime) -> None:
        tick = self.clock.monotonic()
        if tick < self._next_housekeeping:
            return
        self._next_housekeeping = tick + self.pacing.lease_seconds / 3
        was_active = self.active
        self.active = self._hold_lease(now)
        if self.active != was_active:
            logger.info(
                "gateway %s is now %s", self.instance, "active" if self.active else "standby"
            )
        gateways.beat(self.instance, now, "active" if self.active else "standby")
        if not self.active:
            return
        self._sync()
        if self._next_prune is not None and tick >= self._next_prune:
            self._next_prune = tick + PRUNE_EVERY_SECONDS
            self._prune_in_background(now)
        for job in resume_due(now):
            logger.info("job %s resumed: its pause ended", job.name)
        self._judge_due = True
        claims.mark_lost_gateways(now, self.lease)
        dead = self.reaper.dead(claims.pulses(), now, self.clock.monotonic())
        reaped = claims.abandon(dead, now) if dead else 0
        if reaped:
            logger.warning("marked %d run(s) abandoned: their gateway or worker died", reaped)

    def _sync(self) -> None:
        """Read the apps' manifests and the jobs file, in a thread of its own: at start, every
        few seconds until it works (with `up`, the web app may still be starting), then every
        few minutes, so jobs added in code appear without a restart. A manifest that is slow to
        answer or a jobs file of 100,000 jobs never holds up claims, and the lease is renewed
        meanwhile; claims wait only for the first sync to end."""
        if self._syncing is not None and self._syncing.is_alive():
            return  # then read what it decided
        tick = self.clock.monotonic()
        if tick < self._next_sync:
            return
        self._sync_attempts += 1
        starting = self._sync_attempts <= SYNC_START_ATTEMPTS
        self._next_sync = tick + (SYNC_RETRY_SECONDS if starting else RESYNC_SECONDS)

        def sync() -> None:
            try:
                self._sync_now(tick)
            except Exception:  # a bug must not stop the gateway: the next resync tries again
                logger.exception("sync failed")
            finally:
                database.close()
                self._first_sync.set()

        self._syncing = threading.Thread(target=sync, name="sync", daemon=True)
        self._syncing.start()

    def _sync_now(self, tick: float) -> None:
        try:  # applied at its own time, not when the loop asked (a manifest may be slow)
            report = self._resync.run(self.clock.now, tick)
        except GatewayError as e:  # a bad jobs file: say so, keep scheduling what is stored
            logger.error("sync: %s", e.message)
            return
        except (DatabaseError, InterfaceError) as e:
            logger.warning("sync: database unavailable (%s); trying again later", type(e).__name__)
            return
        if report is None:
            logger.debug("sync: the apps, the jobs file and the stored jobs are unchanged")
            return
        for error in report.errors:
            logger.warning("sync: %s", error)
        if not report.errors:
            self._sync_attempts = SYNC_START_ATTEMPTS  # from now on, the slow rhythm
            self._next_sync = tick + RESYNC_SECONDS
        if report.created or report.updated or report.orphaned or not report.errors:
            logger.info(
                "sync: %d new, %d updated, %d unchanged, %d orphaned job(s)",
                len(report.created),
                len(report.updated),
                len(report.unchanged),
                len(report.orphaned),
            )
        if report.created or report.updated:
            self.wake.set()  # a new or rescheduled job may be due before the loop would look

    def _evaluate_alerts_in_background(self, now: datetime) -> None:
        """Judge the jobs that changed in a thread, in batches of short transactions: with
        thousands of jobs running every few seconds that must not hold up the next claim. A
        round still going when the next is due is left to finish.

        It starts after the round's claims (also when they failed), never before. On
        PostgreSQL a judgement's UPDATE of `late_at` locks the job's row until it commits, and
        a claim passes a locked row over (SKIP LOCKED) until the next round: the round that
        starts judging is not slowed by it. A later round's claim that meets such a lock takes
        the job in the round after, at once, still within the claim lead. Judging also waits
        for the first sync, so a job the apps no longer declare is not judged late."""
        if self._alerts is not None and self._alerts.is_alive():
            return
        self._alert_hold_left = ALERT_HOLD_SECONDS

        def evaluate() -> None:
            try:
                evaluate_alerts(self.settings, now, self._pause_for_alerts)
            except Exception:  # alerts must never stop the gateway
                logger.exception("alerts: evaluation failed")
            finally:
                database.close()

        self._alerts = threading.Thread(target=evaluate, name="alerts", daemon=True)
        self._alerts.start()

    def _pause_for_alerts(self) -> bool:
        """Between two batches of alert judging: a short sleep, longer while a burst of calls is
        starting, so judging never takes the interpreter from sending; the longer waits add up
        to at most ALERT_HOLD_SECONDS a round (the pool may stay busy for minutes). Return True
        if the gateway is stopping (judging stops too)."""
        while not self.stopping.wait(ALERT_PAUSE_SECONDS):
            if not self.starting or self._alert_hold_left <= 0:
                break
            self._alert_hold_left -= ALERT_PAUSE_SECONDS
        return self.stopping.is_set()

    def _prune_in_background(self, now: datetime) -> None:
        """Delete runs past retention in a thread: short batches, so claims go on meanwhile."""

        def prune() -> None:
            try:
                report = prune_once(self.settings, now)
                logger.info("retention: %s", report)
            except Exception:  # next day's prune tries again
                logger.exception("retention: prune failed")
            finally:
                database.close()

        threading.Thread(target=prune, name="prune", daemon=True).start()

    def _hold_lease(self, now: datetime) -> bool:
        """Return True if this gateway may work: always on PostgreSQL, by lease on SQLite."""
        if not is_sqlite():
            return True
        if self.active and leases.renew(ACTIVE_LEASE, self.instance, self.lease, now):
            return True
        taken, previous = leases.acquire(ACTIVE_LEASE, self.instance, self.lease, now)
        if taken and previous:
            logger.warning("took over from gateway %s, whose lease expired", previous)
        return taken

    # -- stopping ----------------------------------------------------------------------------

    def drain(self, timeout: float) -> bool:
        """Wait up to `timeout` seconds for the calls in flight and their outcomes' records."""
        started = time.monotonic()  # a real wait, whatever clock schedules
        if not self.dispatcher.drain(timeout):
            return False
        return self.outcomes.flush(max(0.0, timeout - (time.monotonic() - started)))

    def shutdown(self) -> None:
        """Stop claiming, hand back unsent runs, wait for calls in flight and their records,
        release the lease."""
        waiting = [d.run_id for d in self.dispatcher.take_waiting()]
        try:
            returned = claims.hand_back(waiting)
        except (DatabaseError, InterfaceError) as e:  # the next gateway's reaper ends them
            logger.warning("could not hand back %d run(s): %s", len(waiting), type(e).__name__)
            returned = 0
        if returned:
            logger.info("handed back %d run(s) not sent yet", returned)
        self._release_ahead()
        if not self.drain(self.pacing.shutdown_grace):
            logger.warning(
                "%d call(s) still in flight or unrecorded at shutdown; their runs end abandoned",
                self.dispatcher.in_flight + self.outcomes.waiting,
            )
        self.outcomes.close()
        self.dispatcher.close()
        self.caller.close()
        try:  # the runs of a sender process that died meanwhile
            self._settle_unsent(self.clock.now())
        except (DatabaseError, InterfaceError) as e:
            logger.warning("could not settle a dead sender's runs: %s", type(e).__name__)
        if self._alerts is not None:
            self._alerts.join(self.pacing.shutdown_grace)
        if self._syncing is not None:  # it writes in transactions: safe to cut short
            self._syncing.join(SYNC_JOIN_SECONDS)
        try:
            if self.active:
                leases.release(ACTIVE_LEASE, self.instance)
            gateways.retire(self.instance, self.clock.now())
        except (DatabaseError, InterfaceError) as e:  # the lease expires; the row reads lost
            logger.warning("could not release the lease at shutdown: %s", type(e).__name__)
        database.close()
        logger.info("gateway %s stopped", self.instance)

    def _release_ahead(self) -> None:
        """Give back the slots claimed ahead and not due yet (the next gateway claims them)."""
        if not self.active:
            return
        try:
            released = claims.release_ahead(self.clock.now())
        except (DatabaseError, InterfaceError) as e:
            # They stay queued: the next gateway sends them (on time, or as its misfire says).
            logger.warning("could not give back the slots claimed ahead: %s", type(e).__name__)
            return
        if released:
            logger.info("gave back %d slot(s) claimed ahead, not due yet", released)

    def _install_signal_handlers(self) -> None:
        def handle(signum: int, frame: FrameType | None) -> None:
            self.stop()

        if threading.current_thread() is threading.main_thread():
            signal.signal(signal.SIGTERM, handle)
            signal.signal(signal.SIGINT, handle)


def _seen(outcome: Outcome, lateness_ms: int) -> Seen:
    """Return the store's view of a caller Outcome."""
    status = outcome.status
    if status == "success" and outcome.endpoint_status == "skipped":
        status = "skipped"
    return Seen(
        status=status,
        http_status=outcome.http_status,
        duration_ms=outcome.duration_ms,
        response_excerpt=outcome.response_excerpt,
        summary=outcome.summary,
        error=outcome.error,
        accepted=outcome.accepted,
        lateness_ms=lateness_ms,
    )
