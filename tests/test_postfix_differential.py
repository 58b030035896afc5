"""Differential test: the store against a plain-Python reading of the same Postfix log.

Every Postfix log of ../shared/corpus (the lightmeter tarball's members, the pmg-log-tracker
files, the audit files), the golden logs of tests/fixtures/postfix and a generated log of
100,000 lines are ingested (then message_trace
over all days, max_age_days=0) and read line by line by tests/reference_postfix.py, which shares
no code with ingest/. The (message, recipient) rows must be equal, row for row, in received,
sender, recipient, status, queue_ids, message_id, subject, from_ip and to_ip.

Where the two differ on purpose, EXCEPTIONS names the rule and why; nothing else is excused.
Without the corpus, the `corpus` fixture decides (it skips locally; CI makes it fail); a missing
file of it fails its case.
postfix-grok-patterns/payloads.tsv is not a log (message payloads without a syslog header, one
per test case of another project, not one server's story): it is read by test_postfix_corpus.py.
"""

from __future__ import annotations

import tarfile
from collections import Counter
from pathlib import Path

import polars as pl
import pytest

from msgtrace import message_trace_lazy
from msgtrace.generate import generate
from msgtrace.ingest.pipeline import IngestOptions, ingest_paths
from tests.conftest import CORPUS, FIXTURES
from tests.reference_postfix import reference_rows

PF = CORPUS / "postfix"
TARBALL = PF / "lightmeter" / "individual_files.tar.gz"
COLUMNS = ["received", "sender", "recipient", "status", "queue_ids", "message_id", "subject", "from_ip", "to_ip"]

# Files of ../shared/corpus/postfix that are not logs of a server, and why.
NOT_LOGS = {
    "postfix-grok-patterns/payloads.tsv": "payloads only: no syslog header, no time, no host (test_postfix_corpus.py)",
}
# year of the first RFC 3164 line and the zone of stamps without one, per corpus file
OPTIONS = {
    "pmg-log-tracker/test_input_timechange": (2021, "Europe/Vienna"),
    "pmg-log-tracker/test_input_time_rfc3339_mixed": (2023, "Europe/Vienna"),
    "fixtures/rfc3339_mixed.log": (2026, "Europe/Vienna"),
}
YEAR = {"lightmeter": 2020, "pmg-log-tracker": 2021, "audit": 2023, "fixtures": 2026}

# Where store and reference disagree on purpose: case -> rule name -> (why, rows only the reference
# has, rows only the store has), rows as tuples in COLUMNS order. An excused row that no longer
# differs fails the case, so the list cannot go stale. None at present: every difference fails.
EXCEPTIONS: dict[str, dict[str, tuple[str, list[tuple], list[tuple]]]] = {}

# Cases that differ on this branch only because issue 10's correlation items (being fixed on
# another branch) are not merged yet; the reference already implements those rules, named in
# tests/reference_postfix.py. Strict xfail: delete this list once they are merged.
ISSUE10_CORRELATION_PENDING: dict[str, str] = {}


def _members() -> list[str]:
    if not TARBALL.exists():
        return ["lightmeter/absent"]
    with tarfile.open(TARBALL) as tar:
        return sorted(f"lightmeter/{Path(m.name).name}" for m in tar.getmembers() if m.isfile())


def _fixtures() -> list[str]:
    return sorted(f"fixtures/{p.name}" for p in (FIXTURES / "postfix").glob("*.log"))


def _plain_files() -> list[str]:
    found = sorted(str(p.relative_to(PF)) for p in PF.rglob("*") if p.is_file() and p.suffix != ".gz")
    return [f for f in found if f not in NOT_LOGS] or ["audit/absent", "pmg-log-tracker/absent"]


def _case(name: str) -> object:
    reason = ISSUE10_CORRELATION_PENDING.get(name)
    if reason:
        return pytest.param(name, marks=pytest.mark.xfail(strict=True, reason=reason))
    return name


def _text(name: str) -> str:
    if name.startswith("fixtures/"):
        return (FIXTURES / "postfix" / name.split("/", 1)[1]).read_text(encoding="utf-8")
    if name.startswith("lightmeter/"):
        with tarfile.open(TARBALL) as tar:
            member = next(m for m in tar.getmembers() if Path(m.name).name == name.split("/", 1)[1])
            return tar.extractfile(member).read().decode("utf-8", errors="replace")  # type: ignore[union-attr]
    return (PF / name).read_text(encoding="utf-8", errors="replace")


def store_rows(log: Path, store: Path, year: int, zone: str) -> list[tuple]:
    """What the store says: ingest, then a trace over every day."""
    ingest_paths([str(log)], store, IngestOptions(timezone=zone, year=year, format="postfix"))
    if not (store / "messages").is_dir():
        return []
    df = message_trace_lazy(store, start_date="1990-01-01", end_date="2100-01-01", max_age_days=0).collect()
    df = df.select(
        pl.col("received").dt.strftime("%Y-%m-%dT%H:%M:%S%.6fZ").alias("received"),
        pl.col("sender_address").alias("sender"),
        pl.col("recipient_address").alias("recipient"),
        "status",
        "queue_ids",
        "message_id",
        "subject",
        "from_ip",
        "to_ip",
    )
    return [tuple(r) for r in df.iter_rows()]


def compare(name: str, log: Path, store: Path, year: int, zone: str) -> None:
    text = log.read_text(encoding="utf-8", errors="replace")
    want = Counter(tuple(r[c] for c in COLUMNS) for r in reference_rows(text, year, zone))
    got = Counter(store_rows(log, store, year, zone))
    missing, extra = want - got, got - want
    for rule, (why, reference_only, store_only) in EXCEPTIONS.get(name, {}).items():
        stale = (Counter(reference_only) - missing) + (Counter(store_only) - extra)
        assert not stale, f"{name}: exception {rule} ({why}) no longer applies to {sorted(stale)}"
        missing, extra = missing - Counter(reference_only), extra - Counter(store_only)
    assert not missing and not extra, _explain(name, missing, extra)


def _explain(name: str, missing: Counter, extra: Counter) -> str:
    lines = [f"{name}: store and reference differ ({', '.join(COLUMNS)})"]
    lines += [f"  reference only: {r}" for r in sorted(missing)[:20]]
    lines += [f"  store only:     {r}" for r in sorted(extra)[:20]]
    return "\n".join(lines)


@pytest.mark.parametrize("name", [_case(n) for n in _members() + _plain_files()])
def test_corpus_file_matches_reference(corpus: Path, tmp_path: Path, name: str) -> None:
    check_case(tmp_path, name)


@pytest.mark.parametrize("name", [_case(n) for n in _fixtures()])
def test_golden_fixture_matches_reference(tmp_path: Path, name: str) -> None:
    # the hand-written golden logs too: each pins one behaviour, so each is a sharp check of the reference
    check_case(tmp_path, name)


def check_case(tmp_path: Path, name: str) -> None:
    assert "absent" not in name, f"corpus file missing: {name}"
    group = name.split("/", 1)[0]
    year, zone = OPTIONS.get(name, (YEAR[group], "UTC"))
    log = tmp_path / Path(name).name
    log.write_text(_text(name), encoding="utf-8")
    compare(name, log, tmp_path / "store", year, zone)


def test_every_corpus_file_is_a_case_or_named(corpus: Path) -> None:
    files = {str(p.relative_to(PF)) for p in (corpus / "postfix").rglob("*") if p.is_file()}
    cases = set(_plain_files()) | {str(TARBALL.relative_to(PF))}
    assert files == cases | set(NOT_LOGS)
    assert len(_members()) == 36
    assert set(ISSUE10_CORRELATION_PENDING) <= set(_members() + _plain_files() + _fixtures())
    assert set(EXCEPTIONS) <= set(_members() + _plain_files() + _fixtures())


# (start, days, zone, long queue ids): the spring DST gap, the repeated autumn hour, New Year
GENERATED = {
    "spring_gap": ("2026-03-27", 2.0, "Europe/Vienna", False),
    "autumn_repeat_long_ids": ("2026-10-24", 2.0, "Europe/Vienna", True),
    "new_year": ("2026-12-31T12:00", 1.0, "America/New_York", False),
}


@pytest.mark.slow
@pytest.mark.parametrize("case", sorted(GENERATED))
def test_generated_log_matches_reference(tmp_path: Path, case: str) -> None:
    start, days, zone, long_ids = GENERATED[case]
    log = tmp_path / "gen.log"
    summary = generate("postfix", log, lines=100_000, start=start, days=days, tz=zone, seed=7, long_ids=long_ids)
    assert summary.lines >= 100_000
    compare(f"generated/{case}", log, tmp_path / "store", int(start[:4]), zone)
