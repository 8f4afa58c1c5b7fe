"""sync_jobs: upsert the jobs each app's `GET /crons` and the jobs file declare (DESIGN §6)."""

from __future__ import annotations

import hashlib
import json
import tomllib
from collections.abc import Iterable
from collections.abc import Mapping
from dataclasses import asdict
from dataclasses import dataclass
from dataclasses import field
from datetime import datetime
from pathlib import Path
from typing import Any
from typing import cast

import requests

from gateway.config import Settings
from gateway.errors import GatewayError
from gateway.errors import ValidationError
from gateway.jobspec import FIELDS
from gateway.jobspec import validate_job
from gateway.store.bulk import in_list
from gateway.store.bulk import insert_models
from gateway.store.db import is_sqlite
from gateway.store.db import write_transaction
from gateway.store.jobs import next_run_at_for
from gateway.store.models import Job

MANIFEST_PATH = "/crons"
MANIFEST_TIMEOUT_S = 10.0
MAX_MANIFEST_BYTES = 5 * 1024 * 1024
SYNCED_SOURCES = ("code", "config")
_SCHEDULING = {"schedule", "tz", "enabled", "max_runs"}
_CHUNK = 900  # jobs read, inserted or orphaned per statement (SQLite < 3.32: 999 variables)


@dataclass
class SyncReport:
    """What one sync did: job names per outcome, and errors as one line each."""

    created: list[str] = field(default_factory=list)
    updated: list[str] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)
    orphaned: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, list[str]]:
        return asdict(self)


@dataclass(frozen=True)
class Declaration:
    """A job as code or config declares it: every declarable field, defaults filled in."""

    name: str
    source: str  # code | config
    values: dict[str, Any]
    origin: str  # the app's base URL or the jobs file, for messages


class ManifestError(GatewayError):
    """An app's `GET /crons` could not be read: its jobs are left as they are."""

    code = "manifest"


def sync_jobs(
    settings: Settings,
    now: datetime,
    *,
    session: requests.Session | None = None,
    apps: Iterable[str] | None = None,
) -> SyncReport:
    """Read the manifests of `apps` (default: GATEWAY_APP_URL) and the jobs file; upsert.

    A bad jobs file raises (ValidationError or InvalidSchedule) before anything is written. An
    app whose manifest cannot be read is reported in `errors`, and none of its jobs is
    orphaned; a bad job in a manifest is reported and that job is left alone.
    """
    return apply_sources(read_sources(settings, session=session, apps=apps), settings, now)


@dataclass(frozen=True)
class Sources:
    """What a sync reads, before anything is parsed or compared: the jobs file's bytes (None
    if there is no file) and, per app, its manifest's job entries or why they could not be
    read."""

    jobs_file: Path
    jobs_file_bytes: bytes | None
    manifests: tuple[tuple[str, list[Any] | ManifestError], ...]

    def digest(self) -> str:
        """Return a hash of everything read: equal digests, equal declarations."""
        h = hashlib.sha256()
        h.update(b"-" if self.jobs_file_bytes is None else b"+" + self.jobs_file_bytes)
        for app, entries in self.manifests:
            read = entries.message if isinstance(entries, ManifestError) else entries
            h.update(json.dumps([app, read], sort_keys=True, default=repr).encode())
        return h.hexdigest()


def read_sources(
    settings: Settings,
    *,
    session: requests.Session | None = None,
    apps: Iterable[str] | None = None,
) -> Sources:
    """Read the jobs file and fetch each app's manifest; parse and compare nothing yet."""
    path = Path(settings.jobs_file)
    manifests: list[tuple[str, list[Any] | ManifestError]] = []
    own = session or requests.Session()
    try:
        for app in apps if apps is not None else (settings.app_url,):
            try:
                manifests.append((app, fetch_manifest(app, settings, own)))
            except ManifestError as e:
                manifests.append((app, e))
    finally:
        if session is None:
            own.close()
    return Sources(path, _read_jobs_file(path), tuple(manifests))


def _read_jobs_file(path: Path) -> bytes | None:
    """Return the jobs file's bytes, None if there is none; raise ValidationError if it exists
    but cannot be read (permissions, a directory), so nothing is synced and nothing changes."""
    try:
        return path.read_bytes()
    except FileNotFoundError:
        return None
    except OSError as e:
        raise ValidationError(
            f"{path}: cannot read the jobs file: {e.strerror or type(e).__name__}",
            field="jobs_file",
        ) from None


def apply_sources(sources: Sources, settings: Settings, now: datetime) -> SyncReport:
    """Upsert what `sources` declare and orphan what they no longer do (see sync_jobs)."""
    configured = (
        {}
        if sources.jobs_file_bytes is None
        else parse_jobs_file(sources.jobs_file, sources.jobs_file_bytes, settings)
    )
    report = SyncReport()
    declared: dict[str, Declaration] = {}
    failed: list[str] = []
    keep: set[str] = set()  # declared badly: left as they are, not orphaned
    for app, entries in sources.manifests:
        if isinstance(entries, ManifestError):
            report.errors.append(entries.message)
            failed.append(app)
            continue
        declared.update(_manifest_declarations(app, entries, settings, declared, report, keep))
    declared.update(configured)  # the operator's file overrides what code declares
    # Which jobs are as declared already is read before taking the write lock: 100,000 of
    # them take seconds to compare, and SQLite's writers (the app's endpoints, the gateway's
    # claims) would wait that long. What could change a verdict meanwhile is another sync,
    # whose file then wins until the next one.
    settled = _settled(declared)
    gone = _orphans(declared, keep, failed, settings)
    if gone:  # a job leaves (renamed, removed): its successor and its end land together
        with write_transaction():
            _apply(declared, settled, now, report)  # its chunks are savepoints here
            _mark_orphaned(gone, now, report)
    else:
        _apply(declared, settled, now, report)
    return report


def parse_jobs_file(path: Path, content: bytes, settings: Settings) -> dict[str, Declaration]:
    """Return the jobs the TOML `content` of the jobs file at `path` declares, all validated."""
    try:
        data = tomllib.loads(content.decode("utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as e:
        raise ValidationError(f"{path}: not valid TOML: {e}", field="jobs_file") from None
    unknown = [key for key in data if key != "job"]
    if unknown:
        raise ValidationError(f"{path}: unknown table {unknown[0]!r}; use [[job]]", field="job")
    entries = data.get("job", [])
    if not isinstance(entries, list):
        raise ValidationError(f"{path}: 'job' must be an array of tables ([[job]])", field="job")
    found: dict[str, Declaration] = {}
    for number, entry in enumerate(entries, start=1):
        if not isinstance(entry, dict):
            raise ValidationError(f"{path}: job #{number}: must be a table", field="job")
        label = f"job {entry.get('name')!r}" if "name" in entry else f"job #{number}"
        if "schedule" not in entry:
            raise ValidationError(f"{path}: {label}: schedule: is required", field="schedule")
        try:
            values = validate_job(entry, settings=settings)
        except GatewayError as e:
            raise type(e)(f"{path}: {label}: {e.message}", field=e.field) from None
        name = values.pop("name")
        if name in found:
            raise ValidationError(f"{path}: {label}: declared twice", field="name")
        found[name] = Declaration(name, "config", _with_defaults(values), str(path))
    return found


def fetch_manifest(app: str, settings: Settings, session: requests.Session) -> list[Any]:
    """Return the job entries of `app`'s `GET /crons`, or raise ManifestError."""
    url = app.rstrip("/") + MANIFEST_PATH
    headers = {"Accept": "application/json"}
    if settings.cron_token:
        headers["X-Cron-Token"] = settings.cron_token
    try:
        response = session.get(
            url, headers=headers, timeout=MANIFEST_TIMEOUT_S, allow_redirects=False
        )
    except requests.RequestException as e:
        raise ManifestError(f"{url}: cannot fetch the manifest ({type(e).__name__})") from None
    if response.status_code != 200:
        hint = " (is GATEWAY_CRON_TOKEN set to a key the app accepts?)"
        raise ManifestError(
            f"{url}: HTTP {response.status_code}" + (hint if response.status_code == 401 else "")
        )
    if len(response.content) > MAX_MANIFEST_BYTES:
        raise ManifestError(f"{url}: manifest larger than {MAX_MANIFEST_BYTES} bytes")
    try:
        body = response.json()
    except ValueError:
        raise ManifestError(f"{url}: the manifest is not JSON") from None
    jobs = body.get("jobs") if isinstance(body, dict) else None
    if not isinstance(jobs, list):
        raise ManifestError(f"{url}: the manifest has no 'jobs' list")
    return jobs


def _manifest_declarations(
    app: str,
    entries: list[Any],
    settings: Settings,
    seen: Mapping[str, Declaration],
    report: SyncReport,
    keep: set[str],
) -> dict[str, Declaration]:
    found: dict[str, Declaration] = {}
    for entry in entries:
        name = entry.get("name") if isinstance(entry, dict) else None
        try:
            if not isinstance(entry, dict):
                raise ValidationError("a manifest entry must be an object", field=None)
            data = dict(entry)
            if isinstance(data.get("url"), str) and data["url"].startswith("/"):
                data["url"] = app.rstrip("/") + data["url"]
            values = validate_job(data, settings=settings)
            if values["name"] in seen or values["name"] in found:
                raise ValidationError("declared by two apps", field="name")
        except GatewayError as e:
            report.errors.append(f"{app}{MANIFEST_PATH}: job {name!r}: {e.message}")
            if isinstance(name, str):
                keep.add(name)
            continue
        del values["name"]
        found[str(name)] = Declaration(str(name), "code", _with_defaults(values), app)
    return found


def _defaults() -> dict[str, Any]:
    """Return the value a new row gets in each declarable field (fresh lists and dicts)."""
    return {**_DEFAULTS, **{f: v.copy() for f, v in _MUTABLE_DEFAULTS.items()}}


_DEFAULTS = {f: getattr(Job(), f) for f in FIELDS if f != "name"}  # read once, not per job
_MUTABLE_DEFAULTS = {f: v for f, v in _DEFAULTS.items() if isinstance(v, (dict, list))}


def _with_defaults(values: Mapping[str, Any]) -> dict[str, Any]:
    """Return every declarable field: the declared value, or the one a new row would get."""
    return {**_defaults(), **values}


def _apply(
    declared: Mapping[str, Declaration], settled: set[str], now: datetime, report: SyncReport
) -> None:
    names = sorted(declared)
    for start in range(0, len(names), _CHUNK):  # bounded memory for a file of 100,000 jobs
        with write_transaction():  # a chunk at a time: SQLite's other writers wait that long
            _apply_chunk(declared, names[start : start + _CHUNK], settled, now, report)


def _apply_chunk(
    declared: Mapping[str, Declaration],
    chunk: list[str],
    settled: set[str],
    now: datetime,
    report: SyncReport,
) -> None:
    rest = [name for name in chunk if name not in settled]
    existing = {j.name: j for j in Job.select().where(in_list(Job.name, rest))} if rest else {}
    mine = [j.id for j in existing.values() if j.source in SYNCED_SOURCES and not j.deleted_at]
    if mine and not is_sqlite():
        # PostgreSQL: the gateway's claims may advance the rows `_update` changes meanwhile
        # (SQLite's write transaction excludes them already): read again, locked in id order.
        # Only those: a claim passes a locked job over, and a job of that name made by the API
        # (an error each sync) must not lose a slot to that.
        locked = Job.select().where(in_list(Job.id, mine)).order_by(Job.id).for_update()
        existing.update({j.name: j for j in locked})
    new: list[Job] = []
    for name in chunk:
        decl, job = declared[name], existing.get(name)
        if name in settled:
            report.unchanged.append(name)
        elif job is None:
            job = Job(name=name, created_at=now, updated_at=now, source=decl.source)
            _assign(job, decl.values)
            job.declared, job.next_run_at = decl.values, next_run_at_for(job, now)
            new.append(job)
            report.created.append(name)
        elif job.source not in SYNCED_SOURCES:
            report.errors.append(
                f"job {name!r}: declared in {decl.origin}, but a job of that name was made "
                f"by {job.source}; left alone (rename one of them)"
            )
        elif job.deleted_at is not None:
            report.unchanged.append(name)  # an operator deleted it: that wins over code
        elif _update(job, decl, now):
            report.updated.append(name)
        else:
            report.unchanged.append(name)
    insert_models(new)  # one executemany, not a save() each


def _settled(declared: Mapping[str, Declaration]) -> set[str]:
    """Return the names whose row `_update` would leave as it is: synced last from this very
    declaration (the stored JSON text is equal), from the same source, not orphaned, and not
    waiting for a first slot. Read as text, not as models: a resync of 100,000 jobs."""
    names = sorted(declared)
    settled: set[str] = set()
    for start in range(0, len(names), _CHUNK):
        query = Job.select(
            Job.name,
            Job.source,
            Job.declared.cast("TEXT"),
            Job.orphaned_at.is_null(),
            Job.enabled & Job.next_run_at.is_null(),
        ).where(in_list(Job.name, names[start : start + _CHUNK]))
        rows = cast(Iterable[tuple[str, str, str | None, bool, bool]], query.tuples())
        for name, source, text, linked, unslotted in rows:
            decl = declared[name]
            if source == decl.source and linked and not unslotted:
                if text == Job.declared.db_value(decl.values):
                    settled.add(name)
    return settled


def _assign(job: Job, values: Mapping[str, Any]) -> None:
    for name, value in values.items():
        setattr(job, name, value)


def _update(job: Job, decl: Declaration, now: datetime) -> bool:
    """Apply what the declaration changed to fields nobody else changed; True if any."""
    # Never synced (the endpoint made the row on a first call): its fields are all declared.
    previous = job.declared if job.declared is not None else {f: getattr(job, f) for f in FIELDS}
    defaults = _defaults()
    changed = {
        f
        for f, value in decl.values.items()
        if getattr(job, f) != value and getattr(job, f) == previous.get(f, defaults[f])
    }
    _assign(job, {f: decl.values[f] for f in changed})
    came_back, moved = job.orphaned_at is not None, job.source != decl.source
    job.orphaned_at, job.source = None, decl.source
    next_run_at = job.next_run_at
    if changed & _SCHEDULING or came_back or (next_run_at is None and job.enabled):
        next_run_at = next_run_at_for(job, now)
    touched = bool(changed or came_back or moved)
    if touched or next_run_at != job.next_run_at or job.declared != decl.values:
        job.next_run_at, job.declared = next_run_at, decl.values
        job.updated_at = now if touched else job.updated_at
        job.save(only=job.dirty_fields)  # not the columns claims and runs keep moving
    return touched


def _orphans(
    declared: Mapping[str, Declaration], keep: set[str], failed: list[str], settings: Settings
) -> list[tuple[int, str]]:
    """Return (id, name) of the synced jobs nobody declares now, except those of apps we
    could not read: what the sync orphans."""
    query = Job.select(Job.id, Job.name, Job.source, Job.url).where(
        Job.source.in_(SYNCED_SOURCES) & Job.deleted_at.is_null() & Job.orphaned_at.is_null()
    )
    gone: list[tuple[int, str]] = []
    for job_id, name, source, url in query.tuples().iterator():  # not 100,000 models at once
        if name in declared or name in keep:
            continue
        if (failed and source == "code") or _served_by(url, failed, settings):
            continue  # its app may still declare it: we could not ask
        gone.append((job_id, name))
    return gone


def _mark_orphaned(gone: list[tuple[int, str]], now: datetime, report: SyncReport) -> None:
    """Orphan the `gone` jobs still live and synced: they were read before the write lock, and
    an operator may have deleted one (or made it again through the API) meanwhile."""
    names = dict(gone)
    ids = sorted(names)
    still = Job.source.in_(SYNCED_SOURCES) & Job.deleted_at.is_null() & Job.orphaned_at.is_null()
    for start in range(0, len(ids), _CHUNK):
        chunk = in_list(Job.id, ids[start : start + _CHUNK]) & still
        orphaned = [job.id for job in Job.select(Job.id).where(chunk)]
        Job.update(orphaned_at=now, next_run_at=None, updated_at=now).where(
            in_list(Job.id, orphaned)
        ).execute()
        report.orphaned.extend(names[job_id] for job_id in orphaned)
    report.orphaned.sort()


def _served_by(url: str, apps: list[str], settings: Settings) -> bool:
    """Return True if `url` points into one of `apps` (a path points into GATEWAY_APP_URL)."""
    for app in apps:
        base = app.rstrip("/")
        if url.startswith(base + "/") or (
            url.startswith("/") and base == settings.app_url.rstrip("/")
        ):
            return True
    return False
