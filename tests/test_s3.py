"""A store on S3 (moto's emulator on 127.0.0.1): every command works on s3://bucket/prefix and gives
what the same store on disk gives; a 1-day query lists and reads only that day's partition; the
writers' leases use conditional PUTs."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from msgtrace.store import Store, StoreError, WriterLease, writer_holder
from msgtrace.store.s3 import s3_settings
from msgtrace.storepath import ObjectPath, store_path
from tests.helpers_s3 import Emulator, cli, generate_log

NOW = "2026-01-04T00:00:00Z"
WINDOW = ("--start-date", "2026-01-01", "--end-date", "2026-01-04", "--timezone", "UTC")


def msgtrace(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    return cli(*args, now=NOW, check=check)


def generate(path: Path, host: str, seed: int, lines: int = 3000, days: float = 3.0) -> Path:
    generate_log(path, host, seed, lines, days)
    return path


def ingest(store: str, log: Path, writer: str, *extra: str) -> subprocess.CompletedProcess[str]:
    return msgtrace(
        "ingest", "--store", store, "--writer", writer, "--timezone", "UTC", "--year", "2026", *extra, str(log)
    )


def trace(store: str, *extra: str) -> list[dict[str, object]]:
    out = msgtrace("trace", "--store", store, *WINDOW, "--output", "jsonl", "--page-size", "5000", *extra).stdout
    return [json.loads(line) for line in out.splitlines()]


def test_s3_locations_and_settings(tmp_path: Path) -> None:
    root = store_path("s3://mail-logs/stores/prod/")
    assert isinstance(root, ObjectPath) and str(root) == "s3://mail-logs/stores/prod"
    assert root.bucket == "mail-logs" and root.key == "stores/prod"
    assert str(root / "messages" / "date=2026-01-01") == "s3://mail-logs/stores/prod/messages/date=2026-01-01"
    with pytest.raises(TypeError):
        os.fspath(root)  # never opened as a local file
    with pytest.raises(ValueError, match=r"store 's3://A_B/x': not an S3 location"):
        store_path("s3://A_B/x")
    # the shared files: a profile's keys and region; the environment wins over them
    (tmp_path / "credentials").write_text("[ops]\naws_access_key_id = K1\naws_secret_access_key = S1\n")
    (tmp_path / "config").write_text("[profile ops]\nregion = eu-west-1\nendpoint_url = http://minio.lan:9000\n")
    files = {"AWS_SHARED_CREDENTIALS_FILE": str(tmp_path / "credentials"), "AWS_CONFIG_FILE": str(tmp_path / "config")}
    s = s3_settings({**files, "AWS_PROFILE": "ops"})
    assert (s.access_key_id, s.secret_access_key, s.region, s.endpoint) == (
        "K1",
        "S1",
        "eu-west-1",
        "http://minio.lan:9000",
    )
    assert s.allow_http  # a plain-http endpoint
    s = s3_settings(
        {
            **files,
            "AWS_PROFILE": "ops",
            "AWS_ACCESS_KEY_ID": "K2",
            "AWS_SECRET_ACCESS_KEY": "S2",
            "AWS_DEFAULT_REGION": "us-east-2",
            "AWS_ENDPOINT_URL": "https://s3.example",
        }
    )
    assert (s.access_key_id, s.secret_access_key, s.region, s.endpoint, s.allow_http) == (
        "K2",
        "S2",
        "us-east-2",
        "https://s3.example",
        False,
    )
    assert s3_settings({"AWS_ENDPOINT_URL": "https://x", "AWS_ALLOW_HTTP": "true"}).allow_http
    assert s.polars_options()["aws_endpoint_url"] == "https://s3.example"


def test_every_command_works_on_s3_as_on_disk(s3_store: str, tmp_path: Path) -> None:
    log = generate(tmp_path / "mx1.log", "mx1.example.org", seed=1)
    local = str(tmp_path / "local")
    assert "Ingested 1 files" in ingest(s3_store, log, "mx1").stdout
    ingest(local, log, "mx1")
    rows = trace(s3_store)
    assert rows and rows == trace(local)
    assert trace(s3_store, "--status", "Failed") == trace(local, "--status", "Failed")
    first = rows[0]
    detail = ["--message-trace-id", str(first["MessageTraceId"]), "--recipient-address", str(first["RecipientAddress"])]
    args = ("detail", "--store", s3_store, *WINDOW, *detail)
    assert msgtrace(*args).stdout == msgtrace("detail", "--store", local, *WINDOW, *detail).stdout
    summary = msgtrace("summary", "--store", s3_store, *WINDOW).stdout
    assert summary == msgtrace("summary", "--store", local, *WINDOW).stdout
    status = msgtrace("status", "--store", s3_store).stdout
    assert f"Store {s3_store}" in status and "mx1: not running" in status and "1 sources" in status
    report = ("report", *WINDOW, "--output", "json")
    assert msgtrace(*report, "--store", s3_store).stdout == msgtrace(*report, "--store", local).stdout
    assert "Compacted" in msgtrace("compact", "--store", s3_store, "--writer", "mx1").stdout
    assert trace(s3_store) == rows
    again = ingest(s3_store, log, "mx1")  # re-reading adds nothing
    assert ", 0 lines" in again.stdout and trace(s3_store) == rows


def test_a_missing_bucket_or_store_is_one_error(s3_store: str) -> None:
    res = msgtrace("trace", "--store", s3_store, *WINDOW, check=False)
    assert res.returncode == 1 and res.stderr.startswith(f"Error: '{s3_store}' is not a msgtrace store")
    res = msgtrace("trace", "--store", "s3://no-such-bucket-here/x", *WINDOW, check=False)
    assert res.returncode == 1 and res.stderr.startswith("Error: --store s3://no-such-bucket-here: ")
    assert "Traceback" not in res.stderr and len(res.stderr.strip().splitlines()) == 1


def test_a_taken_writer_name_is_refused_on_s3(s3_store: str, tmp_path: Path) -> None:
    log = generate(tmp_path / "mx1.log", "mx1.example.org", seed=1, lines=300)
    mine = Store(store_path(s3_store), writer="mx1")
    with WriterLease(mine):
        holder = writer_holder(mine, mine.state)
        assert holder is not None and holder.startswith(f"{os.getpid()} on ")
        with pytest.raises(StoreError, match="writer mx1 is in use by msgtrace process"):
            WriterLease(Store(store_path(s3_store), writer="mx1")).__enter__()  # conditional create refused
        res = subprocess.run(
            [sys.executable, "-m", "msgtrace", "ingest", "--store", s3_store, "--writer", "mx1", str(log)],
            capture_output=True,
            text=True,
            env=os.environ.copy(),
            timeout=300,
        )
        assert res.returncode == 1
        assert res.stderr.startswith(
            f"Error: --store {s3_store}: writer mx1 is in use by msgtrace process {os.getpid()} on "
        )
        assert len(res.stderr.strip().splitlines()) == 1
        assert ingest(s3_store, log, "mx2").returncode == 0  # another writer runs beside it
    assert writer_holder(mine, mine.state) is None  # released: the lease object is gone
    assert ingest(s3_store, log, "mx1").returncode == 0


def test_a_lease_of_a_dead_process_is_taken_over(s3_store: str, tmp_path: Path) -> None:
    """A writer killed on this host leaves its lease object; the next process sees the pid is gone."""
    code = (
        "import os, sys; from msgtrace.store import Store, WriterLease; from msgtrace.storepath import store_path;"
        "lease = WriterLease(Store(store_path(sys.argv[1]), writer='mx1')); lease.__enter__();"
        "print('held', flush=True); os.kill(os.getpid(), 9)"
    )
    res = subprocess.run([sys.executable, "-c", code, s3_store], capture_output=True, text=True, timeout=120)
    assert res.stdout.strip() == "held" and res.returncode == -9
    mine = Store(store_path(s3_store), writer="mx1")
    assert writer_holder(mine, mine.state) is None  # dead holder: lapsed
    with WriterLease(mine):
        assert writer_holder(mine, mine.state) is not None


def test_a_one_day_query_lists_and_reads_only_that_day(s3_store: str, emulator: Emulator, tmp_path: Path) -> None:
    log = generate(tmp_path / "mx1.log", "mx1.example.org", seed=3, lines=4000, days=3.0)
    ingest(s3_store, log, "mx1")
    prefix = "/" + s3_store.removeprefix("s3://")
    bucket = prefix.split("/")[1]
    day = "2026-01-02"
    emulator.start_recording()
    rows = [
        json.loads(line)
        for line in msgtrace(
            "trace",
            "--store",
            s3_store,
            "--start-date",
            day,
            "--end-date",
            "2026-01-03",
            "--timezone",
            "UTC",
            "--output",
            "jsonl",
            "--page-size",
            "5000",
        ).stdout.splitlines()
    ]
    requests = emulator.stop_recording()
    assert rows and {str(r["Received"])[:10] for r in rows} == {day}
    assert requests, "the recorder saw nothing"
    part = f"store/messages/date={day}/"
    # besides the day: whether the prefix is a store at all (messages/ exists) and its settings
    probes = {("HEAD", f"/{bucket}/store/messages"), ("GET", f"/{bucket}/store/_state/config.json")}
    lists, reads = [], []
    for method, path, query in requests:
        if "list-type" in query:  # a LIST
            assert path.rstrip("/") == f"/{bucket}", path
            lists.append(query.get("prefix", ""))
        elif (method, path) not in probes:  # a GET or HEAD of one object: only that day's files
            assert method in {"GET", "HEAD"} and path.startswith(f"/{bucket}/{part}"), (method, path)
            reads.append(path)
    assert set(lists) <= {part, "store/messages/"} and lists.count(part) == 1, lists
    assert reads, "no file of the day was read"
    assert len(requests) <= len(reads) + len(lists) + len(probes)


def test_web_and_historical_search_read_an_s3_store(
    s3_store: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from starlette.testclient import TestClient

    from msgtrace.web.app import create_app
    from msgtrace.web.params import Defaults

    log = generate(tmp_path / "mx1.log", "mx1.example.org", seed=2, lines=1500)
    ingest(s3_store, log, "mx1")
    rows = trace(s3_store)
    with TestClient(create_app(store_path(s3_store), defaults=Defaults(now=NOW, timezone="UTC"))) as client:
        res = client.get(
            "/api/v1/trace", params={"start_date": "2026-01-01", "end_date": "2026-01-04", "page_size": 5000}
        )
        assert res.status_code == 200, res.text
        assert [r["MessageTraceId"] for r in res.json()["rows"]] == [r["MessageTraceId"] for r in rows]
    # a historical search's job and report live on this machine (the worker is a local process)
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "state"))
    start = msgtrace("historical-search", "start", "--store", s3_store, "--report-title", "T", *WINDOW,
                     "--recipient-address", "*")  # fmt: skip
    job_id = start.stdout.strip()
    for _ in range(600):
        job = json.loads(msgtrace("historical-search", "get", "--store", s3_store, job_id, "--output", "json").stdout)
        if job["Status"] in {"Done", "Failed"}:
            break
        time.sleep(0.1)
    assert job["Status"] == "Done", job
    assert job["File"].startswith(str(tmp_path / "state" / "msgtrace" / "reports" / "s3"))
    assert job["Rows"] == len(rows)


def test_a_writer_that_loses_its_lease_writes_nothing_more(s3_store: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """Another process took the lease over (this one stalled past its term): the next write of this
    writer's Store raises instead of writing beside its successor."""
    from msgtrace.store import LEASE_ENV
    from tests.helpers_store import frame, msg, utc

    monkeypatch.setenv(LEASE_ENV, "3")  # renewed every second
    mine = Store(store_path(s3_store), writer="mx1")
    with WriterLease(mine) as lease:
        mine.messages.append(frame([msg(utc(2026, 1, 2, 10))]))  # held: writes go through
        mine.fs.write_text(lease.path, json.dumps({"token": "someone else", "host": "mx9", "pid": 1, "expires": 2e9}))
        time.sleep(2.5)  # a renewal finds the ETag changed
        with pytest.raises(StoreError, match="lost the lease of writer mx1"):
            mine.messages.append(frame([msg(utc(2026, 1, 2, 11))]))
        with pytest.raises(StoreError, match="lost the lease"):
            mine.state.write_text("sources.json", "{}")
    assert Store(store_path(s3_store)).messages.scan().collect().height == 1  # type: ignore[union-attr]
    assert "mx9" in (writer_holder(mine, mine.state) or "")  # the successor's lease is left alone
