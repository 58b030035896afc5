"""Historical search (Start-HistoricalSearch / Get-HistoricalSearch / Stop-HistoricalSearch).

A job is a trace over any range (no age limit) whose result is written to a report file by a
detached worker process (`python -m msgtrace.query.historical_worker`), so the command that
starts it returns at once and the job survives the terminal closing. Everything lives in the
store, beside the tables:

    <store>/_reports/<JobId>.json      the job: parameters, Status, Rows, File, Error, worker pid, heartbeat
    <store>/_reports/<JobId>.csv       the report (or .parquet), renamed into place only when complete
    <store>/_reports/.<JobId>.part     the report being written (removed when the job ends badly)
    <store>/_reports/<JobId>.log       the worker's stderr (a crash's traceback, for whoever debugs it)
    <store>/_reports/<JobId>.lock      serialises changes of the job file (worker, stop, dead-worker check)

Statuses: NotStarted (written, worker not yet running), InProgress, Done, Failed (with a
reason), Cancelled (`stop`). A worker that died (killed, crashed, machine restarted) leaves its
job InProgress; whoever reads the job next (list/get) sees that its pid is gone or its
heartbeat stale and marks it Failed with that reason. The report is renamed into place before
the job says Done, and a job says Done only when the file holds every row.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import fcntl
import json
import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path, PurePath
from typing import TYPE_CHECKING, Any

import polars as pl

if TYPE_CHECKING:
    from msgtrace.store import Store

from msgtrace.query.filters import QueryError, TraceFilter, split_values

REPORTS_DIR = "_reports"
JOB_STATUSES = ("NotStarted", "InProgress", "Done", "Failed", "Cancelled")
FINAL_STATUSES = ("Done", "Failed", "Cancelled")
REPORT_TYPES = ("MessageTrace", "MessageTraceDetail")
REPORT_FORMATS = ("csv", "parquet")
ENCODINGS = ("utf-8", "utf-16le")
# Exchange's Start-HistoricalSearch -Direction values
SEARCH_DIRECTIONS = ("All", "Inbound", "Outbound")
MAX_ADDRESSES = 100
# The worker touches its job this often; a job not touched for STALE_AFTER is taken for dead
# even when its pid is alive (a hung worker, or a pid reused by another program).
HEARTBEAT_SECONDS = 5.0
STALE_AFTER = dt.timedelta(seconds=120)
WORKER_MODULE = "msgtrace.query.historical_worker"


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def _iso(t: dt.datetime) -> str:
    return t.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


@dataclass(frozen=True)
class Job:
    """One historical search: what to search, and how far it got."""

    job_id: str
    submit_date: str
    report_title: str
    report_type: str
    status: str = "NotStarted"
    rows: int | None = None
    file: str | None = None
    error: str | None = None
    format: str = "csv"
    encoding: str = "utf-8"
    # TraceFilter.from_params arguments, the window already resolved to UTC (see start_job)
    filters: dict[str, Any] = field(default_factory=dict)
    direction: str = "All"
    pid: int | None = None
    pid_start: str | None = None  # the worker's start time as /proc tells it: a reused pid is not ours
    heartbeat: str | None = None
    started_date: str | None = None
    completed_date: str | None = None

    def public(self) -> dict[str, Any]:
        """The columns `historical-search list|get` shows, Exchange's names first."""
        return {
            "JobId": self.job_id,
            "SubmitDate": self.submit_date,
            "ReportTitle": self.report_title,
            "ReportType": self.report_type,
            "Status": self.status,
            "Rows": self.rows,
            "File": self.file,
            "Error": self.error,
            "StartDate": self.filters.get("start_date"),
            "EndDate": self.filters.get("end_date"),
            "CompletedDate": self.completed_date,
        }


# --- where things are ---------------------------------------------------------------------------


def reports_dir(store: PurePath) -> Path:
    """Where a store's jobs and reports are: <store>/_reports/ for a local store; for one on object
    storage a local folder per bucket and prefix (~/.local/state/msgtrace/reports/..., or under
    $XDG_STATE_HOME): a job is this machine's detached worker, locked with flock, and its report a
    file to download from here."""
    if isinstance(store, Path):
        return store / REPORTS_DIR
    home = Path(os.environ.get("XDG_STATE_HOME") or Path.home() / ".local" / "state")
    return home / "msgtrace" / "reports" / "s3" / Path(*store.parts[1:])


def reports_store(store: PurePath) -> Store:
    """A Store over reports_dir, for its file system: the local disk, whichever the store is on."""
    from msgtrace.store import Store

    return Store(reports_dir(store))


def job_path(store: Path, job_id: str) -> Path:
    return reports_dir(store) / f"{job_id}.json"


def report_path(store: Path, job: Job) -> Path:
    return reports_dir(store) / f"{job.job_id}.{job.format}"


def part_path(store: Path, job: Job) -> Path:
    return reports_dir(store) / f".{job.job_id}.part"


def log_path(store: Path, job_id: str) -> Path:
    return reports_dir(store) / f"{job_id}.log"


# --- reading and changing a job ----------------------------------------------------------------


def check_job_id(value: str) -> str:
    """A JobId as lowercase GUID text, or QueryError."""
    try:
        return str(uuid.UUID(value.strip()))
    except (ValueError, AttributeError):
        raise QueryError(f"invalid JOBID {value!r}: expected a GUID as printed by `historical-search start`") from None


def read_job(store: Path, job_id: str) -> Job:
    """The job as last written, or QueryError when there is none."""
    path = job_path(store, job_id)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise QueryError(f"no historical search {job_id} in {reports_dir(store)}") from None
    except (OSError, ValueError) as e:
        raise QueryError(f"historical search {job_id}: cannot read {path}: {e}") from None
    return Job(**{k: v for k, v in data.items() if k in Job.__dataclass_fields__})


def write_job(store: Path, job: Job) -> None:
    """Replace the job file atomically (readers see the old or the new job, never half)."""

    reports_store(store).fs.write_text(job_path(store, job.job_id), json.dumps(asdict(job), indent=1) + "\n")


# Each holder keeps the lock for one read-check-write of a small file; a holder that cannot get
# it in this long is facing a holder that hangs (or was stopped) and gives up rather than hang too.
LOCK_TIMEOUT = 10.0


class JobBusy(QueryError):
    """The job's lock stayed taken for LOCK_TIMEOUT seconds."""


@contextlib.contextmanager
def locked(store: Path, job_id: str, timeout: float | None = None) -> Iterator[None]:
    """Hold the job's lock: read-check-write of its file by the worker, `stop` and the dead-worker check."""
    import time

    reports_dir(store).mkdir(parents=True, exist_ok=True)
    with open(reports_dir(store) / f"{job_id}.lock", "a+") as f:
        deadline = time.monotonic() + (LOCK_TIMEOUT if timeout is None else timeout)
        while True:
            try:
                fcntl.flock(f.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    raise JobBusy(f"historical search {job_id} is busy (its lock is held): try again") from None
                time.sleep(0.02)
        try:
            yield
        finally:
            fcntl.flock(f.fileno(), fcntl.LOCK_UN)


def update_job(store: Path, job_id: str, **changes: Any) -> Job:
    """Change fields of a job under its lock; a job already ended is left as it is."""
    with locked(store, job_id):
        job = read_job(store, job_id)
        if job.status in FINAL_STATUSES:
            return job
        job = replace(job, **changes)
        write_job(store, job)
        return job


# --- is the worker alive? ------------------------------------------------------------------------


def process_start(pid: int) -> str | None:
    """The start time of process pid (clock ticks since boot, from /proc), None when unknown or gone.

    A zombie (killed, not yet reaped by its parent) counts as gone.
    """
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = stat[stat.rfind(")") + 2 :].split()
    if not fields or fields[0] in ("Z", "X"):
        return None
    return fields[19] if len(fields) > 19 else None


def worker_alive(job: Job, now: dt.datetime | None = None) -> bool:
    """Whether the job's worker still runs: its pid exists (and is the same process) and it beats."""
    if job.pid is None:
        return False
    if Path("/proc").is_dir():
        start = process_start(job.pid)
        if start is None or (job.pid_start is not None and start != job.pid_start):
            return False
    else:
        try:
            os.kill(job.pid, 0)
        except ProcessLookupError:
            return False
        except PermissionError:
            pass
    beat = job.heartbeat or job.started_date or job.submit_date
    return (now or _now()) - dt.datetime.fromisoformat(beat.replace("Z", "+00:00")) < STALE_AFTER


def dead_reason(job: Job, now: dt.datetime | None = None) -> str | None:
    """Why a job that has not ended will never end (its worker is gone or silent), or None."""
    if job.status in FINAL_STATUSES:
        return None
    now = now or _now()
    if job.pid is None:
        # the starting command died between writing the job and recording its worker
        submitted = dt.datetime.fromisoformat(job.submit_date.replace("Z", "+00:00"))
        return "the worker process was never started" if now - submitted >= STALE_AFTER else None
    if worker_alive(job, now):
        return None
    if job.heartbeat is not None and process_start(job.pid) is not None:
        return f"the worker process {job.pid} stopped reporting progress for over {int(STALE_AFTER.total_seconds())} s"
    return f"the worker process {job.pid} ended without finishing (killed, crashed or the machine restarted)"


def check_dead(store: Path, job: Job) -> Job:
    """A job whose worker died is Failed (with why), its files removed; other jobs are returned unchanged."""
    if dead_reason(job) is None:
        return job
    try:
        with locked(store, job.job_id):
            return _fail_dead(store, job.job_id)
    except JobBusy:
        return job  # someone holds the job: show it as last written, check again next time


def _fail_dead(store: Path, job_id: str) -> Job:
    """Under the job's lock: mark the job of a dead worker Failed, its part and report files removed."""
    job = read_job(store, job_id)  # the worker may have finished meanwhile
    reason = dead_reason(job)
    if reason is None:
        return job
    last = _last_line(log_path(store, job.job_id))
    if last:
        reason += f"; its last words: {last}"
    # a report renamed into place just before the kill: never shown, so not left behind either
    _unlink(part_path(store, job))
    _unlink(report_path(store, job))
    job = replace(job, status="Failed", error=reason, file=None, rows=None, completed_date=_iso(_now()))
    write_job(store, job)
    return job


def _last_line(path: Path) -> str:
    try:
        lines = [line.strip() for line in path.read_text(encoding="utf-8", errors="replace").splitlines()]
    except OSError:
        return ""
    lines = [line for line in lines if line]
    return lines[-1][:300] if lines else ""


def _unlink(path: Path) -> None:
    with contextlib.suppress(FileNotFoundError):
        path.unlink()


# --- the commands ---------------------------------------------------------------------------------


def choice(value: str | None, valid: tuple[str, ...], option: str, default: str) -> str:
    """value spelled as one of valid (any case), or QueryError naming the option and the valid values."""
    if value is None:
        return default
    for v in valid:
        if v.lower() == value.strip().lower():
            return v
    raise QueryError(f"invalid {option} {value!r}: valid values are {', '.join(valid)}")


def validate(params: dict[str, Any]) -> tuple[TraceFilter, dict[str, Any]]:
    """Exchange's rules for Start-HistoricalSearch, and the trace filter of the search.

    At least one of sender, recipient or message id; at most 100 addresses; start and end
    dates required, the start not after the end; no age limit.
    """
    senders = split_values(params.get("sender_address"))
    recipients = split_values(params.get("recipient_address"))
    ids = split_values(params.get("message_id"))
    if not (senders or recipients or ids):
        raise QueryError(
            "historical-search start needs at least one of --sender-address, --recipient-address or --message-id"
        )
    if len(senders) + len(recipients) > MAX_ADDRESSES:
        raise QueryError(
            f"too many addresses: {len(senders) + len(recipients)} in --sender-address and --recipient-address, "
            f"at most {MAX_ADDRESSES}; split the search"
        )
    direction = choice(params.get("direction"), SEARCH_DIRECTIONS, "--direction", "All")
    if not (params.get("report_title") or "").strip():
        raise QueryError("--report-title must not be empty")
    filters = {
        "start_date": params["start_date"],
        "end_date": params["end_date"],
        "sender_address": senders,
        "recipient_address": recipients,
        "message_id": ids,
        "status": split_values(params.get("delivery_status")),
        "from_ip": params.get("original_client_ip"),
        "now": params.get("now"),
        "timezone": params.get("timezone"),
        "max_age_days": 0,
    }
    flt = TraceFilter.from_params(**filters)
    from msgtrace.query.dates import iso_z

    # The worker gets the window in UTC: it reads no clock and no zone of its own.
    resolved = {
        "start_date": iso_z(flt.start),
        "end_date": iso_z(flt.end),
        "sender_address": list(senders),
        "recipient_address": list(recipients),
        "message_id": list(ids),
        "status": list(flt.statuses),
        "from_ip": flt.from_ip,
        "timezone": "UTC",
        "max_age_days": 0,
        "direction": [] if direction == "All" else [direction],
    }
    return flt, resolved


def start_job(store: Path, params: dict[str, Any]) -> Job:
    """Validate, write the job (NotStarted), start its detached worker; returns at once."""
    _, filters = validate(params)
    job = Job(
        job_id=str(uuid.uuid4()),
        submit_date=_iso(_now()),
        report_title=params["report_title"].strip(),
        report_type=choice(params.get("report_type"), REPORT_TYPES, "--report-type", "MessageTrace"),
        format=choice(params.get("format"), REPORT_FORMATS, "--format", "csv"),
        encoding=choice(params.get("encoding"), ENCODINGS, "--encoding", "utf-8"),
        direction=choice(params.get("direction"), SEARCH_DIRECTIONS, "--direction", "All"),
        filters=filters,
    )
    if job.format == "parquet" and job.encoding != "utf-8":
        raise QueryError("--encoding applies to --format csv only (parquet stores UTF-8 text)")
    reports_dir(store).mkdir(parents=True, exist_ok=True)
    write_job(store, job)
    try:
        pid = spawn_worker(store, job.job_id)
    except OSError as e:
        return update_job(store, job.job_id, status="Failed", error=f"could not start the worker: {e}")
    # The worker writes its own pid too; this covers a worker that dies before it can.
    with locked(store, job.job_id):
        current = read_job(store, job.job_id)
        if current.pid is None and current.status not in FINAL_STATUSES:
            current = replace(current, pid=pid, pid_start=process_start(pid))
            write_job(store, current)
    return current


def spawn_worker(store: Path, job_id: str) -> int:
    """Start the worker in its own session (no terminal: closing it sends no SIGHUP), stdio detached."""
    with open(log_path(store, job_id), "ab") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", WORKER_MODULE, str(store.resolve() if isinstance(store, Path) else store), job_id],
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=log,
            start_new_session=True,
            close_fds=True,
            cwd="/",
        )
    return proc.pid


def list_jobs(store: Path) -> list[Job]:
    """Every job of the store, oldest first, dead workers' jobs marked Failed."""
    folder = reports_dir(store)
    if not folder.is_dir():
        return []
    jobs = []
    for path in folder.glob("*.json"):
        try:
            jobs.append(check_dead(store, read_job(store, path.stem)))
        except QueryError:
            continue  # a job file removed meanwhile
    return sorted(jobs, key=lambda j: (j.submit_date, j.job_id))


def get_job(store: Path, job_id: str) -> Job:
    """One job, a dead worker's marked Failed."""
    return check_dead(store, read_job(store, check_job_id(job_id)))


def stop_job(store: Path, job_id: str) -> Job:
    """Cancel a job: Cancelled, its worker terminated, its partial file removed. An ended job stays as it is."""
    import signal

    job_id = check_job_id(job_id)
    with locked(store, job_id):
        job = read_job(store, job_id)
        if job.status in FINAL_STATUSES:
            return job
        if job.pid is not None and worker_alive(job):
            with contextlib.suppress(ProcessLookupError):
                os.killpg(job.pid, signal.SIGTERM)  # the worker leads its own session
        job = replace(job, status="Cancelled", error="stopped by historical-search stop", completed_date=_iso(_now()))
        _unlink(part_path(store, job))
        write_job(store, job)
    return job


# --- the report ------------------------------------------------------------------------------------

# MessageTraceDetail report columns: Exchange's extended report names, as far as logs provide them.
DETAIL_REPORT_COLUMNS = (
    "date_time_utc", "client_ip", "client_hostname", "server_ip", "server_hostname", "source_context",
    "source", "event_id", "internal_message_id", "message_id", "network_message_id", "recipient_address",
    "recipient_status", "total_bytes", "recipient_count", "related_recipient_address", "reference",
    "message_subject", "sender_address", "return_path", "message_info", "directionality",
    "original_client_ip", "origin_timestamp_utc",
)  # fmt: skip


def search_filter(job: Job) -> TraceFilter:
    """The job's trace filter (its window is stored in UTC, so this reads no clock)."""
    return TraceFilter.from_params(**job.filters)


def message_rows(store: Path, job: Job) -> pl.LazyFrame:
    """The job's message rows (stored columns plus direction), filtered, unsorted."""
    from msgtrace.query import engine

    return engine.scan(store, search_filter(job))


def message_trace_report(store: Path, job: Job) -> pl.DataFrame:
    """A MessageTrace report: `msgtrace trace`'s columns and order (every row, no paging), plus Direction."""
    from msgtrace.query import engine

    return engine.contract_frame(engine.sort(message_rows(store, job)), search_filter(job)).collect()


def message_trace_detail_report(store: Path, job: Job) -> pl.DataFrame:
    """A MessageTraceDetail report: one row per event of the matching messages, Exchange's extended columns."""
    from msgtrace.query.detail import event_expr, events_for_messages

    rows = message_rows(store, job).collect()
    ev = events_for_messages(store, rows)
    per_message = rows.unique("message_trace_id").select(
        "message_trace_id",
        pl.col("received").alias("_received"),
        pl.col("message_id").alias("_message_id"),
        pl.col("subject").alias("_subject"),
        pl.col("sender_address").alias("_sender"),
        pl.col("size").alias("_size"),
        pl.col("from_ip").alias("_from_ip"),
        "direction",
    )
    ev = ev.join(per_message, on="message_trace_id", how="left", maintain_order="left")
    sending = pl.col("kind").is_in(["deliver", "handoff"])
    return ev.select(
        pl.col("time").alias("date_time_utc"),
        pl.when(sending).then(pl.lit(None, pl.String)).otherwise(pl.col("client_ip")).alias("client_ip"),
        pl.when(sending).then(pl.col("host")).otherwise(pl.col("client_host")).alias("client_hostname"),
        pl.when(sending).then(pl.col("to_ip")).otherwise(pl.lit(None, pl.String)).alias("server_ip"),
        pl.when(sending).then(pl.col("relay")).otherwise(pl.col("host")).alias("server_hostname"),
        pl.col("program").alias("source_context"),
        pl.col("format").alias("source"),
        event_expr(["message_trace_id", "queue_id"]).str.to_uppercase().alias("event_id"),
        pl.col("queue_id").alias("internal_message_id"),
        pl.coalesce("message_id", "_message_id").alias("message_id"),
        pl.col("message_trace_id").alias("network_message_id"),
        pl.col("recipient").alias("recipient_address"),
        pl.concat_str([pl.col("dsn"), pl.col("detail")], separator=" ", ignore_nulls=True).alias("recipient_status"),
        pl.coalesce("size", "_size").alias("total_bytes"),
        pl.col("nrcpt").alias("recipient_count"),
        pl.col("orig_recipient").alias("related_recipient_address"),
        pl.col("next_queue_id").alias("reference"),
        pl.coalesce("subject", "_subject").alias("message_subject"),
        pl.col("_sender").alias("sender_address"),
        pl.coalesce("sender", "_sender").alias("return_path"),
        pl.col("delay").cast(pl.String).alias("message_info"),
        pl.col("direction").alias("directionality"),
        pl.col("_from_ip").alias("original_client_ip"),
        pl.col("_received").alias("origin_timestamp_utc"),
    )


def report_frame(store: Path, job: Job) -> pl.DataFrame:
    """The job's report rows."""
    if job.report_type == "MessageTraceDetail":
        return message_trace_detail_report(store, job)
    return message_trace_report(store, job)


def write_report(df: pl.DataFrame, job: Job, path: Path) -> None:
    """The report file: CSV (header, cells neutralised as `msgtrace trace --output csv`) or Parquet."""
    from msgtrace.query.output import to_csv, write

    if job.format == "parquet":
        write(df, "parquet", path, sys.stdout)  # written beside, renamed over path
        return

    text = to_csv(df)
    with open(path, "wb") as f:
        if job.encoding == "utf-16le":
            f.write(b"\xff\xfe" + text.encode("utf-16-le"))  # with a BOM, as Exchange's own reports
        else:
            f.write(text.encode("utf-8"))
        f.flush()
        os.fsync(f.fileno())
