"""`msgtrace historical-search`: detached jobs whose report equals `msgtrace trace` with the same filters."""

from __future__ import annotations

import datetime as dt
import json
import os
import signal
import time
import uuid
from pathlib import Path
from typing import Any

import polars as pl
import pytest
from click.testing import CliRunner, Result

from msgtrace.cli import cli
from msgtrace.query import historical as H
from msgtrace.query.detail import message_trace_detail
from msgtrace.query.filters import TraceFilter
from tests.helpers_generated import NOW, generated_store

DATES = ["--start-date", "2026-05-31", "--end-date", "2026-06-04", "--timezone", "UTC"]


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return generated_store(tmp_path_factory.mktemp("historical"))


def invoke(*args: str) -> Result:
    env = {"MSGTRACE_NOW": None, "MSGTRACE_TZ": None, "MSGTRACE_STORE": None, "COLUMNS": "200"}
    return CliRunner(env=env).invoke(cli, list(args), catch_exceptions=False)


def start(store: Path, *args: str, title: str = "T") -> str:
    res = invoke("historical-search", "start", "--store", str(store), "--report-title", title, *DATES, *args)
    assert res.exit_code == 0, res.output
    first = res.stdout.splitlines()[0]
    assert str(uuid.UUID(first)) == first and res.stdout == first + "\n"
    return first


def get(store: Path, job_id: str) -> dict[str, Any]:
    res = invoke("historical-search", "get", "--store", str(store), job_id, "--output", "json")
    assert res.exit_code == 0, res.output
    return json.loads(res.stdout)


def wait(store: Path, job_id: str, timeout: float = 120) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        job = get(store, job_id)
        if job["Status"] in H.FINAL_STATUSES:
            return job
        time.sleep(0.1)
    raise AssertionError(f"job {job_id} did not end: {get(store, job_id)}")


def trace_csv(store: Path, *args: str) -> str:
    res = invoke("trace", "--store", str(store), *DATES, "--max-age-days", "0", "--now", NOW, "--page-size", "5000",
                 "--output", "csv", *args)  # fmt: skip
    assert res.exit_code == 0, res.output
    return res.stdout


def test_report_file_equals_trace_with_the_same_filters(store: Path) -> None:
    job_id = start(store, "--sender-address", "*@example.org", "--delivery-status", "Delivered,Failed")
    job = wait(store, job_id)
    assert job["Status"] == "Done", job
    assert job["ReportType"] == "MessageTrace" and job["ReportTitle"] == "T"
    path = Path(job["File"])
    assert path == store / "_reports" / f"{job_id}.csv"
    text = path.read_text(encoding="utf-8")
    want = trace_csv(store, "--sender-address", "*@example.org", "--status", "Delivered,Failed")
    got = pl.read_csv(path, infer_schema=False)
    assert got.columns[-1] == "Direction" and set(got["Direction"].unique()) <= {"Inbound", "Outbound", "Local"}
    assert text == want  # byte for byte: the same columns (Direction included), order and neutralised cells
    assert job["Rows"] == got.height > 50


def test_job_list_shows_every_job(store: Path) -> None:
    a = start(store, "--recipient-address", "*@example.org", title="first")
    b = start(store, "--sender-address", "*@example.org", title="second")
    wait(store, a), wait(store, b)
    res = invoke("historical-search", "list", "--store", str(store), "--output", "json")
    jobs = {j["JobId"]: j for j in json.loads(res.stdout)}
    assert {a, b} <= set(jobs)
    assert list(jobs[a])[:7] == ["JobId", "SubmitDate", "ReportTitle", "ReportType", "Status", "Rows", "File"]
    table = invoke("historical-search", "list", "--store", str(store))
    assert table.exit_code == 0 and "first" in table.stdout and "second" in table.stdout and "Done" in table.stdout


def test_two_jobs_run_at_once(store: Path) -> None:
    ids = [start(store, "--recipient-address", "*@example.org"), start(store, "--recipient-address", "*@example.org")]
    jobs = [wait(store, j) for j in ids]
    assert [j["Status"] for j in jobs] == ["Done", "Done"]
    assert Path(jobs[0]["File"]).read_bytes() == Path(jobs[1]["File"]).read_bytes()


def test_detail_report_holds_the_events_of_each_row(store: Path) -> None:
    job = wait(store, start(store, "--sender-address", "*@example.org", "--report-type", "MessageTraceDetail",
                            "--format", "parquet"))  # fmt: skip
    assert job["Status"] == "Done", job
    df = pl.read_parquet(job["File"])
    assert list(df.columns)[:12] == list(H.DETAIL_REPORT_COLUMNS)[:12]
    assert job["Rows"] == df.height
    trace = pl.read_csv(trace_csv(store, "--sender-address", "*@example.org").encode(), infer_schema=False)
    assert set(df["network_message_id"].unique()) == set(trace["MessageTraceId"].unique())
    # every row's events are those `msgtrace detail` shows for it
    for row in trace.sample(8, seed=3).iter_rows(named=True):
        flt = TraceFilter.from_params(message_trace_id=row["MessageTraceId"], start_date="2026-05-31",
                                      end_date="2026-06-04", timezone="UTC", max_age_days=0)  # fmt: skip
        want = message_trace_detail(store, flt, row["RecipientAddress"])
        mine = df.filter(
            (pl.col("network_message_id") == row["MessageTraceId"])
            & (pl.col("recipient_address").is_null() | (pl.col("recipient_address").str.to_lowercase() == row["RecipientAddress"].lower())
               | (pl.col("related_recipient_address").str.to_lowercase() == row["RecipientAddress"].lower()))
        )  # fmt: skip
        assert mine["event_id"].to_list() == want["Event"].str.to_uppercase().to_list()
        assert mine["date_time_utc"].to_list() == want["Date"].to_list()


def test_utf16_report_is_the_same_text(store: Path) -> None:
    a = wait(store, start(store, "--recipient-address", "*@example.org"))
    b = wait(store, start(store, "--recipient-address", "*@example.org", "--encoding", "UTF-16LE"))
    raw = Path(b["File"]).read_bytes()
    assert raw[:2] == b"\xff\xfe"
    assert raw[2:].decode("utf-16-le") == Path(a["File"]).read_text(encoding="utf-8")


def test_direction_filters_the_report(store: Path) -> None:
    job = wait(store, start(store, "--recipient-address", "*", "--direction", "outbound"))
    df = pl.read_csv(job["File"], infer_schema=False)
    assert df.height and set(df["Direction"]) == {"Outbound"}
    every = pl.read_csv(wait(store, start(store, "--recipient-address", "*"))["File"], infer_schema=False)
    assert df.height == every.filter(pl.col("Direction") == "Outbound").height


def test_no_age_limit(store: Path) -> None:
    # a window far back is no error (trace would refuse it without --max-age-days 0)
    job = wait(store, start(store, "--sender-address", "x@example.org", "--start-date", "2001-01-01"))
    assert job["Status"] == "Done" and job["Rows"] == 0


def test_worker_runs_detached(store: Path) -> None:
    job_id = start(store, "--sender-address", "*@example.org")
    pid = H.read_job(store, job_id).pid
    assert pid is not None
    try:
        # its own session (closing the terminal sends it no SIGHUP), no terminal on its stdio
        assert os.getsid(pid) == pid
        assert os.readlink(f"/proc/{pid}/fd/0") == "/dev/null"
    except (ProcessLookupError, FileNotFoundError):
        pass  # already finished: nothing left to check
    assert wait(store, job_id)["Status"] == "Done"


def _frozen_in_progress(store: Path) -> tuple[str, int]:
    """A job whose worker is stopped (SIGSTOP) while InProgress; retried if a worker finishes first."""
    for _ in range(10):
        job_id = start(store, "--recipient-address", "*", "--report-type", "MessageTraceDetail")
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            job = H.read_job(store, job_id)
            if job.status != "NotStarted":
                break
            time.sleep(0.005)
        if job.status == "InProgress" and job.pid is not None:
            with H.locked(store, job_id):  # so the worker is not stopped while it holds the lock
                os.kill(job.pid, signal.SIGSTOP)
                done = H.read_job(store, job_id).status != "InProgress"
            if not done:
                return job_id, job.pid
            os.kill(job.pid, signal.SIGCONT)
        wait(store, job_id)
    raise AssertionError("no worker could be caught in progress")


def _reap(pid: int) -> None:
    try:
        os.waitpid(pid, 0)
    except ChildProcessError:
        pass


@pytest.mark.slow
def test_killed_worker_leaves_the_job_failed_without_a_file(store: Path) -> None:
    job_id, pid = _frozen_in_progress(store)
    os.kill(pid, signal.SIGKILL)
    time.sleep(0.2)  # a zombie until reaped: counts as dead as well
    job = get(store, job_id)
    _reap(pid)
    assert job["Status"] == "Failed" and job["File"] is None and job["Rows"] is None
    assert f"worker process {pid} ended without finishing" in job["Error"]
    leftovers = [p.name for p in (store / "_reports").iterdir() if job_id in p.name and p.suffix in (".csv", ".part")]
    assert leftovers == []
    # and it stays Failed: the list agrees
    listed = {
        j["JobId"]: j
        for j in json.loads(invoke("historical-search", "list", "--store", str(store), "--output", "json").stdout)
    }
    assert listed[job_id]["Status"] == "Failed"


@pytest.mark.slow
def test_worker_killed_before_it_started(store: Path) -> None:
    job_id = start(store, "--sender-address", "*@example.org")
    pid = H.read_job(store, job_id).pid
    assert pid is not None
    os.kill(pid, signal.SIGKILL)
    _reap(pid)
    job = get(store, job_id)
    if job["Status"] != "Done":  # it may have finished in the meantime; otherwise it must say why
        assert job["Status"] == "Failed" and "ended without finishing" in job["Error"]


@pytest.mark.slow
def test_a_stuck_lock_holder_does_not_hang_readers(store: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    job_id = start(store, "--sender-address", "*@example.org")
    monkeypatch.setattr(H, "LOCK_TIMEOUT", 0.2)
    with H.locked(store, job_id):
        assert get(store, job_id)["JobId"] == job_id  # shown as last written
        res = invoke("historical-search", "stop", "--store", str(store), job_id)
        assert res.exit_code != 0 and res.output.startswith("Error: ") and "busy" in res.output
    wait(store, job_id)


@pytest.mark.slow
def test_silent_worker_is_failed_after_the_heartbeat_timeout(store: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    job_id, pid = _frozen_in_progress(store)
    try:
        assert get(store, job_id)["Status"] == "InProgress"  # alive and recently beating
        monkeypatch.setattr(H, "STALE_AFTER", dt.timedelta(seconds=0))
        job = get(store, job_id)
        assert job["Status"] == "Failed" and "stopped reporting progress" in job["Error"]
    finally:
        os.kill(pid, signal.SIGKILL)
        _reap(pid)


@pytest.mark.slow
def test_stop_cancels_a_running_job(store: Path) -> None:
    job_id, pid = _frozen_in_progress(store)
    res = invoke("historical-search", "stop", "--store", str(store), job_id)
    assert res.exit_code == 0 and "cancelled" in res.output
    os.kill(pid, signal.SIGCONT)  # the pending SIGTERM ends it now
    _reap(pid)
    job = get(store, job_id)
    assert job["Status"] == "Cancelled" and job["File"] is None
    assert not (store / "_reports" / f"{job_id}.csv").exists()
    again = invoke("historical-search", "stop", "--store", str(store), job_id)
    assert again.exit_code == 0 and "already ended: Cancelled" in again.output


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        ([], "at least one of --sender-address, --recipient-address or --message-id"),
        (["--sender-address", ",".join(f"u{i}@example.org" for i in range(101))], "at most 100"),
        (["--sender-address", "a@b.example", "--report-type", "Summary"], "--report-type"),
        (["--sender-address", "a@b.example", "--format", "xlsx"], "--format"),
        (["--sender-address", "a@b.example", "--encoding", "latin-1"], "--encoding"),
        (["--sender-address", "a@b.example", "--direction", "Local"], "--direction"),
        (["--sender-address", "a@b.example", "--delivery-status", "Lost"], "--status"),
        (["--sender-address", "a@b.example", "--original-client-ip", "1.2.3"], "--from-ip"),
        (["--sender-address", "a@b.example", "--start-date", "2026-07-01"], "--start-date"),
        (["--sender-address", "a@b.example", "--end-date", "soon"], "--end-date"),
        (["--sender-address", "a*b@example.org"], "wildcard"),
        (["--sender-address", "a@b.example", "--report-title", " "], "--report-title"),
    ],
)
def test_bad_start_is_one_error_line(store: Path, args: list[str], needle: str) -> None:
    res = invoke("historical-search", "start", "--store", str(store), "--report-title", "T", *DATES, *args)
    assert res.exit_code != 0
    lines = res.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: ") and needle in lines[0], res.output


def test_missing_required_options_are_one_error_line(store: Path) -> None:
    for missing in ("--report-title", "--start-date"):
        args = ["--report-title", "T", *DATES, "--sender-address", "a@b.example"]
        i = args.index(missing)
        del args[i : i + 2]
        res = invoke("historical-search", "start", "--store", str(store), *args)
        assert res.exit_code != 0
        lines = res.output.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("Error: ") and missing in lines[0], res.output


def test_get_and_stop_unknown_jobs(store: Path) -> None:
    for cmd in ("get", "stop"):
        res = invoke("historical-search", cmd, "--store", str(store), "not-a-guid")
        assert res.exit_code != 0 and res.output.startswith("Error: invalid JOBID 'not-a-guid'")
        res = invoke("historical-search", cmd, "--store", str(store), str(uuid.uuid4()))
        assert res.exit_code != 0 and "no historical search" in res.output
