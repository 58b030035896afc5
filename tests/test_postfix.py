"""Golden tests for the Postfix path: hand-written logs in, exact message rows and events out.

Each case is ``tests/fixtures/postfix/<case>.log`` (what the case pins is in the first lines of
``CASES`` below). ``<case>.expected.jsonl`` holds the message rows, ``<case>.events.jsonl`` the
events; both come from a full ``ingest_paths`` run into a fresh store, read back with pyarrow.
Regenerate with ``pytest tests/test_postfix.py --update-golden`` and review the diff.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import polars as pl
import pyarrow.dataset as ds
import pytest

from msgtrace.ingest.pipeline import IngestOptions, IngestReport, ingest_paths
from msgtrace.ingest.schema import EVENT_SCHEMA, MESSAGE_SCHEMA
from tests.conftest import FIXTURES

CASE_DIR = FIXTURES / "postfix"

# case -> what it pins. Every case is ingested with --year 2026 --timezone UTC unless OPTIONS says otherwise.
CASES = {
    "basic_delivery": "client IP, Message-ID, sender, size, two recipients, a deferral then delivery, IPv6 relay",
    "rfc3339_mixed": "RFC 3164 and RFC 3339 lines (fraction, Z and offsets) in one file, 3164 read in --timezone",
    "noqueue_reject": "NOQUEUE rejects: blocklist/spam -> FilteredAsSpam, others None; postscreen; IPv6; no row for CONNECT/VRFY",
    "milter": "milter-reject / -hold / -discard, header_checks HOLD, a RCPT reject next to a delivered recipient",
    "content_filter": "amavis hand-off on 10024, re-injection on 10025 as one message; Pending until re-queued; Blocked SPAM",
    "bounce_dsn": "a bounced recipient and the DSN from <> as its own message; expiry after deferrals",
    "alias_expansion": "several members sharing orig_to -> Expanded row; one-to-one rewrite -> None row; alias to itself",
    "queue_id_reuse": "the same queue id used again after removed, and after a long silence without removed",
    "long_queue_ids": "enable_long_queue_ids ids, and hex ids longer than 12 digits",
    "multi_instance": "postfix/submission/smtpd, postfix-10.0.0.1/smtpd, postfix/10025/smtpd tags; IPv6 client",
    "foreign_lines": "lines under postfix tags that look like queue ids but are not Postfix's: no phantom messages",
    "incomplete": "messages whose start or end lies outside the log: kept and flagged",
    "pickup_local": "local submission (pickup): no FromIP, sender from qmgr; local and pipe delivery; subject",
    "amavis_subject": "issue 10 item 8, Subject always empty behind amavis: Subject from amavis Passed/Blocked "
    "(quotes doubled, raw part cut), by Queue-ID or else queued_as; header_checks first; a lost Message-ID filled",
    "message_id_with_spaces": "issue 10 item 9: a corrupted Message-ID with spaces is kept whole, not cut at the first space",
    "non_ascii": "SMTPUTF8 addresses: the reply text is cut by bytes; size= in other scripts' digits fails no chunk",
}
OPTIONS: dict[str, IngestOptions] = {
    "rfc3339_mixed": IngestOptions(timezone="Europe/Vienna", year=2026, format="postfix"),
}
DEFAULT = IngestOptions(timezone="UTC", year=2026, format="postfix")

# Columns left out of the events golden: constant for a case (format, organization) or a hash of the file.
_EVENT_SKIP = {"format", "organization", "source", "host"}


def ingest_case(log: Path, store: Path, options: IngestOptions = DEFAULT) -> IngestReport:
    """Ingest one log file into a fresh store."""
    return ingest_paths([str(log)], store, options)


def read_table(store: Path, table: str) -> pl.DataFrame:
    """A table of the store as a plain reader sees it: hive-partitioned Parquet via pyarrow.dataset."""
    path = store / table
    if not path.is_dir():
        schema = MESSAGE_SCHEMA if table == "messages" else EVENT_SCHEMA
        return pl.DataFrame(schema=schema)
    dataset = ds.dataset(path, format="parquet", partitioning="hive")
    return pl.from_arrow(dataset.to_table())  # type: ignore[return-value]


def _jsonable(df: pl.DataFrame) -> list[dict]:
    """Rows with times as ISO strings (UTC, microseconds) and NaN-free floats."""
    times = [c for c, t in df.schema.items() if isinstance(t, pl.Datetime)]
    df = df.with_columns(pl.col(c).dt.strftime("%Y-%m-%dT%H:%M:%S%.6fZ") for c in times)
    rows = df.to_dicts()
    for r in rows:
        for k, v in r.items():
            if isinstance(v, float) and math.isnan(v):
                r[k] = None
    return rows


def message_rows(store: Path) -> list[dict]:
    """Message rows in a stable order, every schema column."""
    df = read_table(store, "messages").select(list(MESSAGE_SCHEMA))
    return _jsonable(df.sort(["received", "queue_id", "recipient_lower", "status"]))


def event_rows(store: Path) -> list[dict]:
    """Events in line order, without the columns that are constant or a file hash."""
    df = read_table(store, "events").select([c for c in EVENT_SCHEMA if c not in _EVENT_SKIP])
    return _jsonable(df.sort("line_no"))


def check_golden(rows: list[dict], path: Path, update: bool) -> None:
    """Compare rows with a JSON-lines golden file (or rewrite it with --update-golden)."""
    text = "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows)
    if update:
        path.write_text(text, encoding="utf-8")
        return
    assert path.exists(), f"no golden file {path.name}: run pytest --update-golden and review it"
    expected = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line]
    for i, (got, want) in enumerate(zip(rows, expected, strict=False)):
        assert got == want, f"{path.name} row {i} differs"
    assert len(rows) == len(expected), f"{path.name}: {len(rows)} rows, expected {len(expected)}"


@pytest.mark.parametrize("case", sorted(CASES))
def test_golden(case: str, tmp_path: Path, update_golden: bool) -> None:
    log = CASE_DIR / f"{case}.log"
    report = ingest_case(log, tmp_path / "store", OPTIONS.get(case, DEFAULT))
    assert report.files[0].skipped is None
    check_golden(message_rows(tmp_path / "store"), CASE_DIR / f"{case}.expected.jsonl", update_golden)
    check_golden(event_rows(tmp_path / "store"), CASE_DIR / f"{case}.events.jsonl", update_golden)


def test_every_case_has_a_log() -> None:
    logs = {p.stem for p in CASE_DIR.glob("*.log")}
    assert logs == set(CASES)


def test_organization_follows_each_host(tmp_path: Path) -> None:
    hosts = [f"mx{i}.d{i}.example" for i in range(26)]
    log = tmp_path / "hosts.log"
    log.write_text(
        "".join(f"Jun 13 10:00:{i:02d} {h} postfix/qmgr[9]: {i + 10:05X}: removed\n" for i, h in enumerate(hosts))
    )
    ingest_case(log, tmp_path / "store")
    events = read_table(tmp_path / "store", "events")
    got = dict(events.select("host", "organization").iter_rows())
    assert got == {h: h.split(".", 1)[1] for h in hosts}


def test_corrupted_message_id_found_by_whole_value(tmp_path: Path) -> None:
    # issue 10 item 9: the id was cut at its first space, so the logged value found nothing
    from msgtrace import message_trace

    log = CASE_DIR / "message_id_with_spaces.log"
    ingest_case(log, tmp_path / "store")
    logged = next(line for line in log.read_text().splitlines() if "message-id=" in line).split("message-id=", 1)[1]
    assert " " in logged and not logged.endswith(">")
    for typed in (logged, logged.lstrip("<")):
        got = message_trace(
            tmp_path / "store", message_id=typed, start_date="2026-01-01", end_date="2026-02-01", max_age_days=0
        )
        assert got.get_column("MessageId").to_list() == [logged], typed
