"""A store for the web tests: the demo logs (data/sample), the next hop of one of
its messages on another server (tests/fixtures/web/mx2.log), and a message whose subject, addresses,
Message-ID and reply carry HTML/script payloads (tests/fixtures/web/hostile.log), ingested by the CLI."""

from __future__ import annotations

from pathlib import Path

from click.testing import CliRunner

from msgtrace.query.cli import cli
from tests.conftest import FIXTURES, ROOT

NOW = "2026-06-14T12:00:00Z"
WINDOW = {"start_date": "2026-06-12", "end_date": "2026-06-14T12:00:00Z"}
HOSTILE_LOG = FIXTURES / "web" / "hostile.log"
# The next hop of bob's message (Message-ID f7a2b9c4-...): the receiving server's own log.
NEXT_HOP_LOG = FIXTURES / "web" / "mx2.log"
# What the hostile message's fields set if a browser ever ran them.
PAYLOAD_FLAG = "__xss"


def build_store(store: Path) -> Path:
    """Ingest the demo logs and the hostile log into store (as `make demo` does, plus one message)."""
    result = CliRunner().invoke(
        cli,
        [
            "ingest",
            "--store",
            str(store),
            "--timezone",
            "UTC",
            "--year",
            "2026",
            str(ROOT / "data" / "sample"),
            str(HOSTILE_LOG),
            str(NEXT_HOP_LOG),
        ],
        catch_exceptions=False,
    )
    assert result.exit_code == 0, result.output
    return store
