"""A small store built the way a user builds one: `msgtrace generate` a log, `msgtrace ingest` it."""

from __future__ import annotations

from pathlib import Path

from click.testing import CliRunner

from msgtrace.cli import cli
from msgtrace.generate import generate
from tests.conftest import TEST_WRITER

# The generated log's window, and a `now` just after it (so nothing is past the default age limit).
START = "2026-06-01"
DAYS = 2
NOW = "2026-06-03T06:00:00Z"
WINDOW = ["--start-date", "2026-05-31", "--end-date", "2026-06-04", "--timezone", "UTC", "--now", NOW]


def generated_store(folder: Path, fmt: str = "postfix", lines: int = 4000, seed: int = 7) -> Path:
    """A store holding one generated log of about `lines` lines over two days from START."""
    folder.mkdir(parents=True, exist_ok=True)
    log = folder / f"{fmt}.log"
    generate(fmt, log, lines=lines, start=START, days=DAYS, tz="UTC", seed=seed)
    store = folder / "store"
    res = CliRunner().invoke(
        cli, ["ingest", "--store", str(store), "--timezone", "UTC", "--year", "2026", str(log)], catch_exceptions=False
    )
    assert res.exit_code == 0, res.output
    return store


def superseding_store(folder: Path, lines: int = 4000, seed: int = 7) -> Path:
    """A store of one generated Postfix log ingested in two runs (its first 60% of lines, then the
    rest appended to the same file), the second as the watcher writes (no compaction after it):
    messages open at the cut are written again, so partitions hold rows superseded by a newer
    file's deletes."""
    from msgtrace.ingest.pipeline import IngestOptions, Pipeline
    from msgtrace.store import Store

    folder.mkdir(parents=True, exist_ok=True)
    whole = folder / "whole.log"
    generate("postfix", whole, lines=lines, start=START, days=DAYS, tz="UTC", seed=seed)
    text = whole.read_text().splitlines(keepends=True)
    cut = len(text) * 6 // 10
    log = folder / "mail.log"
    log.write_text("".join(text[:cut]))
    store = folder / "store"
    res = CliRunner().invoke(
        cli, ["ingest", "--store", str(store), "--timezone", "UTC", "--year", "2026", str(log)], catch_exceptions=False
    )
    assert res.exit_code == 0, res.output
    with log.open("a") as f:
        f.writelines(text[cut:])
    # the same writer as the CLI run (tests/conftest.py names it), so its rows supersede its own
    pipe = Pipeline(store, IngestOptions(timezone="UTC", year=2026), store=Store(store, writer=TEST_WRITER))
    try:
        pipe.ingest_path(log)
    finally:
        pipe.close()
    return store
