"""The detached worker of one historical search: `python -m msgtrace.query.historical_worker STORE JOBID`.

Started by `msgtrace historical-search start` in a session of its own (see query.historical).
It marks the job InProgress, beats every few seconds, writes the report to a part file, renames
it into place and only then marks the job Done. Any failure marks the job Failed with a one-line
reason; SIGTERM (`historical-search stop`) ends it at once, the job already Cancelled.
"""

from __future__ import annotations

import os
import signal
import sys
import threading
from dataclasses import replace
from pathlib import Path

from msgtrace.query import historical as H
from msgtrace.storepath import store_path


def _beat(store: Path, job_id: str, stop: threading.Event) -> None:
    """Touch the job's heartbeat until stopped or the job has ended (stopped by someone else)."""
    while not stop.wait(H.HEARTBEAT_SECONDS):
        try:
            job = H.update_job(store, job_id, heartbeat=H._iso(H._now()))
        except H.JobBusy:
            continue  # a reader holds the job's lock: beat next time
        if job.status in H.FINAL_STATUSES:
            return


def _claim(store: Path, job_id: str) -> H.Job | None:
    """Mark the job InProgress under its lock; None when it has already ended (stopped before we ran)."""
    with H.locked(store, job_id):
        job = H.read_job(store, job_id)
        if job.status in H.FINAL_STATUSES:
            return None
        now = H._iso(H._now())
        pid = os.getpid()
        job = replace(
            job, status="InProgress", pid=pid, pid_start=H.process_start(pid), heartbeat=now, started_date=now
        )
        H.write_job(store, job)
        return job


def _finish(store: Path, job: H.Job, rows: int) -> None:
    """Rename the complete report into place and mark the job Done, unless it was stopped meanwhile."""
    part, final = H.part_path(store, job), H.report_path(store, job)
    with H.locked(store, job.job_id):
        current = H.read_job(store, job.job_id)
        if current.status != "InProgress":
            H._unlink(part)
            return

        H.reports_store(store).fs.rename(part, final)  # local, durable: the directory is fsynced
        H.write_job(store, replace(current, status="Done", rows=rows, file=str(final), completed_date=H._iso(H._now())))


def _fail(store: Path, job: H.Job, e: BaseException) -> None:
    # the reason `historical-search get` shows: worded as the command's own errors are
    from msgtrace.cli.errors import cli_message, one_line
    from msgtrace.errors import MsgtraceError

    reason = cli_message(e) if isinstance(e, MsgtraceError) else one_line(e)
    H._unlink(H.part_path(store, job))
    H.update_job(store, job.job_id, status="Failed", error=reason or "failed", completed_date=H._iso(H._now()))


def run(store: Path, job_id: str) -> int:
    """Run one job to its end; the exit code says whether it is Done."""
    job = _claim(store, job_id)
    if job is None:
        return 0
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    stop = threading.Event()
    beat = threading.Thread(target=_beat, args=(store, job_id, stop), daemon=True)
    beat.start()
    try:
        df = H.report_frame(store, job)
        H.write_report(df, job, H.part_path(store, job))
        _finish(store, job, df.height)
        return 0
    except SystemExit:
        # SIGTERM: from `stop` (the job is Cancelled already, and stays so) or from a shutdown
        H._unlink(H.part_path(store, job))
        H.update_job(store, job_id, status="Failed", error="the worker was terminated (SIGTERM)")
        raise
    except BaseException as e:
        _fail(store, job, e)
        raise
    finally:
        stop.set()


def main(argv: list[str]) -> int:
    if len(argv) != 3:
        print("usage: python -m msgtrace.query.historical_worker STORE JOBID", file=sys.stderr)
        return 2
    return run(store_path(argv[1]), argv[2])


if __name__ == "__main__":
    sys.exit(main(sys.argv))
